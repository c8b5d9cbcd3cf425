// Package auth is the broker's security: who may connect (authentication)
// and what they may do (authorization), for every protocol and for the
// management operations alike (docs/security.md).
//
// Users live in a users file beside broker.xml (etc/users, written by
// `tandem user`), one line per user: NAME:ROLES:CREDENTIAL, where the
// credential is an argon2id hash in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$SALT$HASH) or cert=DN for a user who
// authenticates with a client certificate. The file starts with the line
// "tandem-users 1" (the format's version); it is rewritten whole, through
// a temporary file, fsync and rename, under an flock of its directory.
// Users may also be written in broker.xml's <security><users> in clear
// text (the older form, still read).
//
// A Guard checks credentials (Login) and returns a Subject, which answers
// whether its user may use a permission on an address (Authorize), by
// Artemis's <security-settings>: the most specific matching setting (in
// Artemis's wildcard syntax) lists the roles that hold each permission.
// Results are cached; the cache and the users file are refreshed every
// security-invalidation-interval, so `tandem user add|rm|passwd` takes
// effect on a running broker within that interval, for new logins and for
// the permissions of connections already open.
//
// Against password guessing: each failed login from a host makes the
// next ones from that host wait longer (after a few free failures the
// delay doubles per failure, up to MaxDelay); the attempts of one host
// are served one at a time and a host with too many waiting is refused at
// once. Failures are logged, rate-limited, with the user and the remote
// address: never a password, a hash or a credential.
//
// Hashing is deliberately slow (argon2id, 19 MiB, 2 passes: OWASP's
// recommendation); at most MaxConcurrentHashes run at once, so a flood of
// logins costs bounded memory and CPU. An unknown user costs the same hash
// as a wrong password.
//
// This package reads the users file and nothing else; it opens no socket
// and never logs a secret.
package auth
