package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Defaults of the per-connection bounds (docs/limits.md).
const (
	// DefaultHighWaterMark and DefaultLowWaterMark are Artemis's defaults
	// of the acceptor parameters writeBufferHighWaterMark and
	// writeBufferLowWaterMark: past the high mark of bytes queued for a
	// client, the connection stops reading requests and stops passing
	// credit to its consumers until the queue drains below the low mark.
	DefaultHighWaterMark = 128 << 10
	DefaultLowWaterMark  = 32 << 10
	// DefaultWriteTimeout is how long a connection may stay without the
	// client taking a single byte of what is queued for it before it is
	// closed (Tandem's acceptor parameter writeTimeout).
	DefaultWriteTimeout = 30 * time.Second
	// DefaultTTLMax caps the connection TTL a client asks for in Hello
	// (Tandem's connection-ttl-max).
	DefaultTTLMax = 5 * time.Minute
)

// Consumer windows (see flow in conn.go): a consumer's credit reaches the
// server consumer in windows of at most consumerWindowBytes worth of its
// recent deliveries, between 1 and maxWindow messages.
const (
	consumerWindowBytes  = 1 << 20 // Artemis's consumer-window-size default
	maxWindow            = 64
	initialFrameEstimate = 256 << 10 // window 4 until sizes are seen
)

// logStringMax is how much of a client-supplied string (client ID, user,
// names) a log line shows.
const logStringMax = 64

// clip shortens a client-supplied string for a log line: at most
// logStringMax bytes (cut at a character boundary) and "...".
func clip(s string) string {
	if len(s) <= logStringMax {
		return s
	}
	i := logStringMax
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// NetStats counts what acceptors refused or cut off; /metrics exports
// them.
type NetStats struct {
	// Refused counts connections refused over connectionsAllowed or the
	// broker-wide connections-allowed.
	Refused uint64
	// WriteTimeouts counts connections closed because the client took no
	// byte of what was queued for it within the write timeout.
	WriteTimeouts uint64
	// ReadPauses counts the times a connection stopped reading requests
	// because its client was not reading the answers (back-pressure).
	ReadPauses uint64
	// ProtocolErrors counts connections closed on a malformed or
	// misplaced frame.
	ProtocolErrors uint64
	// LogSuppressed counts log lines about clients dropped by the rate
	// limit (each window's count is logged once).
	LogSuppressed uint64
	// TLSErrors counts connections to a TLS acceptor closed before their
	// handshake completed: a failed handshake (an untrusted or expired
	// certificate), or a client speaking plain text.
	TLSErrors uint64
}

// Add returns the sum of two NetStats.
func (n NetStats) Add(o NetStats) NetStats {
	return NetStats{
		Refused: n.Refused + o.Refused, WriteTimeouts: n.WriteTimeouts + o.WriteTimeouts,
		ReadPauses: n.ReadPauses + o.ReadPauses, ProtocolErrors: n.ProtocolErrors + o.ProtocolErrors,
		LogSuppressed: n.LogSuppressed + o.LogSuppressed, TLSErrors: n.TLSErrors + o.TLSErrors,
	}
}

type netCounters struct {
	refused, writeTimeouts, readPauses, protocolErrors, tlsErrors atomic.Uint64
}

// ConnectionBudget is a limit on connections shared by acceptors: the
// broker-wide connections-allowed. The zero value and nil allow any
// number.
type ConnectionBudget struct {
	max int64
	n   atomic.Int64
}

// NewConnectionBudget returns a budget of max connections; max <= 0 means
// no limit.
func NewConnectionBudget(max int) *ConnectionBudget { return &ConnectionBudget{max: int64(max)} }

// Max returns the limit (0: none).
func (b *ConnectionBudget) Max() int {
	if b == nil || b.max <= 0 {
		return 0
	}
	return int(b.max)
}

// take counts one more connection unless the budget is spent.
func (b *ConnectionBudget) take() bool {
	if b == nil {
		return true
	}
	for {
		n := b.n.Load()
		if b.max > 0 && n >= b.max {
			return false
		}
		if b.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release uncounts a connection taken.
func (b *ConnectionBudget) release() {
	if b != nil {
		b.n.Add(-1)
	}
}

// Log rate limit: per kind of message, logBurst lines per logWindow; the
// rest are counted and the count is logged once the window ends.
const (
	logWindow = 10 * time.Second
	logBurst  = 5
)

// logLimiter rate-limits log lines that clients can cause (refusals,
// protocol errors, closed connections), by kind. It owns one timer per
// kind with suppressed lines, which logs their count at the window's end;
// stop cancels them.
type logLimiter struct {
	window     time.Duration
	burst      int
	now        func() time.Time
	suppressed atomic.Uint64

	mu      sync.Mutex
	kinds   map[string]*logKind
	stopped bool
}

type logKind struct {
	start   time.Time
	n       int // lines in this window, logged or not
	dropped int
	log     *slog.Logger
	level   slog.Level
	msg     string
	timer   *time.Timer
}

func newLogLimiter() *logLimiter {
	return &logLimiter{window: logWindow, burst: logBurst, now: time.Now, kinds: map[string]*logKind{}}
}

// log logs msg unless kind already logged burst lines in this window.
func (l *logLimiter) log(lg *slog.Logger, level slog.Level, kind, msg string, args ...any) {
	if !lg.Enabled(context.Background(), level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		k = &logKind{start: now}
		l.kinds[kind] = k
	}
	if now.Sub(k.start) >= l.window {
		if k.timer != nil {
			k.timer.Stop()
			k.timer = nil
		}
		l.flushLocked(k)
		k.start, k.n = now, 0
	}
	k.n++
	if k.n <= l.burst {
		l.mu.Unlock()
		lg.Log(context.Background(), level, msg, args...)
		return
	}
	k.dropped++
	l.suppressed.Add(1)
	k.log, k.level, k.msg = lg, level, msg
	if k.timer == nil && !l.stopped {
		k.timer = time.AfterFunc(k.start.Add(l.window).Sub(now), func() {
			l.mu.Lock()
			k.timer = nil
			if !l.stopped {
				l.flushLocked(k)
			}
			l.mu.Unlock()
		})
	}
	l.mu.Unlock()
}

// flushLocked logs how many lines of k's window were dropped.
func (l *logLimiter) flushLocked(k *logKind) {
	if k.dropped == 0 {
		return
	}
	k.log.Log(context.Background(), k.level, fmt.Sprintf("%s: and %d more in the last %v", k.msg, k.dropped, l.window))
	k.dropped = 0
}

// stop logs what is pending and cancels the timers.
func (l *logLimiter) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	for _, k := range l.kinds {
		if k.timer != nil {
			k.timer.Stop()
			k.timer = nil
		}
		l.flushLocked(k)
	}
}
