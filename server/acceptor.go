package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/wire"
)

// NetOptions configure an acceptor.
type NetOptions struct {
	// Security checks logins and permissions (docs/security.md); nil
	// builds a guard from Users.
	Security *auth.Guard
	// Users maps user names to clear-text passwords, for a broker
	// assembled without a configuration (tests); empty allows anonymous
	// access. Ignored when Security is set.
	Users map[string]string
	// TLS, when set, makes every connection TLS (the acceptor URL's
	// sslEnabled): the handshake comes first, then the protocol is
	// detected inside it. A client that starts in plain text is told
	// that the acceptor requires TLS.
	TLS *tls.Config
	// DefaultTTL is the connection TTL when the client asks for none
	// (Artemis's connection-ttl default: 60 s).
	DefaultTTL time.Duration
	// TTLOverride, when > 0, replaces the client's TTL
	// (connection-ttl-override).
	TTLOverride time.Duration
	// HandshakeTimeout bounds the wait for Hello (default 10 s).
	HandshakeTimeout time.Duration
	// TTLMax caps the TTL a client asks for in Hello (connection-ttl-max);
	// 0 means DefaultTTLMax, < 0 no cap. TTLOverride, when set, still
	// replaces the result.
	TTLMax time.Duration

	// ConnectionsAllowed is the acceptor's own connection limit (Artemis's
	// acceptor parameter connectionsAllowed); <= 0 means none. A
	// connection over it (or over Budget) is closed at once, after an
	// Error frame with CodeUnavailable.
	ConnectionsAllowed int
	// Budget, when set, is a connection limit shared with other acceptors
	// (the broker-wide connections-allowed).
	Budget *ConnectionBudget

	// HighWaterMark and LowWaterMark bound the bytes queued for a client
	// (Artemis's writeBufferHighWaterMark and writeBufferLowWaterMark;
	// 0: DefaultHighWaterMark, DefaultLowWaterMark). Past the high mark
	// the connection reads no more requests and its consumers get no more
	// credit until the queue drains to the low mark.
	HighWaterMark, LowWaterMark int
	// WriteTimeout closes a connection whose client takes no byte of what
	// is queued for it for that long (0: DefaultWriteTimeout; < 0: never).
	WriteTimeout time.Duration

	// Protocols restricts what the acceptor serves (protocols=, see
	// ParseProtocols); empty serves CORE and every registered protocol.
	Protocols []string
	// Params are the acceptor URL's parameters, for protocol handlers.
	Params map[string]string
}

// Acceptor accepts client connections on one listener.
type Acceptor struct {
	s    *Server
	ln   net.Listener
	opts NetOptions

	stopping atomic.Bool // Close has begun
	stats    netCounters
	logs     *logLimiter
	refusal  []byte     // the Error frame a refused connection gets
	proto    protoState // protocol.go

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}
}

// Listen opens a TCP acceptor on addr (host:port) and starts accepting.
func (s *Server) Listen(addr string, opts NetOptions) (*Acceptor, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: acceptor %s: %w", addr, err)
	}
	return s.Serve(ln, opts), nil
}

// Serve accepts connections on ln until the acceptor is closed.
func (s *Server) Serve(ln net.Listener, opts NetOptions) *Acceptor {
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = 60 * time.Second
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.TTLMax == 0 {
		opts.TTLMax = DefaultTTLMax
	}
	if opts.Security == nil {
		opts.Security = auth.NewStatic(opts.Users)
	}
	a := &Acceptor{s: s, ln: ln, opts: opts, conns: map[*conn]struct{}{}, done: make(chan struct{}), logs: newLogLimiter()}
	a.refusal, _ = wire.AppendFrame(nil, 0, &wire.Error{Code: wire.CodeUnavailable,
		Message: "connection limit reached: the broker accepts no more connections now"})
	s.trackAcceptor(a)
	go a.accept()
	return a
}

// Stats returns the acceptor's counters.
func (a *Acceptor) Stats() NetStats {
	return NetStats{
		Refused: a.stats.refused.Load(), WriteTimeouts: a.stats.writeTimeouts.Load(),
		ReadPauses: a.stats.readPauses.Load(), ProtocolErrors: a.stats.protocolErrors.Load(), TLSErrors: a.stats.tlsErrors.Load(),
		LogSuppressed: a.logs.suppressed.Load(),
	}
}

// refuse closes a connection over a limit, cheaply: one small write (a
// new socket's buffer takes it at once), a close, a rate-limited log line.
func (a *Acceptor) refuse(nc net.Conn, limit string, n int) {
	a.stats.refused.Add(1)
	nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	nc.Write(a.refusal)
	nc.Close()
	a.logs.log(a.s.log, slog.LevelWarn, "refused", "connection refused: connection limit reached",
		"remote", nc.RemoteAddr().String(), "limit", limit, "allowed", n)
}

// Addr returns the listening address.
func (a *Acceptor) Addr() net.Addr { return a.ln.Addr() }

func (a *Acceptor) accept() {
	defer close(a.done)
	var delay time.Duration
	for {
		nc, err := a.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors (EMFILE): back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			a.logs.log(a.s.log, slog.LevelWarn, "accept", "accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			nc.Close()
			continue
		}
		if n := a.opts.ConnectionsAllowed; n > 0 && len(a.conns) >= n {
			a.mu.Unlock()
			a.refuse(nc, "connectionsAllowed", n)
			continue
		}
		if !a.opts.Budget.take() {
			a.mu.Unlock()
			a.refuse(nc, "connections-allowed", a.opts.Budget.Max())
			continue
		}
		if a.opts.TLS != nil {
			nc = newTLSConn(nc, a.opts.TLS)
		}
		c := newConn(a, nc)
		a.conns[c] = struct{}{}
		a.wg.Add(1)
		a.mu.Unlock()
		go func() {
			defer a.wg.Done()
			a.serveConn(c)
		}()
		// Let the new connection read its Hello before accepting the
		// next: without this, a flood of connections is accepted
		// thousands at a time (each holding its buffers) before any is
		// served.
		runtime.Gosched()
	}
}

func (a *Acceptor) forget(c *conn) {
	a.mu.Lock()
	if _, ok := a.conns[c]; ok {
		delete(a.conns, c)
		a.opts.Budget.release()
	}
	a.mu.Unlock()
}

// Connections returns the number of open connections.
func (a *Acceptor) Connections() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.conns)
}

// Close stops accepting, tells every client why (code) and closes its
// connection; their unacked deliveries go back to their queues. It waits
// for the connections to end.
func (a *Acceptor) Close(code wire.Code, reason string) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.stopping.Store(true)
	if a.s.Frozen() {
		// Operations parked by Freeze would keep their connections'
		// readers, which Close waits for.
		a.s.Release(ErrClosed)
	}
	cs := make([]*conn, 0, len(a.conns))
	for c := range a.conns {
		cs = append(cs, c)
	}
	a.mu.Unlock()
	err := a.ln.Close()
	<-a.done
	a.cancelProtocols()
	for _, c := range cs {
		c.out.frame(0, &wire.Disconnect{Code: code, Message: reason})
		c.out.close()
		// Unblock the reader; it then runs shutdown.
		c.nc.SetReadDeadline(time.Now())
	}
	a.wg.Wait()
	a.logs.stop()
	return err
}
