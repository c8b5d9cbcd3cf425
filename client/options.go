package client

import "log/slog"

// Option configures Dial.
type Option func(*options)

type options struct {
	clientID string
	user     string
	password string
	userSet  bool
	log      *slog.Logger
	listener func(Event)
}

// WithClientID names the client in the broker's logs and /status.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithCredentials sets the user and password (overriding the URL's).
func WithCredentials(user, password string) Option {
	return func(o *options) { o.user, o.password, o.userSet = user, password, true }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithFailureListener registers fn to hear of connection failures and
// failover: EventFailingOver when the connection is lost and the client
// starts reconnecting, EventFailedOver when it serves again (possibly on
// another broker), EventFailed when it gave up (or reconnection is off:
// reconnectAttempts=0) and the Conn is closed. fn runs on the client's
// failover goroutine: it must not block on the Conn.
func WithFailureListener(fn func(Event)) Option { return func(o *options) { o.listener = fn } }

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
