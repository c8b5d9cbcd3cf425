package stomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// conn is one STOMP connection. The goroutine running Serve reads and
// dispatches frames in order (it owns subs and txs); a writer goroutine
// writes; deliveries and the answers to sends, acks and commits are
// encoded by whichever goroutine produces them (the broker's queue and
// journal goroutines) into the writer, which never blocks them.
type conn struct {
	h   *Handler
	pc  server.ProtocolConn
	s   *server.Server
	nc  net.Conn
	log *slog.Logger
	ctx context.Context // the acceptor's: ends when it closes
	dec *Decoder
	out *writer

	version  string // negotiated; "" before CONNECT
	escape   bool   // headers are escaped (1.1 and 1.2)
	clientID string
	ttl      time.Duration
	sess     *server.Session
	anyPfx   []string
	multiPfx []string

	// Owned by the reader goroutine.
	subs    map[string]*subscription
	byIdx   map[uint64]*subscription
	nextIdx uint64
	txs     map[string]*server.Session

	ops       *budget // sends, acks and commits awaiting their outcome
	failOnce  sync.Once
	failed    chan struct{} // closed by fail: the connection is ending
	hbStop    chan struct{}
	hbDone    chan struct{}
	sessionID uint64
}

// Bounds on what one connection has in flight (awaiting the journal).
const (
	maxOpsInFlight   = 1024
	maxBytesInFlight = 8 << 20
)

func newConn(ctx context.Context, h *Handler, pc server.ProtocolConn) *conn {
	c := &conn{
		h: h, pc: pc, s: pc.Server, nc: pc.Conn, log: pc.Logger, ctx: ctx,
		dec:  NewDecoder(pc.Reader, limits),
		subs: map[string]*subscription{}, byIdx: map[uint64]*subscription{}, txs: map[string]*server.Session{},
		ops:    newBudget(maxOpsInFlight, maxBytesInFlight),
		failed: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.anyPfx = prefixes(pc.Params["anycastPrefix"])
	c.multiPfx = prefixes(pc.Params["multicastPrefix"])
	return c
}

func prefixes(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// protocolError is a client's mistake: answered with an ERROR frame, then
// the connection closes (STOMP has no way to go on after an ERROR).
type protocolError struct {
	msg     string // the ERROR frame's message header
	receipt string // the receipt of the frame that caused it
	detail  string // the body
	logged  bool   // logged already (a failed login: by the guard, rate-limited)
}

// loggedProtocolError marks e as logged already.
func loggedProtocolError(e *protocolError) *protocolError {
	e.logged = true
	return e
}

func (e *protocolError) Error() string {
	if e.detail != "" {
		return e.msg + ": " + e.detail
	}
	return e.msg
}

func errorf(f *Frame, msg string, format string, args ...any) *protocolError {
	e := &protocolError{msg: msg, detail: fmt.Sprintf(format, args...)}
	if f != nil {
		e.receipt = f.Value("receipt")
	}
	return e
}

// run serves the connection: the handshake, then frames until the client
// disconnects, a frame is bad, the connection fails or the acceptor
// closes; then it releases everything the connection held.
func (c *conn) run() {
	err := c.serve()
	var pe *protocolError
	errors.As(err, &pe)
	switch {
	case errors.As(err, &pe):
		c.fail(pe)
	case c.ctx.Err() != nil:
		c.fail(&protocolError{msg: "broker shutting down", detail: "the acceptor is closing: reconnect (to the live broker of the pair)"})
	default:
		c.fail(nil)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errDisconnected) && c.ctx.Err() == nil && (pe == nil || !pe.logged) {
		c.log.Info("stomp connection closed", "reason", err)
	} else {
		c.log.Debug("stomp connection closed", "reason", err)
	}
	c.cleanup()
	if pe != nil {
		c.drain()
	}
}

// drain lets an ERROR frame reach the client: it half-closes the
// connection and reads (and drops) what the client still sends for a
// moment, so closing with unread input does not reset the connection
// before the client read the ERROR.
func (c *conn) drain() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.nc.(closeWriter); ok {
		cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c.pc.Reader, 4<<20)
}

var errDisconnected = errors.New("client disconnected")

// fail ends the connection once: an ERROR frame when pe is set, then the
// writer is closed (it writes what is pending first) and the reader is
// woken. Safe from any goroutine.
func (c *conn) fail(pe *protocolError) {
	c.failOnce.Do(func() {
		if pe != nil && c.out != nil {
			if c.ctx.Err() == nil && !pe.logged {
				c.log.Warn("stomp: closing connection with an ERROR frame", "message", pe.msg, "detail", pe.detail)
			}
			e := &Frame{Command: "ERROR"}
			e.Set("message", pe.msg)
			if pe.receipt != "" {
				e.Set("receipt-id", pe.receipt)
			}
			if pe.detail != "" {
				e.Set("content-type", "text/plain")
				e.Body = []byte(pe.detail)
			}
			c.frame(e)
		} else if pe != nil {
			// Before the writer exists (a bad CONNECT): write directly.
			e := &Frame{Command: "ERROR"}
			e.Set("message", pe.msg)
			if pe.detail != "" {
				e.Set("content-type", "text/plain")
				e.Body = []byte(pe.detail)
			}
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.nc.Write(AppendFrame(nil, e))
		}
		close(c.failed)
		if c.out != nil {
			c.out.close()
		}
		// Wake the reader if it waits for a frame.
		c.nc.SetReadDeadline(time.Now())
	})
}

// cleanup runs once the reader has stopped: the session's consumers close
// (their unacknowledged messages go back to their queues), open
// transactions roll back, the writer flushes.
func (c *conn) cleanup() {
	if c.hbStop != nil {
		close(c.hbStop)
		<-c.hbDone
	}
	for _, tx := range c.txs {
		tx.Close()
	}
	if c.sess != nil {
		c.sess.Close()
	}
	if c.out != nil {
		c.out.wait(2 * time.Second)
	}
}

// frame queues f for the client.
func (c *conn) frame(f *Frame) {
	esc := c.escape
	if f.Command == "CONNECTED" {
		esc = false // never escaped (STOMP 1.2)
	}
	c.out.frame(func(b []byte) []byte { return appendFrame(b, f, esc) }, nil)
}

// receipt answers a frame's receipt header, if it has one.
func (c *conn) receipt(id string) {
	if id == "" {
		return
	}
	esc := c.escape
	c.out.frame(func(b []byte) []byte {
		b = append(b, "RECEIPT\nreceipt-id:"...)
		b = appendValue(b, id, esc)
		return append(b, '\n', '\n', 0)
	}, nil)
}

func appendValue(b []byte, v string, esc bool) []byte {
	if esc {
		return appendEscaped(b, v)
	}
	return append(b, v...)
}

// serve runs the handshake and the frame loop.
func (c *conn) serve() error {
	if err := c.handshake(); err != nil {
		return err
	}
	var last time.Time
	for {
		if err := c.out.waitRoom(c.ctx); err != nil {
			return err
		}
		if now := time.Now(); now.Sub(last) > c.ttl/8 {
			c.nc.SetReadDeadline(now.Add(c.ttl))
			last = now
		}
		f, err := c.dec.Next()
		if err != nil {
			return c.readError(err)
		}
		if f == nil {
			continue // heart-beat
		}
		if err := c.dispatch(f); err != nil {
			return err
		}
	}
}

// readError turns a decoder error into the connection's end reason.
func (c *conn) readError(err error) error {
	select {
	case <-c.failed:
		return errDisconnected // fail already answered
	default:
	}
	if c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	var fe *FrameError
	var ne net.Error
	switch {
	case errors.As(err, &fe):
		return &protocolError{msg: "malformed frame", detail: fe.Error()}
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("nothing received for the connection TTL (%v)", c.ttl)
	}
	return err
}

// handshake reads CONNECT (or STOMP), checks version and credentials and
// answers CONNECTED.
func (c *conn) handshake() error {
	c.nc.SetReadDeadline(time.Now().Add(c.pc.HandshakeTimeout))
	var f *Frame
	for f == nil {
		var err error
		if f, err = c.dec.Next(); err != nil {
			return c.readError(err)
		}
	}
	if f.Command != "CONNECT" && f.Command != "STOMP" {
		return errorf(f, "expected CONNECT", "the first frame was %s; a STOMP connection starts with CONNECT or STOMP", f.Command)
	}
	version, ok := negotiateVersion(f.Value("accept-version"))
	if !ok {
		return errorf(f, "unsupported STOMP version", "accept-version %q: this broker speaks 1.0, 1.1 and 1.2", f.Value("accept-version"))
	}
	if _, err := c.pc.Login(f.Value("login"), f.Value("passcode")); err != nil {
		// The guard logged it; the client gets its reason (never about
		// the passcode beyond "wrong").
		return loggedProtocolError(errorf(f, "authentication failed", "%v", err))
	}
	cx, cy, err := parseHeartBeat(f.Value("heart-beat"))
	if err != nil {
		return errorf(f, "bad heart-beat header", "%v", err)
	}
	c.version, c.escape = version, version != "1.0"
	c.clientID = f.Value("client-id")
	c.ttl = c.pc.DefaultTTL
	if c.pc.TTLOverride > 0 {
		c.ttl = c.pc.TTLOverride
	}
	if v := c.pc.Params["connectionTtl"]; v != "" {
		if ms, err := strconv.ParseUint(v, 10, 31); err == nil && ms > 0 {
			c.ttl = time.Duration(ms) * time.Millisecond
		}
	}
	if cx > 0 {
		c.ttl = max(2*cx, time.Second) // Artemis's heartBeatToConnectionTtlModifier, 2.0
		if m := c.pc.TTLMax; m > 0 && c.ttl > m {
			c.ttl = m // the client chose it: connection-ttl-max caps it
		}
	}
	if c.ttl <= 0 {
		c.ttl = 60 * time.Second
	}
	var sx time.Duration
	if cy > 0 {
		sx = max(cy, 500*time.Millisecond)
	}
	c.sessionID = c.h.ids.Add(1)
	wt := c.h.opts.WriteTimeout
	if wt <= 0 {
		wt = max(c.ttl, 30*time.Second)
	}
	c.out = newWriter(c.nc, wt, c.written)
	go c.out.run() // ends when the writer closes (cleanup waits for it)
	c.sess = c.s.NewSession(false)
	cf := &Frame{Command: "CONNECTED"}
	cf.Set("version", version)
	cf.Set("server", "Tandem/"+server.Version)
	cf.Set("session", strconv.FormatUint(c.sessionID, 10))
	cf.Set("heart-beat", fmt.Sprintf("%d,%d", sx.Milliseconds(), cx.Milliseconds()))
	c.frame(cf)
	if sx > 0 {
		c.hbStop, c.hbDone = make(chan struct{}), make(chan struct{})
		go c.heartBeats(sx) // ends when cleanup closes hbStop
	}
	c.log.Debug("stomp client connected", "version", version, "user", f.Value("login"), "ttl", c.ttl, "heart_beat", sx)
	return nil
}

// heartBeats sends an EOL whenever nothing was written for one interval.
func (c *conn) heartBeats(every time.Duration) {
	defer close(c.hbDone)
	t := time.NewTicker(every)
	defer t.Stop()
	last := c.out.count()
	for {
		select {
		case <-c.hbStop:
			return
		case <-t.C:
		}
		if n := c.out.count(); n != last {
			last = n
			continue
		}
		c.out.frame(func(b []byte) []byte { return append(b, '\n') }, nil)
		last = c.out.count()
	}
}

// dispatch handles one frame after the handshake.
func (c *conn) dispatch(f *Frame) error {
	switch f.Command {
	case "SEND":
		return c.handleSend(f)
	case "SUBSCRIBE":
		return c.handleSubscribe(f)
	case "UNSUBSCRIBE":
		return c.handleUnsubscribe(f)
	case "ACK", "NACK":
		return c.handleAck(f)
	case "BEGIN":
		tx, err := c.txName(f)
		if err != nil {
			return err
		}
		if _, ok := c.txs[tx]; ok {
			return errorf(f, "transaction already begun", "transaction %q is open; COMMIT or ABORT it first", tx)
		}
		c.txs[tx] = c.s.NewSession(true)
		c.receipt(f.Value("receipt"))
	case "COMMIT":
		return c.handleCommit(f)
	case "ABORT":
		tx, err := c.txName(f)
		if err != nil {
			return err
		}
		ss, ok := c.txs[tx]
		if !ok {
			return errorf(f, "no such transaction", "ABORT of transaction %q, which was not begun (or already ended)", tx)
		}
		delete(c.txs, tx)
		ss.Close() // rolls back: acked messages go back to their queues
		c.receipt(f.Value("receipt"))
	case "DISCONNECT":
		// Everything received before it is answered first.
		if err := c.ops.waitIdle(c.ctx, c.failed); err != nil {
			return err
		}
		c.receipt(f.Value("receipt"))
		c.fail(nil)
		return errDisconnected
	case "CONNECT", "STOMP":
		return errorf(f, "already connected", "a second %s on a connected session", f.Command)
	default:
		return errorf(f, "unknown command", "%q is not a STOMP client frame", f.Command)
	}
	return nil
}

func (c *conn) txName(f *Frame) (string, error) {
	tx := f.Value("transaction")
	if tx == "" {
		return "", errorf(f, "missing transaction header", "%s needs a transaction header", f.Command)
	}
	return tx, nil
}

// resolve maps a destination (and its routing header, destination-type
// or subscription-type) to an address and routing: an acceptor prefix
// (anycastPrefix, multicastPrefix) decides and is stripped; else the
// header; else the address's own routing, anycast for a new one.
func (c *conn) resolve(f *Frame, routingHeader string) (server.Destination, error) {
	name := f.Value("destination")
	if name == "" {
		return server.Destination{}, errorf(f, "missing destination header", "%s needs a destination header", f.Command)
	}
	for _, p := range c.anyPfx {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return server.Destination{Name: name[len(p):], Routing: server.Anycast}, nil
		}
	}
	for _, p := range c.multiPfx {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return server.Destination{Name: name[len(p):], Routing: server.Multicast}, nil
		}
	}
	switch v := f.Value(routingHeader); v {
	case "ANYCAST":
		return server.Destination{Name: name, Routing: server.Anycast}, nil
	case "MULTICAST":
		return server.Destination{Name: name, Routing: server.Multicast}, nil
	case "":
		return server.Destination{Name: name, Routing: c.s.DefaultRouting(name)}, nil
	default:
		return server.Destination{}, errorf(f, "bad "+routingHeader+" header", "%s %q: want ANYCAST or MULTICAST", routingHeader, v)
	}
}

// reserved are headers with a meaning in STOMP or in the mapping; every
// other header of a SEND is kept as a string property.
var reserved = map[string]bool{
	"destination": true, "receipt": true, "transaction": true, "content-length": true,
	"persistent": true, "destination-type": true, dupHeader: true, "message-id": true,
	"subscription": true, "ack": true, "timestamp": true, "redelivered": true, "expires": true,
}

// dupHeader is Artemis's duplicate ID property, used as a header.
const dupHeader = "_AMQ_DUPL_ID"

func (c *conn) handleSend(f *Frame) error {
	dest, err := c.resolve(f, "destination-type")
	if err != nil {
		return err
	}
	m := &server.Message{
		Durable:     f.Value("persistent") == "true",
		DuplicateID: f.Value(dupHeader),
		Timestamp:   time.Now().UnixNano(),
		Body:        f.Body,
	}
	if v := f.Value("expires"); v != "" && v != "0" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
			return errorf(f, "bad expires header", "expires %q: want milliseconds since the epoch (0: never)", v)
		}
		m.Expiration = ms * int64(time.Millisecond)
	}
	if len(m.Body) > server.MaxBodySize {
		return errorf(f, "message too large", "a body of %d bytes; the limit is %d", len(m.Body), server.MaxBodySize)
	}
	seen := map[string]bool{}
	for _, h := range f.Headers {
		if reserved[h.Key] || seen[h.Key] {
			continue
		}
		seen[h.Key] = true
		m.Properties = append(m.Properties, server.Property{Key: h.Key, Kind: wire.KindString, Str: h.Value})
	}
	receipt := f.Value("receipt")
	if tx := f.Value("transaction"); tx != "" {
		ss, ok := c.txs[tx]
		if !ok {
			return errorf(f, "no such transaction", "SEND in transaction %q, which was not begun (or already ended)", tx)
		}
		var serr error
		ss.Send(c.ctx, dest, m, func(err error) { serr = err }) // transacted: done runs at once
		if serr != nil {
			return errorf(f, "send refused", "%v", serr)
		}
		c.receipt(receipt)
		return nil
	}
	size := len(m.Body)
	if err := c.ops.acquire(c.ctx, c.failed, size); err != nil {
		return err
	}
	c.sess.Send(c.ctx, dest, m, func(err error) {
		c.ops.release(size)
		if err != nil {
			c.fail(&protocolError{msg: "send failed", receipt: receipt, detail: err.Error()})
			return
		}
		c.receipt(receipt)
	})
	return nil
}

func (c *conn) handleCommit(f *Frame) error {
	tx, err := c.txName(f)
	if err != nil {
		return err
	}
	ss, ok := c.txs[tx]
	if !ok {
		return errorf(f, "no such transaction", "COMMIT of transaction %q, which was not begun (or already ended)", tx)
	}
	delete(c.txs, tx)
	receipt := f.Value("receipt")
	if err := c.ops.acquire(c.ctx, c.failed, 0); err != nil {
		ss.Close()
		return err
	}
	ss.Commit(c.ctx, func(err error) {
		c.ops.release(0)
		ss.Close()
		if err != nil {
			c.fail(&protocolError{msg: "commit failed", receipt: receipt, detail: "transaction " + tx + " rolled back: " + err.Error()})
			return
		}
		c.receipt(receipt)
	})
	return nil
}
