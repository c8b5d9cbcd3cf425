// Package config reads a broker's configuration: broker.xml in Apache
// ActiveMQ Artemis syntax (namespaces urn:activemq, urn:activemq:core or
// none) into a typed Config with Artemis's defaults, and renders the
// effective configuration as JSON for `tandem config check`.
//
// Every <ha-policy> snippet of the AMQ Broker 7 manual (section 14.3) is
// accepted verbatim, old and new names alike (master/slave/live-only and
// primary/backup/primary-only). An element that Artemis's schema does not
// allow at its place (a typo, an option of another policy, two policies)
// is an error "FILE:LINE: message". An element that Artemis allows but
// Tandem does not implement yet (addresses, diverts, paging settings, an
// address-setting's dead-letter and
// expiry settings...) is a warning "FILE:LINE: warning: <element> not
// supported yet, ignored".
//
// <address-settings> holds the auto-create and auto-delete settings of
// queues and addresses (AddressSettings: matched in Artemis's wildcard
// syntax, merged from the most specific match, Artemis's defaults
// otherwise); docs/address-settings.md describes them for users.
//
// Defaults follow Artemis's code, with two deliberate differences:
// journal-buffer-timeout 0 (the default) means adaptive group commit (a
// value > 0 caps the extra wait), and restart-backup defaults to true.
//
// Tandem extensions to the Artemis syntax, all inside <core>:
//
//   - journal-type DIRECT: O_DIRECT pwrite + fdatasync (see package aio).
//   - <security>: <require-login>, <anonymous-role>, <users-file> (the
//     users file beside broker.xml, etc/users by default: package auth
//     reads it, this package only resolves its path) and the older
//     <users><user name="..." password="..." roles="a,b"/></users> with
//     clear-text passwords (a warning). Artemis's <security-settings> and
//     <security-invalidation-interval> are read as Artemis writes them
//     (security.go, docs/security.md).
//   - <management-http-ssl keyStorePath="..." .../>: TLS on the management
//     address, with the acceptor URL's TLS parameter names. TLS parameters
//     on acceptor and connector URLs are checked here; package tlsconfig
//     reads the stores.
//   - <management-http-address>127.0.0.1:8161</management-http-address>:
//     the management HTTP listener (Artemis sets it in bootstrap.xml).
//   - <max-queues>10000</max-queues> and <max-addresses>: broker-wide caps
//     on the number of queues and addresses (-1: none; max-addresses
//     defaults to max-queues). Artemis has per-user max-queues in
//     resource-limit-settings only.
//   - <pprof-enabled>, <connections-allowed>, <connection-ttl-max>, and the
//     acceptor URL parameter writeTimeout: limits against misbehaving
//     clients (docs/limits.md). The acceptor parameters connectionsAllowed,
//     writeBufferHighWaterMark and writeBufferLowWaterMark are Artemis's.
//
// Relative paths are relative to the broker instance directory: the parent
// of the etc/ directory holding broker.xml (as `artemis create` lays it
// out), or else the directory holding the file.
//
// Every numeric element (and ZooKeeper <manager> property) is checked
// against one table of ranges (ranges.go; RangeOf): a value outside is an
// error "FILE:LINE: NAME VALUE out of range [MIN, MAX] UNIT". Quantities
// derived from several elements are bounded too: the segments the journal
// preallocates or keeps for reuse take at most MaxJournalDisk.
//
// docs/configuration.md is the users' reference: every element, with its
// default, range and what Tandem does with it. TestDocsListElements fails
// when an element of the parser's tables or source is missing there.
//
// Use: Load(path) or Parse(name, r) returns the Config and the warnings
// (print them; they do not stop the broker) or an error whose text is one
// "FILE:LINE: message" per line (errors.As finds the first *Error).
// Default() is the configuration without a file. Config.ApplyDataDir
// implements `tandem run --data`. Config.JSON is `tandem config check`.
//
// Also accepted, with a warning: the malformed end tag "</name/>" that the
// AMQ Broker manual prints in its colocated example, ${...} property
// references (used as written: Tandem does not substitute them), vm://
// acceptors (dropped) and connectors (kept for references), <xi:include>
// (ignored) and the old <jms> element.
//
// This package owns parsing, validation and defaults. It must never start,
// open or lock anything (no files besides the configuration, no sockets),
// never read environment variables, and never panic on any input.
package config
