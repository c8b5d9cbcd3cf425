package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// conn is one client connection: a reader goroutine that decodes and
// dispatches frames in order, and a writer goroutine (outq.run).
type conn struct {
	s   *Server
	acc *Acceptor
	nc  net.Conn
	id  uint64
	log *slog.Logger
	out *outq
	ttl time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	slot   *subjectSlot // the client's subject, in ctx, once logged in

	// Owned by the reader goroutine.
	sessions  map[uint64]*Session
	consumers map[uint64]connConsumer
	tempQs    []*Queue
	topoStop  func()

	closeOnce sync.Once
	writerErr chan error

	// inflight counts requests awaiting a durable answer; the answer that
	// brings it to zero is urgent (see outq).
	inflight atomic.Int32
	dec      *wire.Decoder // Buffered tells a lone request
	// prefix holds the first bytes, when the acceptor read them to detect
	// the protocol (protocol.go); src is what dec reads: prefix, then nc.
	prefix []byte
	src    io.Reader

	// writeErr is the write error that failed the connection (the reason
	// logged for it).
	writeErr atomic.Pointer[error]

	// starved are consumer flows that could not be given credit while the
	// output was blocked; the writer tops them up once it is not.
	starveMu sync.Mutex
	starved  []*flow

	since time.Time                // accepted at
	metaP atomic.Pointer[connMeta] // manage.go
	lg    largeConn                // largeconn.go

	// clusterConn: a cluster connection (cluster.go), authenticated with
	// the cluster credentials; clusterSrc is its ClusterJoin.
	clusterConn bool
	clusterSrc  *clusterSource
}

// lone reports whether the request just read is alone: nothing else
// outstanding on the connection and nothing more received.
func (c *conn) lone() bool { return c.dec.Buffered() == 0 && c.inflight.Load() == 0 }

// begin counts a request awaiting a durable answer.
func (c *conn) begin() {
	c.inflight.Add(1)
	c.s.inflight.Add(1)
}

// end uncounts it and reports whether its answer is urgent (written
// inline by the goroutine completing it): it was the last one outstanding
// on the connection, and at most inlineOthers requests remain in flight in
// the whole broker. A synchronous producer next to a consumer (whose ack
// is often in flight) is answered without a writer goroutine hand-off;
// with many requests in flight, answers go through the writer goroutines,
// which run in parallel instead of serialising socket writes on the
// journal's callback goroutine.
func (c *conn) end() bool {
	last := c.inflight.Add(-1) == 0
	return c.s.inflight.Add(-1) <= inlineOthers && last
}

// inlineOthers is how many other requests in flight in the broker still
// let an answer be written inline: one, the consumer's ack beside a
// synchronous producer's send.
const inlineOthers = 1

type connConsumer struct {
	sess *Session
	c    *Consumer
	wsid uint64 // the client's session ID
	fl   *flow
}

// flow passes a consumer's credit from its client to the server consumer
// in windows, so that only what the connection can write is delivered
// (Artemis's consumer window and slow-consumer handling): a client may
// grant 2^32-1 messages, but the server consumer holds at most a window
// of them, topped up while the connection's output is not blocked. The
// window is consumerWindowBytes worth of the consumer's recent delivery
// sizes, 1 to maxWindow messages; a delivery takes one from it.
type flow struct {
	c    *conn
	cons *Consumer // set before any credit is given

	mu      sync.Mutex
	want    int64 // granted by the client, not yet passed on
	granted int64 // passed on, not yet delivered
	est     int   // recent largest deliver frame (decays by 1/16 a delivery)
	starved bool  // in c.starved
}

func newFlow(c *conn) *flow { return &flow{c: c, est: initialFrameEstimate} }

func (f *flow) window() int64 {
	return min(max(int64(consumerWindowBytes/max(f.est, 1)), 1), maxWindow)
}

// credit adds n messages the client granted (reader goroutine).
func (f *flow) credit(n int64) {
	f.mu.Lock()
	f.want = min(f.want+n, 1<<62)
	g := f.topUpLocked()
	f.mu.Unlock()
	f.give(g)
}

// delivered accounts one delivery of size bytes (the delivery handler).
func (f *flow) delivered(size int) {
	f.mu.Lock()
	f.granted--
	f.est = max(size, f.est-f.est/16)
	g := f.topUpLocked()
	f.mu.Unlock()
	f.give(g)
}

// topUpLocked returns how much credit to pass on now: the window's free
// part once half of it is used, unless the output is blocked (then the
// flow waits in c.starved). Caller holds f.mu.
func (f *flow) topUpLocked() int64 {
	w := f.window()
	if f.want == 0 || f.granted > w/2 || f.starved {
		return 0
	}
	if !f.c.mayGrant(f) {
		f.starved = true
		return 0
	}
	n := min(f.want, w-f.granted)
	if n <= 0 {
		return 0
	}
	f.want -= n
	f.granted += n
	return n
}

func (f *flow) give(n int64) {
	if n > 0 {
		f.cons.Credit(int(n))
	}
}

// mayGrant reports whether credit may be passed on now; when the output is
// blocked it registers f to be topped up once it is not. Checking and
// registering under starveMu orders them with writable's taking of the
// list, which happens after blocked clears.
func (c *conn) mayGrant(f *flow) bool {
	c.starveMu.Lock()
	defer c.starveMu.Unlock()
	if c.out.blocked.Load() {
		c.starved = append(c.starved, f)
		return false
	}
	return true
}

// writable runs on the writer's goroutine when the output drained to the
// low water mark: the starved flows get their credit.
func (c *conn) writable() {
	c.starveMu.Lock()
	fs := c.starved
	c.starved = nil
	c.starveMu.Unlock()
	for _, f := range fs {
		f.mu.Lock()
		f.starved = false
		g := f.topUpLocked()
		f.mu.Unlock()
		f.give(g)
	}
}

var connIDs atomic.Uint64

// MaxHelloSize is the largest frame a connection may send before its
// handshake is done: a client not yet authenticated gets no more memory
// than that.
const MaxHelloSize = 16 << 10

// errStopping ends connections when their acceptor closes.
var errStopping = errors.New("acceptor closing")

func newConn(a *Acceptor, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	ctx, slot := withSlot(ctx)
	c := &conn{
		s: a.s, acc: a, nc: nc, id: connIDs.Add(1),
		ctx: ctx, cancel: cancel, slot: slot,
		sessions: map[uint64]*Session{}, consumers: map[uint64]connConsumer{},
		writerErr: make(chan error, 1), since: time.Now(),
	}
	c.out = newOutq(nc, outqLimits{high: a.opts.HighWaterMark, low: a.opts.LowWaterMark, writeTimeout: a.opts.WriteTimeout}, c.writeFailed)
	c.out.onWritable = c.writable
	c.log = a.s.log.With("conn", c.id, "remote", nc.RemoteAddr().String())
	return c
}

// writeFailed records the write error that ends the connection and closes
// the socket, which ends the reader.
func (c *conn) writeFailed(err error) {
	c.writeErr.CompareAndSwap(nil, &err)
	c.nc.Close()
}

// serve runs the connection until it ends; the caller's goroutine is the
// reader.
func (c *conn) serve() {
	go func() { c.writerErr <- c.out.run(c.nc) }()
	reason := c.read()
	c.shutdown(reason)
}

// shutdown closes sessions (redelivering their unacked messages), deletes
// temporary queues, flushes and closes the socket.
func (c *conn) shutdown(reason error) {
	c.closeOnce.Do(func() {
		var stuck *errWriteStuck
		p := c.writeErr.Load()
		if p != nil && !errors.As(*p, &stuck) && !errors.Is(*p, net.ErrClosed) {
			reason = *p // the write failed and closed the socket: say why, not "use of closed connection"
		}
		if p != nil && errors.As(*p, &stuck) {
			c.acc.stats.writeTimeouts.Add(1)
			c.acc.logs.log(c.log, slog.LevelWarn, "write-timeout", "closing connection: the client does not read", "reason", *p)
		} else if reason != nil && !errors.Is(reason, io.EOF) && !errors.Is(reason, net.ErrClosed) && reason != errStopping &&
			reason != errHandedOff && reason != errOutqStopped && !errors.As(reason, new(loggedError)) {
			c.acc.logs.log(c.log, slog.LevelInfo, "closed", "connection closed", "reason", reason)
		} else {
			c.log.Debug("connection closed")
		}
		if c.topoStop != nil {
			c.topoStop()
		}
		for _, ss := range c.sessions {
			ss.Close()
		}
		for _, q := range c.tempQs {
			c.s.deleteQueue(q)
		}
		c.cancel()
		c.closeLarge()
		c.out.close()
		select {
		case <-c.writerErr:
		case <-time.After(2 * time.Second):
		}
		if reason != errHandedOff { // the replication handler owns the socket now
			c.nc.Close()
		}
		c.acc.forget(c)
	})
}

// loggedError is a reason for closing a connection that was logged
// already.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

// protocolError reports a malformed or misplaced frame to the client and
// ends the connection with that reason.
func (c *conn) protocolError(err error) error {
	c.acc.stats.protocolErrors.Add(1)
	c.acc.logs.log(c.log, slog.LevelWarn, "protocol", "closing connection: protocol error", "reason", err)
	c.out.frame(0, &wire.Error{Code: wire.CodeProtocol, Message: err.Error()})
	return loggedError{err}
}

// read runs the handshake and then dispatches frames until an error.
func (c *conn) read() error {
	c.src = c.nc
	if len(c.prefix) > 0 { // the acceptor read the first bytes (protocol.go)
		c.src = io.MultiReader(bytes.NewReader(c.prefix), c.nc)
		c.prefix = nil
	}
	dec := wire.NewDecoder(c.src)
	c.dec = dec
	dec.SetMaxFrameSize(MaxHelloSize)
	c.nc.SetReadDeadline(time.Now().Add(c.acc.opts.HandshakeTimeout))
	h, err := dec.Next()
	if err != nil {
		var fe *wire.FrameError
		if errors.As(err, &fe) {
			return c.protocolError(err)
		}
		return err
	}
	if h.Type != wire.TypeHello {
		return c.protocolError(fmt.Errorf("first frame is %v, want Hello", h.Type))
	}
	var hello wire.Hello
	if err := dec.Unmarshal(&hello); err != nil {
		return c.protocolError(err)
	}
	if err := c.handshake(h, &hello); err != nil {
		return err
	}
	dec.SetMaxFrameSize(0)

	var f frames
	lastDeadline := time.Time{}
	for {
		if c.out.blocked.Load() {
			// Answers are not being read: read no more requests until
			// they are (back-pressure), or the write timeout ends it.
			c.acc.stats.readPauses.Add(1)
			if err := c.out.waitWritable(c.ctx); err != nil {
				if c.acc.stopping.Load() {
					return errStopping
				}
				if p := c.writeErr.Load(); p != nil {
					return *p
				}
				return err
			}
			lastDeadline = time.Time{} // the TTL counts from now
		}
		if now := time.Now(); now.Sub(lastDeadline) > c.ttl/8 {
			c.nc.SetReadDeadline(now.Add(c.ttl))
			lastDeadline = now
		}
		h, err := dec.Next()
		if err != nil {
			var fe *wire.FrameError
			var ne net.Error
			switch {
			case errors.As(err, &fe):
				return c.protocolError(err)
			case errors.As(err, &ne) && ne.Timeout() && c.acc.stopping.Load():
				return errStopping
			case errors.As(err, &ne) && ne.Timeout():
				c.out.frame(0, &wire.Disconnect{Code: wire.CodeTimeout, Message: "no traffic within the connection TTL"})
				return fmt.Errorf("nothing received for the connection TTL (%v)", c.ttl)
			}
			return err
		}
		if err := c.dispatch(dec, h, &f); err != nil {
			return err
		}
	}
}

// handshake checks the version and credentials and answers Welcome.
func (c *conn) handshake(h wire.Header, hello *wire.Hello) error {
	lo, hi := max(hello.MinVersion, wire.MinVersion), min(hello.MaxVersion, wire.Version)
	if lo > hi {
		c.out.frame(0, &wire.Error{Code: wire.CodeUnsupportedVersion,
			Message: fmt.Sprintf("client speaks versions %d-%d, broker %d-%d", hello.MinVersion, hello.MaxVersion, wire.MinVersion, wire.Version)})
		return fmt.Errorf("no common protocol version with client %d-%d", hello.MinVersion, hello.MaxVersion)
	}
	if hello.ClientID == wire.ReplicaClientID {
		return c.handOffReplica(h, hello)
	}
	if hello.ClientID == wire.QuorumClientID {
		return c.handOffQuorum(h, hello)
	}
	user := hello.User // who the connection is, for management's list
	if hello.ClientID == wire.ClusterClientID {
		// Another broker moving messages here or asking for a backup
		// (cluster.go): only the cluster user; what it does is the
		// broker's own work, not a client's (a nil subject).
		lctx, cancel := context.WithTimeout(c.ctx, c.acc.opts.HandshakeTimeout)
		err := c.acc.security().CheckCredentials(lctx, auth.Credentials{User: hello.User, Password: hello.Password,
			Remote: c.nc.RemoteAddr().String(), Protocol: "cluster"}, c.s.opts.ClusterUser, c.s.opts.ClusterPassword)
		cancel()
		if err != nil {
			c.out.frame(0, &wire.Error{Code: wire.CodeAuthFailed, Message: "a cluster connection needs the cluster user and password"})
			return loggedError{fmt.Errorf("cluster connection refused: %w", err)}
		}
		c.clusterConn = true
		c.slot.set(nil)
	} else {
		lctx, cancel := context.WithTimeout(c.ctx, c.acc.opts.HandshakeTimeout)
		sub, err := c.acc.login(lctx, c.nc, "core", hello.User, hello.Password)
		cancel()
		if err != nil {
			// The guard logged it (rate-limited); the client learns why,
			// never anything about the password.
			c.out.frame(0, &wire.Error{Code: wire.CodeAuthFailed, Message: err.Error()})
			return loggedError{err}
		}
		c.slot.set(sub)
		user = sub.User
	}
	if err := c.s.checkUsable(); err != nil {
		c.out.frame(0, &wire.Error{Code: wire.CodeUnavailable, Message: err.Error()})
		return err
	}
	c.ttl = c.acc.opts.DefaultTTL
	if hello.ConnectionTTL > 0 {
		c.ttl = time.Duration(hello.ConnectionTTL) * time.Millisecond
	}
	if c.acc.opts.TTLMax > 0 && c.ttl > c.acc.opts.TTLMax {
		c.ttl = c.acc.opts.TTLMax
	}
	if c.acc.opts.TTLOverride > 0 {
		c.ttl = c.acc.opts.TTLOverride
	}
	c.ttl = max(c.ttl, 100*time.Millisecond)
	if hello.ClientID != "" {
		c.log = c.log.With("client", clip(hello.ClientID))
	}
	c.setMeta(connMeta{protocol: "core", user: user, clientID: hello.ClientID})
	w := &wire.Welcome{Version: hi, NodeID: c.s.nodeID, ServerVersion: Version, ConnectionID: c.id,
		ConnectionTTL: uint32(c.ttl / time.Millisecond), Topology: toWireTopology(c.s.Topology())}
	c.out.frame(h.Corr, w)
	if hello.WantTopology {
		first := true
		c.topoStop = c.s.subscribeTopology(func(t Topology) {
			if first { // already in Welcome
				first = false
				return
			}
			wt := toWireTopology(t)
			c.out.frame(0, &wt)
		})
	}
	c.log.Debug("client connected", "user", clip(hello.User), "version", hi, "ttl", c.ttl)
	return nil
}

func toWireTopology(t Topology) wire.Topology {
	wt := wire.Topology{Epoch: t.Epoch}
	for _, m := range t.Members {
		wt.Members = append(wt.Members, wire.Member{NodeID: m.NodeID, Role: m.Role, State: m.State, URL: m.URL, Epoch: m.Epoch})
	}
	return wt
}

// frames are the reader's reused frame values.
type frames struct {
	send   wire.Send
	ack    wire.Ack
	credit wire.Credit
}

// codeOf maps a server error to a wire code.
func codeOf(err error) wire.Code {
	switch {
	case err == nil:
		return wire.CodeOK
	case errors.Is(err, ErrMessageTooLarge), errors.Is(err, journal.ErrTooLarge), errors.Is(err, ErrNoLargeStore):
		return wire.CodeTooLarge
	case errors.Is(err, ErrNoSuchQueue), errors.Is(err, ErrUnknownDelivery):
		return wire.CodeNotFound
	case errors.Is(err, ErrHalted), errors.Is(err, journal.ErrClosed), errors.Is(err, ErrNotActive), errors.Is(err, ErrFrozen):
		return wire.CodeUnavailable
	case errors.Is(err, ErrClosed):
		return wire.CodeShuttingDown
	case errors.Is(err, ErrNotTransacted), errors.Is(err, ErrQueueInUse), errors.Is(err, ErrWrongRouting), errors.Is(err, ErrBadSelector),
		errors.Is(err, ErrInvalid):
		return wire.CodeInvalid
	case errors.Is(err, ErrQueueExists):
		return wire.CodeExists
	case errors.Is(err, ErrLimit), errors.Is(err, ErrAddressFull):
		return wire.CodeLimit
	case errors.Is(err, auth.ErrDenied):
		return wire.CodeForbidden
	case errors.Is(err, auth.ErrLogin):
		return wire.CodeAuthFailed
	}
	return wire.CodeInternal
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// dispatch handles one frame.
func (c *conn) dispatch(dec *wire.Decoder, h wire.Header, f *frames) error {
	corr := h.Corr
	switch h.Type {
	case wire.TypeSend:
		if err := dec.Unmarshal(&f.send); err != nil {
			return c.protocolError(err)
		}
		c.handleSend(corr, &f.send)
	case wire.TypeAck:
		if err := dec.Unmarshal(&f.ack); err != nil {
			return c.protocolError(err)
		}
		c.handleAck(corr, &f.ack)
	case wire.TypeCredit:
		if err := dec.Unmarshal(&f.credit); err != nil {
			return c.protocolError(err)
		}
		if cc, ok := c.consumers[f.credit.Consumer]; ok {
			cc.fl.credit(int64(f.credit.N))
		}
	case wire.TypePing:
		c.out.frame(corr, &wire.Pong{})
	case wire.TypePong:
	default:
		fr := wire.NewFrame(h.Type)
		if err := dec.Unmarshal(fr); err != nil {
			return c.protocolError(err)
		}
		return c.control(corr, fr)
	}
	return nil
}

// control handles the less frequent frames.
func (c *conn) control(corr uint64, fr wire.Frame) error {
	switch f := fr.(type) {
	case *wire.CreateSession:
		if _, ok := c.sessions[f.Session]; ok {
			c.out.resultFrame(corr, wire.CodeExists, fmt.Sprintf("session %d exists", f.Session))
			return nil
		}
		c.sessions[f.Session] = c.s.NewSession(f.Transacted)
		c.sessions[f.Session].SetOwner(c.id)
		c.out.resultFrame(corr, wire.CodeOK, "")
	case *wire.CloseSession:
		ss, ok := c.sessions[f.Session]
		if !ok {
			c.out.resultFrame(corr, wire.CodeNotFound, fmt.Sprintf("no session %d", f.Session))
			return nil
		}
		delete(c.sessions, f.Session)
		for id, cc := range c.consumers {
			if cc.sess == ss {
				delete(c.consumers, id)
			}
		}
		ss.Close()
		c.out.resultFrame(corr, wire.CodeOK, "")
	case *wire.Commit:
		ss, ok := c.sessions[f.Session]
		if !ok {
			c.out.resultFrame(corr, wire.CodeNotFound, fmt.Sprintf("no session %d", f.Session))
			return nil
		}
		ss.Commit(c.ctx, func(err error) {
			code := codeOf(err)
			if err != nil && code != wire.CodeUnavailable {
				code = wire.CodeTxRolledBack
			}
			c.out.resultFrame(corr, code, errText(err))
		})
	case *wire.Rollback:
		ss, ok := c.sessions[f.Session]
		if !ok {
			c.out.resultFrame(corr, wire.CodeNotFound, fmt.Sprintf("no session %d", f.Session))
			return nil
		}
		err := ss.Rollback()
		c.out.resultFrame(corr, codeOf(err), errText(err))
	case *wire.CreateQueue:
		q, err := c.s.CreateQueue(c.ctx, QueueConfig{Address: f.Address, Name: f.Queue, Routing: routingOf(f.Routing, Anycast),
			Durable: f.Durable, Temporary: f.Temporary})
		if q != nil && f.Temporary { // also when its answer is ErrNotActive: it may exist
			c.tempQs = append(c.tempQs, q)
		}
		c.out.resultFrame(corr, codeOf(err), errText(err))
	case *wire.DeleteQueue:
		err := c.s.DeleteQueue(c.ctx, f.Queue)
		c.out.resultFrame(corr, codeOf(err), errText(err))
	case *wire.CreateConsumer:
		c.handleCreateConsumer(corr, f)
	case *wire.SendLarge:
		return c.handleSendLarge(f)
	case *wire.LargeChunk:
		return c.handleLargeChunk(corr, f)
	case *wire.Manage:
		c.handleManage(corr, f)
	case *wire.CloseConsumer:
		cc, ok := c.consumers[f.Consumer]
		if !ok {
			c.out.resultFrame(corr, wire.CodeNotFound, fmt.Sprintf("no consumer %d", f.Consumer))
			return nil
		}
		delete(c.consumers, f.Consumer)
		err := cc.sess.CloseConsumer(cc.c.ID())
		c.out.resultFrame(corr, codeOf(err), errText(err))
	case *wire.ClusterJoin, *wire.ClusterMessages, *wire.ClusterDupIDs, *wire.BackupRequest:
		return c.handleCluster(corr, fr)
	case *wire.Hello:
		return c.protocolError(errors.New("second Hello after the handshake"))
	default:
		return c.protocolError(fmt.Errorf("unexpected %v frame from a client", fr.Type()))
	}
	return nil
}

func routingOf(r wire.RoutingType, def Routing) Routing {
	switch r {
	case wire.RoutingAnycast:
		return Anycast
	case wire.RoutingMulticast:
		return Multicast
	}
	return def
}

func (c *conn) handleSend(corr uint64, f *wire.Send) {
	ss, ok := c.sessions[f.Session]
	if !ok {
		if corr != 0 {
			c.out.sendResultFrame(corr, wire.CodeNotFound, fmt.Sprintf("no session %d", f.Session), false, false)
		}
		return
	}
	wm := &f.Message
	m := &Message{Durable: wm.Durable, DuplicateID: wm.DuplicateID, Timestamp: wm.Timestamp, Expiration: wm.Expiration}
	if len(wm.Properties) > 0 {
		m.Properties = make([]Property, len(wm.Properties))
		copy(m.Properties, wm.Properties)
		for i := range m.Properties {
			if b := m.Properties[i].Bytes; b != nil {
				m.Properties[i].Bytes = append([]byte(nil), b...)
			}
		}
	}
	// The body aliases the decode buffer until Send returns: the server
	// copies it (into the journal record for a persistent message).
	m.Body, m.borrowed = wm.Body, true
	dest := Destination{Name: wm.Address, Routing: c.s.defaultRouting(wm.Address, wm.Routing)}
	if corr == 0 {
		ss.Send(c.ctx, dest, m, func(error) {})
		return
	}
	out := c.out
	lone := c.lone()
	c.begin()
	ss.Send(c.ctx, dest, m, func(err error) {
		urgent := c.end() && lone
		out.sendResultFrame(corr, codeOf(err), errText(err), err == nil && m.ID == 0, urgent)
	})
}

func (c *conn) handleAck(corr uint64, f *wire.Ack) {
	cc, ok := c.consumers[f.Consumer]
	if !ok {
		if corr != 0 {
			c.out.ackConfirmFrame(corr, wire.CodeNotFound, fmt.Sprintf("no consumer %d", f.Consumer), nil, false)
		}
		return
	}
	out := c.out
	lone := c.lone()
	if corr != 0 {
		c.begin()
	}
	if len(f.MessageIDs) == 1 {
		id := f.MessageIDs[0]
		cc.sess.Ack(cc.c.ID(), id, func(err error) {
			if corr == 0 {
				return
			}
			urgent := c.end() && lone
			switch {
			case err == nil:
				out.ackConfirmFrame(corr, wire.CodeOK, "", nil, urgent)
			case errors.Is(err, ErrUnknownDelivery):
				out.ackConfirmFrame(corr, wire.CodeOK, "", []uint64{id}, urgent)
			default:
				out.ackConfirmFrame(corr, codeOf(err), err.Error(), nil, urgent)
			}
		})
		return
	}
	cc.sess.AckMany(cc.c.ID(), f.MessageIDs, func(failed []uint64, err error) {
		if corr != 0 {
			urgent := c.end() && lone
			out.ackConfirmFrame(corr, codeOf(err), errText(err), failed, urgent)
		}
	})
}

func (c *conn) handleCreateConsumer(corr uint64, f *wire.CreateConsumer) {
	fail := func(code wire.Code, msg string) {
		c.out.frame(corr, &wire.ConsumerCreated{Code: code, Message: msg})
	}
	ss, ok := c.sessions[f.Session]
	if !ok {
		fail(wire.CodeNotFound, fmt.Sprintf("no session %d", f.Session))
		return
	}
	if _, ok := c.consumers[f.Consumer]; ok {
		fail(wire.CodeExists, fmt.Sprintf("consumer %d exists", f.Consumer))
		return
	}
	addr := f.Address
	if addr == "" {
		addr = f.Queue
	}
	routing := c.s.defaultQueueRouting(addr, f.Routing)
	dest := Destination{Name: addr, Routing: routing}
	opts := ConsumerOptions{NonDurable: f.AutoCreate && !f.Durable, Selector: f.Filter}
	if routing == Multicast && f.Queue != "" && f.Queue != addr {
		opts.Subscription = f.Queue
	}
	if routing == Anycast && f.Queue != "" {
		dest.Name = f.Queue
	}
	if !f.AutoCreate {
		name := dest.Name
		if opts.Subscription != "" {
			name = opts.Subscription
		}
		if routing == Anycast || opts.Subscription != "" {
			if _, ok := c.s.Queue(name); !ok {
				fail(wire.CodeNotFound, fmt.Sprintf("no queue %q", name))
				return
			}
		}
	}
	wid := f.Consumer
	fl := newFlow(c)
	cons, err := ss.CreateConsumer(c.ctx, dest, opts, func(d Delivery) { c.deliver(wid, fl, d) })
	if err != nil {
		fail(codeOf(err), err.Error())
		return
	}
	fl.cons = cons
	c.consumers[wid] = connConsumer{sess: ss, c: cons, wsid: f.Session, fl: fl}
	c.out.frame(corr, &wire.ConsumerCreated{Code: wire.CodeOK, Queue: cons.Queue()})
	if f.InitialCredit > 0 {
		fl.credit(int64(f.InitialCredit))
	}
}
