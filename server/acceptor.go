package server

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// NetOptions configure an acceptor.
type NetOptions struct {
	// Users maps user names to passwords; empty allows anonymous access.
	Users map[string]string
	// DefaultTTL is the connection TTL when the client asks for none
	// (Artemis's connection-ttl default: 60 s).
	DefaultTTL time.Duration
	// TTLOverride, when > 0, replaces the client's TTL
	// (connection-ttl-override).
	TTLOverride time.Duration
	// HandshakeTimeout bounds the wait for Hello (default 10 s).
	HandshakeTimeout time.Duration
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
	proto    protoState  // protocol.go

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
	a := &Acceptor{s: s, ln: ln, opts: opts, conns: map[*conn]struct{}{}, done: make(chan struct{})}
	s.trackAcceptor(a)
	go a.accept()
	return a
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
			a.s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c := newConn(a, nc)
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			nc.Close()
			continue
		}
		a.conns[c] = struct{}{}
		a.wg.Add(1)
		a.mu.Unlock()
		go func() {
			defer a.wg.Done()
			a.serveConn(c)
		}()
	}
}

func (a *Acceptor) forget(c *conn) {
	a.mu.Lock()
	delete(a.conns, c)
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
	return err
}
