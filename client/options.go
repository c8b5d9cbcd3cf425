package client

import (
	"crypto/tls"
	"log/slog"
	"net"
	"time"
)

// Option configures Dial.
type Option func(*options)

type options struct {
	tls      *tls.Config
	dialer   *net.Dialer
	clientID string
	user     string
	password string
	userSet  bool
	log      *slog.Logger
	listener func(Event)
	retry    func(ConnectRetry)
}

// WithClientID names the client in the broker's logs and /status.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithCredentials sets the user and password (overriding the URL's).
func WithCredentials(user, password string) Option {
	return func(o *options) { o.user, o.password, o.userSet = user, password, true }
}

// WithTLS makes every connection TLS with c (its ServerName, when empty,
// is the host dialled), instead of what the URL's sslEnabled,
// trustStorePath... parameters say.
func WithTLS(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithDialer dials with d (a local address to dial from, keep-alives)
// instead of a zero net.Dialer.
func WithDialer(d *net.Dialer) Option { return func(o *options) { o.dialer = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithFailureListener registers fn to hear of connection failures and
// failover: EventFailingOver when the connection is lost and the client
// starts reconnecting, EventFailedOver when it serves again (possibly on
// another broker), EventFailed when it gave up (or reconnection is off:
// reconnectAttempts=0) and the Conn is closed. fn runs on the client's
// failover goroutine: it must not block on the Conn.
func WithFailureListener(fn func(Event)) Option { return func(o *options) { o.listener = fn } }

// ConnectRetry tells a ConnectRetryListener that Dial's pass over the
// URL's addresses found no broker and it will try again.
type ConnectRetry struct {
	Pass     int           // the pass that failed, from 1
	Attempts int           // initialConnectAttempts: passes in all (-1: no limit)
	Addrs    []string      // the addresses tried
	Err      error         // the last address's error
	Pause    time.Duration // the wait before the next pass
}

// WithConnectRetryListener registers fn to hear of each retry of Dial's
// initial connection (initialConnectAttempts > 1 or -1): a program can
// say what it is waiting for. fn runs on Dial's goroutine.
func WithConnectRetryListener(fn func(ConnectRetry)) Option {
	return func(o *options) { o.retry = fn }
}

// EventKind is the kind of a failure Event.
type EventKind int

// Failure event kinds.
const (
	EventFailingOver EventKind = iota + 1
	EventFailedOver
	EventFailed
)

// String returns "failing over", "failed over" or "failed".
func (k EventKind) String() string {
	switch k {
	case EventFailingOver:
		return "failing over"
	case EventFailedOver:
		return "failed over"
	case EventFailed:
		return "failed"
	}
	return "unknown"
}

// Event reports a connection failure or failover step.
type Event struct {
	Kind EventKind
	Addr string // the broker connected to (EventFailedOver) or lost
	Err  error  // the cause (EventFailingOver, EventFailed)
}
