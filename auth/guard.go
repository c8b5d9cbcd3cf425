package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/config"
)

// Options configure a Guard.
type Options struct {
	// Disabled turns security off (security-enabled false): every client
	// is let in and may do everything.
	Disabled bool
	// RequireLogin: true refuses clients without credentials, false lets
	// them in with AnonymousRoles, nil requires a login exactly when some
	// user exists (in the users file or Users).
	RequireLogin   *bool
	AnonymousRoles []string
	// Users are broker.xml's users, with clear-text passwords (the older
	// form). A user of the same name in the users file wins.
	Users []config.User
	// UsersFile is the users file ("" none); UsersFileRequired makes a
	// missing one an error (else it means no users).
	UsersFile         string
	UsersFileRequired bool
	// Settings are the security settings; SettingsSet false lets every
	// client that logged in do everything.
	Settings    config.SecuritySettings
	SettingsSet bool
	// ClusterUser and ClusterPassword authenticate brokers to each other.
	// A user of that name in the users file or Users wins.
	ClusterUser, ClusterPassword string
	// Interval is security-invalidation-interval: how long results are
	// cached and how often the users file is checked (0: no cache; the
	// file is still checked at most every 10 ms).
	Interval time.Duration
	// Throttle tunes the delay after failed logins (zero: defaults).
	Throttle ThrottleOptions
	// Logger gets the failures (rate-limited); nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// OptionsFrom returns the Guard options a broker configuration describes.
func OptionsFrom(cfg *config.Config, log *slog.Logger) Options {
	s := cfg.Security
	return Options{
		Disabled: !cfg.SecurityEnabled, RequireLogin: s.RequireLogin, AnonymousRoles: s.AnonymousRoles,
		Users: cfg.Users, UsersFile: s.UsersFile, UsersFileRequired: s.UsersFileSet,
		Settings: s.Settings, SettingsSet: s.SettingsSet,
		ClusterUser: cfg.ClusterUser, ClusterPassword: cfg.ClusterPassword,
		Interval: s.InvalidationInterval, Logger: log,
	}
}

// Credentials are what a client presents.
type Credentials struct {
	User, Password string
	// Remote is the client's address (host or host:port): failures are
	// counted, and delays applied, per host.
	Remote string
	// Cert is the client's certificate, verified by the TLS handshake
	// against the acceptor's trust store (nil: none).
	Cert *x509.Certificate
	// Protocol names the protocol in log lines ("core", "amqp", "stomp",
	// "http").
	Protocol string
}

// Guard checks logins and permissions for one broker. Safe for
// concurrent use.
type Guard struct {
	o        Options
	log      *slog.Logger
	logs     *logLimiter
	throttle *throttle
	key      [32]byte // keys the login cache

	gen  atomic.Uint64 // bumped on every refresh: subjects recompute
	next atomic.Int64  // unix ns of the next refresh

	mu        sync.Mutex
	users     map[string]*account
	certs     map[string]*account // by normalised subject DN
	fileInfo  fileStamp
	fileErr   string
	cache     map[[32]byte]cached
	anonymous bool // computed: clients without credentials are let in
}

// account is one user as the guard holds it.
type account struct {
	name  string
	roles []string
	hash  string // argon2id
	clear string // broker.xml's clear-text password
	cert  string // subject DN
}

type cached struct {
	user    string
	ok      bool
	expires time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

// maxLoginCache bounds the login cache (Artemis's authentication-cache-size
// default is 1000); when full it starts over.
const maxLoginCache = 1000

// New returns a Guard; it reads the users file.
func New(o Options) (*Guard, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Guard{o: o, log: o.Logger, throttle: newThrottle(o.Throttle, o.Now), cache: map[[32]byte]cached{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.logs = newLogLimiter(o.Now)
	if _, err := rand.Read(g.key[:]); err != nil {
		return nil, err
	}
	for _, s := range o.Settings {
		if err := config.CheckMatch(s.Match); err != nil {
			return nil, fmt.Errorf("auth: security-setting: %w", err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	users, stamp, err := g.loadLocked()
	if err != nil {
		return nil, err
	}
	g.installLocked(users, stamp)
	g.next.Store(o.Now().Add(g.refreshEvery()).UnixNano())
	return g, nil
}

// NewStatic returns a Guard for users with clear-text passwords and no
// security settings (tests, and brokers assembled without a configuration):
// anonymous clients are let in when users is empty.
func NewStatic(users map[string]string) *Guard {
	var us []config.User
	for n, p := range users {
		us = append(us, config.User{Name: n, Password: p})
	}
	g, _ := New(Options{Users: us})
	return g
}

func (g *Guard) refreshEvery() time.Duration { return max(g.o.Interval, 10*time.Millisecond) }

// loadLocked reads the users file (if its stamp changed) and merges it
// with broker.xml's users.
func (g *Guard) loadLocked() (map[string]*account, fileStamp, error) {
	users := map[string]*account{}
	for _, u := range g.o.Users {
		users[u.Name] = &account{name: u.Name, roles: u.Roles, clear: u.Password}
	}
	var stamp fileStamp
	if g.o.UsersFile == "" {
		return users, stamp, nil
	}
	st, err := os.Stat(g.o.UsersFile)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !g.o.UsersFileRequired:
		return users, stamp, nil
	case err != nil:
		return nil, stamp, fmt.Errorf("auth: users file: %w", err)
	}
	stamp = fileStamp{mod: st.ModTime(), size: st.Size(), ok: true}
	fileUsers, err := ReadUsersFile(g.o.UsersFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("auth: users file: %w", err)
	}
	for _, u := range fileUsers {
		users[u.Name] = &account{name: u.Name, roles: u.Roles, hash: u.Hash, cert: u.CertSubject}
	}
	return users, stamp, nil
}

func (g *Guard) installLocked(users map[string]*account, stamp fileStamp) {
	g.users, g.fileInfo = users, stamp
	g.certs = map[string]*account{}
	for _, a := range users {
		if a.cert != "" {
			g.certs[normalizeDN(a.cert)] = a
		}
	}
	switch {
	case g.o.Disabled:
		g.anonymous = true
	case g.o.RequireLogin != nil:
		g.anonymous = !*g.o.RequireLogin
	default:
		g.anonymous = len(users) == 0
	}
	clear(g.cache)
	g.gen.Add(1)
}

// refresh checks the users file (reloading it when it changed) and drops
// the cached results, once per interval.
func (g *Guard) refresh() {
	now := g.o.Now()
	if now.UnixNano() < g.next.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.UnixNano() < g.next.Load() {
		return
	}
	g.next.Store(now.Add(g.refreshEvery()).UnixNano())
	changed := false
	if g.o.UsersFile != "" {
		st, err := os.Stat(g.o.UsersFile)
		var stamp fileStamp
		if err == nil {
			stamp = fileStamp{mod: st.ModTime(), size: st.Size(), ok: true}
		}
		changed = stamp != g.fileInfo
	}
	if changed {
		users, stamp, err := g.loadLocked()
		if err != nil {
			// Keep the users in force; say so once per distinct error.
			if msg := err.Error(); msg != g.fileErr {
				g.fileErr = msg
				g.log.Error("the users file could not be read; the users read before stay in force", "err", err)
			}
		} else {
			g.fileErr = ""
			g.log.Info("users file reloaded", "file", g.o.UsersFile, "users", len(users))
			g.installLocked(users, stamp)
			return
		}
	}
	if g.o.Interval > 0 {
		clear(g.cache)
		g.gen.Add(1)
	}
}

// AnonymousAllowed reports whether clients without credentials are let in
// now.
func (g *Guard) AnonymousAllowed() bool {
	g.refresh()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.anonymous
}

// Disabled reports whether security is off (security-enabled false).
func (g *Guard) Disabled() bool { return g.o.Disabled }

// Users returns the number of users (the users file and broker.xml).
func (g *Guard) Users() int {
	g.refresh()
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.users)
}

// SettingsSet reports whether security settings decide permissions (else
// every client that logged in may do everything).
func (g *Guard) SettingsSet() bool { return g.o.SettingsSet }

// Login checks c and returns the client's Subject, or a *LoginError. A
// password login from a host with recent failures first waits (see
// ThrottleOptions), within ctx.
func (g *Guard) Login(ctx context.Context, c Credentials) (*Subject, error) {
	if g.o.Disabled {
		return &Subject{g: g, User: c.User, all: true}, nil
	}
	g.refresh()
	host := hostOf(c.Remote)
	if c.User == "" && c.Password == "" {
		if c.Cert != nil {
			g.mu.Lock()
			a := g.certs[normalizeDN(c.Cert.Subject.String())]
			g.mu.Unlock()
			if a != nil {
				return g.subject(a.name, false, true), nil
			}
		}
		g.mu.Lock()
		anon := g.anonymous
		g.mu.Unlock()
		if anon {
			return &Subject{g: g, Anonymous: true}, nil
		}
		reason := "this broker requires a user name and password"
		if c.Cert != nil {
			reason = fmt.Sprintf("the client certificate %q is no user's (tandem user add --cert-subject), and this broker requires a login", clip(c.Cert.Subject.String()))
		}
		g.logs.log(g.log, slog.LevelWarn, "login-anonymous", "login refused: no credentials",
			"remote", c.Remote, "protocol", c.Protocol)
		return nil, &LoginError{Reason: reason}
	}
	g.mu.Lock()
	open := g.anonymous && len(g.users) == 0 && g.o.RequireLogin == nil
	g.mu.Unlock()
	if open && (g.o.ClusterUser == "" || c.User != g.o.ClusterUser) {
		// No user at all and require-login unset (the older behaviour):
		// whatever the credentials, the client is anonymous.
		return &Subject{g: g, Anonymous: true, User: c.User}, nil
	}
	release, err := g.throttle.wait(ctx, host)
	if err != nil {
		g.logs.log(g.log, slog.LevelWarn, "login-throttled", "login refused: too many failed logins from this host",
			"user", clip(c.User), "remote", c.Remote, "protocol", c.Protocol, "reason", err.Error())
		return nil, &LoginError{User: c.User, Reason: err.Error()}
	}
	defer release()
	s, ok := g.checkPassword(c.User, c.Password)
	if !ok {
		n, next := g.throttle.failed(host)
		g.logs.log(g.log, slog.LevelWarn, "login-failed", "login failed: wrong user name or password",
			"user", clip(c.User), "remote", c.Remote, "protocol", c.Protocol, "failures", n, "next_delay", next)
		return nil, &LoginError{User: c.User, Reason: "wrong user name or password"}
	}
	return s, nil
}

// checkPassword checks a user's password, through the login cache.
func (g *Guard) checkPassword(user, password string) (*Subject, bool) {
	mac := hmac.New(sha256.New, g.key[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var k [32]byte
	copy(k[:], mac.Sum(nil))
	now := g.o.Now()
	g.mu.Lock()
	e, hit := g.cache[k]
	a := g.users[user]
	gen := g.gen.Load()
	g.mu.Unlock()
	if hit && now.Before(e.expires) {
		if !e.ok {
			return nil, false
		}
		return g.subject(e.user, false, false), true
	}
	ok, cluster := false, false
	switch {
	case a != nil && a.hash != "":
		ok, _ = VerifyPassword(a.hash, password)
	case a != nil && a.cert == "":
		ok = subtle.ConstantTimeCompare([]byte(a.clear), []byte(password)) == 1
	case a == nil && g.o.ClusterUser != "" && user == g.o.ClusterUser:
		ok = subtle.ConstantTimeCompare([]byte(g.o.ClusterPassword), []byte(password)) == 1
		cluster = ok
	default:
		// An unknown user (or a certificate user) costs what a wrong
		// password does.
		dummyHash.derive(password, keyLen)
	}
	if g.o.Interval > 0 {
		g.mu.Lock()
		if g.gen.Load() == gen { // not reloaded meanwhile
			if len(g.cache) >= maxLoginCache {
				clear(g.cache)
			}
			g.cache[k] = cached{user: user, ok: ok, expires: now.Add(g.o.Interval)}
		}
		g.mu.Unlock()
	}
	if !ok {
		return nil, false
	}
	return g.subject(user, cluster, false), true
}

// ClusterLogin checks a broker's credentials (replication, cluster
// probes): only the cluster user and password pass, whatever the users,
// and whether or not security is enabled.
func (g *Guard) ClusterLogin(ctx context.Context, c Credentials) error {
	return g.CheckCredentials(ctx, c, g.o.ClusterUser, g.o.ClusterPassword)
}

// CheckCredentials checks c against one user and password (a replication
// handler's cluster credentials), through the delay after failed logins.
func (g *Guard) CheckCredentials(ctx context.Context, c Credentials, wantUser, wantPassword string) error {
	host := hostOf(c.Remote)
	release, err := g.throttle.wait(ctx, host)
	if err != nil {
		return &LoginError{User: c.User, Reason: err.Error()}
	}
	defer release()
	userOK := subtle.ConstantTimeCompare([]byte(c.User), []byte(wantUser)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(c.Password), []byte(wantPassword)) == 1
	if wantUser == "" || !userOK || !passOK {
		n, next := g.throttle.failed(host)
		g.logs.log(g.log, slog.LevelWarn, "cluster-login-failed", "broker connection refused: not the cluster user and password",
			"user", clip(c.User), "remote", c.Remote, "protocol", c.Protocol, "failures", n, "next_delay", next)
		return &LoginError{User: c.User, Reason: "a broker connection needs the cluster user and password (cluster-user, cluster-password)"}
	}
	return nil
}

func (g *Guard) subject(user string, cluster, cert bool) *Subject {
	return &Subject{g: g, User: user, Cluster: cluster, Cert: cert}
}

// rolesOf returns a subject's roles as the users are now.
func (g *Guard) rolesOf(s *Subject) []string {
	if s.Anonymous {
		return g.o.AnonymousRoles
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if a := g.users[s.User]; a != nil {
		return a.roles
	}
	return nil
}

// decide answers a permission without the cache.
func (g *Guard) decide(s *Subject, roles []string, p Permission, address string) error {
	if !s.Anonymous && !s.Cluster {
		g.mu.Lock()
		_, exists := g.users[s.User]
		g.mu.Unlock()
		if !exists {
			return &DeniedError{User: s.User, Permission: p, Address: address, Why: "the user no longer exists"}
		}
	}
	st := g.o.Settings.For(address)
	if st == nil {
		return &DeniedError{User: s.User, Permission: p, Address: address, Why: "no security-setting matches the address"}
	}
	allowed := st.Roles[p.String()]
	for _, r := range roles {
		if slices.Contains(allowed, r) {
			return nil
		}
	}
	why := fmt.Sprintf("security-setting match=%q gives %s to roles [%s]; the user has [%s]", st.Match, p,
		strings.Join(allowed, ","), strings.Join(roles, ","))
	return &DeniedError{User: s.User, Permission: p, Address: address, Why: why}
}

// Subject is a client that logged in: its user and how it authenticated.
// Its permissions follow the users and settings as they are now (a user
// removed from the users file loses them within the invalidation
// interval). A nil *Subject may do everything (the broker's own work).
type Subject struct {
	g *Guard
	// User is the user name ("" for an anonymous client).
	User string
	// Anonymous: no credentials. Cluster: the cluster user. Cert: a
	// client certificate.
	Anonymous, Cluster, Cert bool
	all                      bool // security disabled

	mu    sync.Mutex
	gen   uint64
	roles []string
	cache map[permKey]error
}

type permKey struct {
	p    Permission
	addr string
}

// maxSubjectCache bounds one subject's cached decisions.
const maxSubjectCache = 1024

// Authorize returns nil when the subject may use p on address, else a
// *DeniedError (errors.Is(err, ErrDenied)). Denials are logged,
// rate-limited.
func (s *Subject) Authorize(p Permission, address string) error {
	if s == nil || s.all {
		return nil
	}
	g := s.g
	if !g.o.SettingsSet {
		return nil
	}
	g.refresh()
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen := g.gen.Load(); s.gen != gen || s.cache == nil {
		s.roles = g.rolesOf(s)
		s.cache = map[permKey]error{}
		s.gen = gen
	}
	k := permKey{p, address}
	if err, ok := s.cache[k]; ok {
		return err
	}
	err := g.decide(s, s.roles, p, address)
	if err != nil {
		g.logs.log(g.log, slog.LevelInfo, "denied", "permission denied",
			"user", clip(s.User), "permission", p.String(), "address", clip(address))
	}
	if g.o.Interval > 0 {
		if len(s.cache) >= maxSubjectCache {
			clear(s.cache)
		}
		s.cache[k] = err
	}
	return err
}

// Name returns the user name, or "anonymous".
func (s *Subject) Name() string {
	if s == nil || s.User == "" {
		return "anonymous"
	}
	return s.User
}

// normalizeDN makes two spellings of a distinguished name compare equal:
// attribute types upper case, no space around ',' and '=', and the RDNs in
// either order (Go prints them most specific first, as RFC 4514 does;
// Java's keytool the same way; some tools reverse them).
func normalizeDN(dn string) string {
	parts := splitDN(dn)
	for i, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		parts[i] = strings.ToUpper(strings.TrimSpace(k)) + "=" + strings.TrimSpace(v)
	}
	rev := slices.Clone(parts)
	slices.Reverse(rev)
	a, b := strings.Join(parts, ","), strings.Join(rev, ",")
	return min(a, b)
}

// splitDN splits a DN at the commas that are not escaped.
func splitDN(dn string) []string {
	var out []string
	var cur strings.Builder
	esc := false
	for _, r := range dn {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			cur.WriteRune(r)
			esc = true
		case r == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}
