package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// Conn is a connection to a broker (or to a live/backup pair with
// ha=true). It outlives its TCP connections: on loss it reconnects as the
// URL's options say and re-creates its sessions and consumers. Safe for
// concurrent use.
type Conn struct {
	url  *URL
	opts options
	log  *slog.Logger
	ids  atomic.Uint64

	cur atomic.Pointer[transport] // nil while (re)connecting or closed

	mu       sync.Mutex
	ready    chan struct{} // closed when cur is set again or the Conn closes
	closed   bool
	closeErr error
	gen      uint64
	sessions map[uint64]*Session
	topology wire.Topology
	nodeID   string
	addr     string

	cmu       sync.RWMutex
	consumers map[uint64]*Consumer

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // failover goroutines
}

// Dial connects to the broker at rawURL (see URL for the forms). It tries
// each address of the URL in order, InitialConnectAttempts passes, and
// returns the first that answers. ctx bounds the whole attempt.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Conn, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c := &Conn{url: u, sessions: map[uint64]*Session{}, consumers: map[uint64]*Consumer{}, ready: make(chan struct{})}
	c.opts.user, c.opts.password = u.User, u.Password
	for _, o := range opts {
		o(&c.opts)
	}
	c.log = c.opts.log
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.opts.tls == nil {
		tp, err := tlsconfig.FromParams(u.Params)
		if err != nil {
			return nil, fmt.Errorf("url %q: %w", Redact(rawURL), err)
		}
		if tp.Enabled {
			if c.opts.tls, err = tp.Client(); err != nil {
				return nil, fmt.Errorf("url %q: %w", Redact(rawURL), err)
			}
		}
	}
	if c.opts.clientID == "" {
		c.opts.clientID = randomID()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var lastErr error
	var pause time.Duration
	counted := 0 // passes that count against initialConnectAttempts
	for round := 0; ; round++ {
		if round > 0 {
			pause = u.nextInterval(pause)
			if c.opts.retry != nil {
				c.opts.retry(ConnectRetry{Pass: counted, Attempts: u.InitialConnectAttempts, Addrs: u.Addrs, Err: lastErr, Pause: pause})
			}
			if err := sleepCtx(ctx, pause); err != nil {
				break
			}
		}
		waiting := false
		for _, addr := range u.Addrs {
			t, err := c.connect(ctx, addr)
			if err != nil {
				lastErr = err
				c.log.Debug("connect failed", "addr", addr, "err", err)
				var se *ServerError
				if u.HA && errors.As(err, &se) && se.Code == wire.CodeUnavailable {
					waiting = true
				}
				continue
			}
			c.install(t)
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
		// A pass that found an HA pair in transition (a broker answered
		// that it is not the live, and no live answered) does not count:
		// a live is coming. Only passes where nothing usable answered do.
		if !waiting {
			counted++
		}
		if u.InitialConnectAttempts >= 0 && counted >= max(u.InitialConnectAttempts, 1) {
			break
		}
	}
	c.cancel()
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	return nil, fmt.Errorf("client: dial %s: %w", Redact(rawURL), lastErr)
}

// connect opens one TCP connection and does the handshake.
func (c *Conn) connect(ctx context.Context, addr string) (*transport, error) {
	// a broker that accepts but never answers must not stall failover for
	// the whole call timeout
	limit := c.url.CallTimeout
	if p := c.url.ClientFailureCheckPeriod; p > 0 && p < limit {
		limit = p
	}
	ctx, cancel := withTimeout(ctx, min(limit, 10*time.Second))
	defer cancel()
	d := c.opts.dialer
	if d == nil {
		d = &net.Dialer{}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if c.opts.tls != nil {
		host, _, _ := net.SplitHostPort(addr)
		tc := tls.Client(nc, tlsconfig.ForHost(c.opts.tls, host))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, tlsError(addr, err)
		}
		nc = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	hello := &wire.Hello{
		MinVersion: wire.MinVersion, MaxVersion: wire.Version,
		ClientID: c.opts.clientID, User: c.opts.user, Password: c.opts.password,
		ConnectionTTL: uint32(c.url.ConnectionTTL / time.Millisecond),
		CheckPeriod:   uint32(c.url.ClientFailureCheckPeriod / time.Millisecond),
		WantTopology:  c.url.HA,
	}
	b, err := wire.AppendFrame(nil, 0, hello)
	if err == nil {
		_, err = nc.Write(b)
	}
	var f wire.Frame
	dec := wire.NewDecoder(nc)
	if err == nil {
		_, f, err = dec.Read()
	}
	if err != nil {
		nc.Close()
		if c.opts.tls != nil {
			// TLS 1.3: a refused client certificate shows on the first
			// read.
			return nil, tlsError(addr, err)
		}
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	var w *wire.Welcome
	switch f := f.(type) {
	case *wire.Welcome:
		w = f
	case *wire.Error:
		nc.Close()
		return nil, &ServerError{Op: "connect to " + addr, Code: f.Code, Message: f.Message}
	default:
		nc.Close()
		return nil, fmt.Errorf("handshake with %s: got %v, want Welcome", addr, f.Type())
	}
	c.mu.Lock()
	// Epochs order the activations of one node ID (a live/backup pair
	// shares it); another node's epoch is its own: a scale-down target
	// with a lower epoch is not a stale broker.
	stale := w.Topology.Epoch != 0 && w.Topology.Epoch < c.topology.Epoch && (c.nodeID == "" || w.NodeID == c.nodeID)
	known := c.topology.Epoch
	c.gen++
	gen := c.gen
	c.mu.Unlock()
	if stale {
		// a broker from an older epoch was replaced: never use it
		nc.Close()
		return nil, &ServerError{Op: "connect to " + addr, Code: wire.CodeUnavailable,
			Message: fmt.Sprintf("broker epoch %d is older than the known epoch %d", w.Topology.Epoch, known)}
	}
	_ = nc.SetDeadline(time.Time{})
	return newTransport(c, nc, dec, addr, gen, w), nil
}

// tlsError explains a failed TLS handshake.
func tlsError(addr string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		hint = " (the broker closed the connection: is its acceptor's sslEnabled set, and does it need a client certificate?)"
	case strings.Contains(err.Error(), "remote error: tls:"):
		// The broker's alert: crypto/tls does not export its type.
		hint = " (the broker refused the handshake: check this client's certificate (keyStorePath), its expiry, and the broker's trustStorePath)"
	}
	return fmt.Errorf("TLS handshake with %s: %w%s", addr, err, hint)
}

// install makes t the current transport and starts it.
func (c *Conn) install(t *transport) {
	c.mu.Lock()
	c.adoptNodeLocked(t.welcome.NodeID)
	c.addr = t.addr
	c.mergeTopologyLocked(&t.welcome.Topology)
	c.cur.Store(t)
	c.closeReadyLocked()
	c.mu.Unlock()
	t.start()
}

// transportFor returns the current transport, waiting while failing over.
func (c *Conn) transportFor(ctx context.Context) (*transport, error) {
	for {
		if t := c.cur.Load(); t != nil {
			return t, nil
		}
		c.mu.Lock()
		if c.closed {
			err := c.closeErr
			c.mu.Unlock()
			return nil, err
		}
		if t := c.cur.Load(); t != nil {
			c.mu.Unlock()
			return t, nil
		}
		ready := c.ready
		c.mu.Unlock()
		if testHookWaitTransport != nil {
			testHookWaitTransport()
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Test hooks: testHookWaitTransport runs when a call starts waiting for
// a connection; testHookSend runs just before a request or send (op) is
// handed to transport t.
var (
	testHookWaitTransport func()
	testHookSend          func(op string, t *transport)
)

func (c *Conn) closeReadyLocked() {
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

func (c *Conn) nextID() uint64 { return c.ids.Add(1) }

// request sends a blocking call and waits for its answer.
func (c *Conn) request(ctx context.Context, op string, f wire.Frame, lost lostPolicy) (wire.Frame, error) {
	return c.requestOn(ctx, op, f, lost, nil)
}

// requestOn is request with a hook that sees the transport each attempt
// uses, before the frame is sent on it. It may move the request to the
// next connection (a transport found dead before the frame was queued, or
// a lostRetry call completed by failover): only for requests whose meaning
// does not depend on session state. Those use requestVia.
func (c *Conn) requestOn(ctx context.Context, op string, f wire.Frame, lost lostPolicy, before func(*transport)) (wire.Frame, error) {
	ctx, cancel := withTimeout(ctx, c.url.CallTimeout)
	defer cancel()
	for {
		t, err := c.transportFor(ctx)
		if err != nil {
			return nil, fmt.Errorf("client: %s: %w", op, err)
		}
		if before != nil {
			before(t)
		}
		cl := &call{kind: callRequest, op: op, lost: lost, done: make(chan struct{})}
		if testHookSend != nil {
			testHookSend(op, t)
		}
		if err := t.send(c.nextID(), f, cl); err != nil {
			if errors.Is(err, errTransportDead) {
				c.awaitReplacement(ctx, t)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("client: %s: waiting for a connection: %w", op, ctx.Err())
				}
				continue
			}
			return nil, fmt.Errorf("client: %s: %w", op, err)
		}
		resp, err := c.await(ctx, op, cl, lost)
		if errors.Is(err, errRetry) {
			continue
		}
		return resp, err
	}
}

// requestVia sends a request on t and nowhere else, and waits for t's
// answer: a request whose meaning depends on the session's state on that
// connection (commit, rollback) is never moved to another one, whose
// broker holds other state. An error wrapping errTransportDead means the
// frame was not sent (t had failed); a loss of t while the request is in
// flight completes it as lost says (never lostRetry here).
func (c *Conn) requestVia(ctx context.Context, t *transport, op string, f wire.Frame, lost lostPolicy) (wire.Frame, error) {
	ctx, cancel := withTimeout(ctx, c.url.CallTimeout)
	defer cancel()
	cl := &call{kind: callRequest, op: op, lost: lost, done: make(chan struct{})}
	if testHookSend != nil {
		testHookSend(op, t)
	}
	if err := t.send(c.nextID(), f, cl); err != nil {
		return nil, fmt.Errorf("client: %s: %w", op, err)
	}
	return c.await(ctx, op, cl, lost)
}

// await waits for cl's answer. errRetry comes back unwrapped.
func (c *Conn) await(ctx context.Context, op string, cl *call, lost lostPolicy) (wire.Frame, error) {
	select {
	case <-cl.done:
		if errors.Is(cl.err, errRetry) {
			return nil, errRetry
		}
		if cl.err != nil {
			return nil, fmt.Errorf("client: %s: %w", op, cl.err)
		}
		return cl.resp, nil
	case <-ctx.Done():
		if lost == lostUnknown {
			return nil, fmt.Errorf("client: %s: %w (%w)", op, ErrUnknownOutcome, ctx.Err())
		}
		return nil, fmt.Errorf("client: %s: %w", op, ctx.Err())
	}
}

// awaitReplacement waits until t is no longer the current transport (its
// reader has reported the loss), so a caller that found t dead does not
// spin on it.
func (c *Conn) awaitReplacement(ctx context.Context, t *transport) {
	select {
	case <-t.dead:
	case <-ctx.Done():
		return
	}
	for c.cur.Load() == t && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
}

// result turns a Result answer into an error.
func result(op string, f wire.Frame) error {
	if r, ok := f.(*wire.Result); ok {
		return serverError(op, r.Code, r.Message)
	}
	return nil // nil frame: completed by failover
}

func (c *Conn) consumer(id uint64) *Consumer {
	c.cmu.RLock()
	k := c.consumers[id]
	c.cmu.RUnlock()
	return k
}

func (c *Conn) setTopology(f *wire.Topology) {
	c.mu.Lock()
	c.mergeTopologyLocked(f)
	c.mu.Unlock()
}

// adoptNodeLocked records the node connected to; moving to another node
// (a scale-down's target) drops the topology of the previous one, whose
// epochs say nothing about the new node's.
func (c *Conn) adoptNodeLocked(node string) {
	if c.nodeID != "" && node != c.nodeID {
		c.topology = wire.Topology{}
	}
	c.nodeID = node
}

func (c *Conn) mergeTopologyLocked(f *wire.Topology) {
	if f.Epoch < c.topology.Epoch {
		return // an old broker's view
	}
	if len(f.Members) == 0 && f.Epoch == c.topology.Epoch {
		return
	}
	c.topology = wire.Topology{Epoch: f.Epoch, Members: append([]wire.Member(nil), f.Members...)}
}

// Topology returns the brokers the client knows of (from Welcome and
// Topology frames).
func (c *Conn) Topology() wire.Topology {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wire.Topology{Epoch: c.topology.Epoch, Members: append([]wire.Member(nil), c.topology.Members...)}
}

// NodeID returns the node ID of the broker last connected to.
func (c *Conn) NodeID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodeID
}

// Addr returns the address of the broker last connected to.
func (c *Conn) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Close closes the connection. Sends and acks still in flight complete
// with ErrUnknownOutcome (transacted sends with ErrTransactionRolledBack:
// their transaction ends with the connection); later calls fail with
// ErrClosed. It does not
// wait for confirmations: wait for them first.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.closeErr = ErrClosed
	c.closeReadyLocked()
	t := c.cur.Swap(nil)
	c.cancel()
	c.mu.Unlock()
	if t != nil {
		t.fail(ErrClosed)
		t.wg.Wait()
	}
	c.wg.Wait()
	c.failConsumers(ErrClosed) // ends Receive and listeners
	c.cmu.RLock()
	ks := make([]*Consumer, 0, len(c.consumers))
	for _, k := range c.consumers {
		ks = append(ks, k)
	}
	c.cmu.RUnlock()
	for _, k := range ks {
		k.lwg.Wait()
	}
	return nil
}

func (c *Conn) emit(e Event) {
	if c.opts.listener != nil {
		c.opts.listener(e)
	}
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
