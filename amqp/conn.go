package amqp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemmq/tandem/server"
)

// Limits of one connection.
const (
	// MaxFrameSize is the max-frame-size the broker announces (Artemis's
	// default): frames larger than it are refused before they are read.
	MaxFrameSize = 128 << 10
	// channelMax is the highest channel (session) number accepted.
	channelMax = 255
	// handleMax is the highest link handle accepted in a session.
	handleMax = 1023
	// maxMessageSize bounds an incoming message (all its sections): a
	// body up to server.MaxBodySize plus room for properties.
	maxMessageSize = server.MaxBodySize + 128<<10
	// linkCredit is the credit a sending client's link gets, refilled
	// when it falls below a third (Artemis's amqpCredits and
	// amqpLowCredits defaults are 1000 and 300).
	linkCredit = 1000
	// sessionWindow is the incoming-window of a session, in frames.
	sessionWindow = 1 << 16
	// writeTimeout closes a connection whose client takes no bytes for
	// this long.
	writeTimeout = 30 * time.Second
)

// config is what one connection needs from its acceptor.
type config struct {
	srv *server.Server
	// login logs a client in (empty user and password: anonymous, or
	// its TLS client certificate); anonymous reports whether clients
	// without credentials are let in; external, that the client
	// presented a verified certificate (SASL EXTERNAL is offered).
	login       func(user, password string) error
	anonymous   func() bool
	external    bool
	log         *slog.Logger
	idleTimeout time.Duration // the idle-time-out announced (0: none)
	handshake   time.Duration
	// refuse, when set, refuses the connection: it ends after the
	// client's open, unanswered (conn.refuse); this is the reason logged.
	refuse string
	// writeTimeout closes the connection when a write makes no progress
	// for this long (0: writeTimeout).
	writeTimeout time.Duration
	// anycastPrefix and multicastPrefix are the acceptor's address
	// prefixes for routing (besides queue:// and topic://).
	anycastPrefix, multicastPrefix string
	// minLarge is amqpMinLargeMessageSize: a multi-frame delivery past
	// it streams to the large-messages journal (0: never; large.go).
	minLarge int
}

// maxMessageSize is the max-message-size announced on a link the client
// sends on: none when large messages stream to the journal, else the
// limit of a message held in memory.
func (c *conn) maxMessageSize() uint64 {
	if c.cfg.minLarge > 0 && c.srv != nil && c.srv.HasLargeStore() {
		return 0
	}
	return maxMessageSize
}

// connError ends a connection with a close frame carrying it.
type connError struct{ e Error }

func (c *connError) Error() string { return c.e.Error() }

func closeWith(cond Symbol, format string, args ...any) error {
	return &connError{Error{Condition: cond, Description: fmt.Sprintf(format, args...)}}
}

// conn is one AMQP connection. The goroutine running serve reads frames
// and owns the connection's maps (sessions, transactions); each session's
// state that deliveries and completions also touch is under session.mu.
// No lock is held while calling the server (whose callbacks take them).
type conn struct {
	cfg  config
	srv  *server.Server
	log  *slog.Logger
	nc   net.Conn
	fr   frameReader
	w    *writer
	ctx  context.Context
	stop context.CancelFunc

	user         string
	remoteID     string
	peerMaxFrame uint32
	peerIdle     time.Duration
	sessions     map[uint16]*session
	txns         map[string]*txn
	nextTxn      uint64
	largeUploads int // large messages being streamed (reader-owned; large.go)

	mu      sync.Mutex // guards links (for the writer's drained callback)
	starved map[*link]struct{}

	halt   sync.Once
	haltCh chan error // an asynchronous reason to end the connection

	streams sync.WaitGroup // large deliveries' streamers (largeout.go)
}

// serve runs one connection: protocol headers, SASL, open, then frames
// until close or an error. It closes nothing: the caller closes nc.
func serve(ctx context.Context, cfg config, nc net.Conn, br *bufio.Reader) {
	if br == nil {
		br = bufio.NewReaderSize(nc, 64<<10)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &conn{
		cfg: cfg, srv: cfg.srv, log: cfg.log, nc: nc, ctx: cctx, stop: cancel,
		fr:       frameReader{r: br, max: minMaxFrameSize},
		sessions: map[uint16]*session{}, txns: map[string]*txn{},
		starved: map[*link]struct{}{},
		haltCh:  make(chan error, 1),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	wt := cfg.writeTimeout
	if wt <= 0 {
		wt = writeTimeout
	}
	c.w = newWriter(nc, wt)
	c.w.drained = c.drained
	err := c.run()
	c.finish(err)
}

// run is the connection's life until an error.
func (c *conn) run() error {
	// The acceptor closing ends the connection with a close frame.
	stopRead := context.AfterFunc(c.ctx, func() { c.nc.SetReadDeadline(time.Now()) })
	defer stopRead()
	hs := c.cfg.handshake
	if hs <= 0 {
		hs = 10 * time.Second
	}
	c.nc.SetReadDeadline(time.Now().Add(hs))
	go c.w.run()
	if err := c.handshake(); err != nil {
		return err
	}
	if c.cfg.refuse != "" {
		return c.refuse()
	}
	if err := c.open(); err != nil {
		return err
	}
	return c.loop()
}

// handshake exchanges protocol headers and runs SASL when the client
// asks for it.
func (c *conn) handshake() error {
	h, err := c.fr.readHeader()
	if err != nil {
		return err
	}
	if h == headerSASL {
		if err := c.sasl(); err != nil {
			return err
		}
		if h, err = c.fr.readHeader(); err != nil {
			return err
		}
		c.writeRaw(headerAMQP[:])
		if h != headerAMQP {
			return fmt.Errorf("protocol header %q after SASL, want AMQP 1.0", h[:])
		}
		return nil
	}
	if h != headerAMQP {
		// Answer with the header we speak, then close (part 2, 2.2).
		want := headerAMQP
		if !c.cfg.anonymous() {
			want = headerSASL
		}
		c.writeRaw(want[:])
		return fmt.Errorf("unsupported protocol header %q", h[:])
	}
	c.writeRaw(headerAMQP[:])
	if c.cfg.refuse == "" {
		if err := c.cfg.login("", ""); err != nil {
			// No SASL, and a login is required: open, then refuse with
			// a condition the client can report.
			if _, err := c.readOpen(); err != nil {
				return err
			}
			c.sendOpen()
			return closeWith(ErrUnauthorizedAccess, "authentication required: connect with SASL PLAIN (%v)", err)
		}
	}
	return nil
}

// sasl runs the SASL exchange (part 5): PLAIN against the acceptor's
// users, ANONYMOUS when anonymous access is allowed.
func (c *conn) sasl() error {
	mechs := []Symbol{"PLAIN"}
	anonymous := c.cfg.refuse != "" || c.cfg.anonymous()
	if c.cfg.external {
		mechs = append([]Symbol{"EXTERNAL"}, mechs...)
	}
	if anonymous {
		mechs = append(mechs, "ANONYMOUS")
	}
	c.writeRaw(headerSASL[:])
	c.w.put(frameSASL, 0, saslMechanisms(mechs), nil)
	f, err := c.fr.next()
	if err != nil {
		return c.framing(err)
	}
	if f.typ != frameSASL {
		return fmt.Errorf("frame type %d during SASL, want sasl-init", f.typ)
	}
	d := newDecoder(f.body)
	code, _ := d.descriptor()
	var init SASLInit
	if d.err == nil && code != descSASLInit {
		d.fail("want sasl-init, got descriptor 0x%x", code)
	}
	init.decode(d)
	if d.err != nil {
		c.w.put(frameSASL, 0, saslOutcome(saslSysPerm), nil)
		return fmt.Errorf("sasl-init: %w", d.err)
	}
	switch {
	case c.cfg.refuse != "":
		// A broker that is not live lets anyone through to refuse them
		// after their open (conn.refuse).
	case init.Mechanism == "ANONYMOUS" || init.Mechanism == "EXTERNAL" && c.cfg.external:
		// EXTERNAL: the TLS client certificate's user.
		err = c.cfg.login("", "")
	case init.Mechanism == "PLAIN":
		// authzid NUL authcid NUL passwd (RFC 4616).
		parts := strings.SplitN(string(init.InitialResponse), "\x00", 3)
		if len(parts) != 3 {
			err = errors.New("malformed PLAIN response")
			break
		}
		c.user = parts[1]
		err = c.cfg.login(parts[1], parts[2])
	default:
		err = fmt.Errorf("mechanism %q not offered", init.Mechanism)
	}
	if err != nil {
		c.w.put(frameSASL, 0, saslOutcome(saslAuth), nil)
		// Logged by the guard already, rate-limited.
		return loggedErr{fmt.Errorf("SASL %s: %w", init.Mechanism, err)}
	}
	c.w.put(frameSASL, 0, saslOutcome(saslOK), nil)
	return nil
}

// writeRaw queues bytes that are no frame (a protocol header).
func (c *conn) writeRaw(p []byte) {
	c.w.with(func(b []byte) []byte { return append(b, p...) })
}

type saslMechanisms []Symbol

func (s saslMechanisms) append(b []byte) []byte { return appendSASLMechanisms(b, s) }

type saslOutcome uint8

func (s saslOutcome) append(b []byte) []byte { return appendSASLOutcome(b, uint8(s)) }

// framing turns a read error into the connection's end: a framing error
// gets a close frame.
func (c *conn) framing(err error) error {
	var fe *FrameError
	if errors.As(err, &fe) {
		return &connError{Error{Condition: ErrFramingError, Description: fe.Error()}}
	}
	return err
}

// readOpen reads the client's open.
func (c *conn) readOpen() (*Open, error) {
	c.fr.max = MaxFrameSize
	for {
		f, err := c.fr.next()
		if err != nil {
			return nil, c.framing(err)
		}
		if len(f.body) == 0 {
			continue // heartbeat
		}
		if f.typ != frameAMQP {
			return nil, closeWith(ErrFramingError, "frame type %d, want an AMQP frame", f.typ)
		}
		d := newDecoder(f.body)
		code, known := d.descriptor()
		if d.err == nil && (!known || code != descOpen) {
			return nil, closeWith(ErrIllegalState, "first frame is not open (descriptor 0x%x)", code)
		}
		o := &Open{}
		o.decode(d)
		if d.err != nil {
			return nil, closeWith(ErrDecode, "open: %v", d.err)
		}
		return o, nil
	}
}

// open reads the client's open and answers it.
func (c *conn) open() error {
	o, err := c.readOpen()
	if err != nil {
		return err
	}
	if o.MaxFrameSize < minMaxFrameSize {
		return closeWith(ErrFrameSizeTooSmall, "max-frame-size %d is below 512", o.MaxFrameSize)
	}
	c.remoteID = o.ContainerID
	c.peerMaxFrame = min(o.MaxFrameSize, MaxFrameSize)
	if o.IdleTimeout > 0 {
		c.peerIdle = time.Duration(o.IdleTimeout) * time.Millisecond
		c.w.mu.Lock()
		c.w.heartbeat = max(c.peerIdle/2, 100*time.Millisecond)
		c.w.mu.Unlock()
	}
	if c.remoteID != "" {
		c.log = c.log.With("container", c.remoteID)
	}
	c.sendOpen()
	c.log.Debug("AMQP connection open", "user", c.user, "max_frame", c.peerMaxFrame, "idle", c.peerIdle)
	return nil
}

// sendOpen sends the broker's open: its limits, capabilities and
// properties (product, version, and failover-server-list naming the
// brokers of the topology, as Artemis announces them).
func (c *conn) sendOpen() {
	o := &Open{
		ContainerID:  c.containerID(),
		MaxFrameSize: MaxFrameSize,
		ChannelMax:   channelMax,
		OfferedCaps:  []Symbol{"ANONYMOUS-RELAY"},
		Properties:   Map{{Symbol("product"), "tandem"}, {Symbol("version"), server.Version}},
	}
	if c.cfg.idleTimeout > 0 {
		o.IdleTimeout = uint32(c.cfg.idleTimeout / time.Millisecond)
	}
	if list := c.failoverList(); len(list) > 0 {
		o.Properties = append(o.Properties, MapEntry{Symbol("failover-server-list"), list})
	}
	c.w.put(frameAMQP, 0, o, nil)
}

func (c *conn) containerID() string {
	if c.srv == nil {
		return "tandem"
	}
	if id := c.srv.NodeID(); id != "" {
		return id
	}
	return "tandem"
}

// failoverList is the topology's brokers as Artemis's failover-server-list
// entries: maps of hostname, network-host, port and scheme.
func (c *conn) failoverList() []any {
	if c.srv == nil {
		return nil
	}
	var out []any
	seen := map[string]bool{}
	for _, m := range c.srv.Topology().Members {
		u, err := url.Parse(m.URL)
		if err != nil || u.Hostname() == "" || seen[u.Host] {
			continue
		}
		port, err := strconv.Atoi(u.Port())
		if err != nil {
			continue
		}
		seen[u.Host] = true
		out = append(out, Map{
			{Symbol("hostname"), u.Hostname()},
			{Symbol("network-host"), u.Hostname()},
			{Symbol("port"), int32(port)},
			{Symbol("scheme"), "amqp"},
		})
	}
	return out
}

// refuse answers a client of a broker that is not live: it reads the
// client's open and ends the connection without opening, so that the
// client's reconnect moves on to the next address (a client that got an
// open counts the broker as reached and, as Qpid Proton does, starts its
// address list from the beginning again).
func (c *conn) refuse() error {
	if _, err := c.readOpen(); err != nil {
		return err
	}
	return closeWith(ErrConnectionForced, "%s", c.cfg.refuse)
}

// loop reads and handles frames until the connection ends.
func (c *conn) loop() error {
	idle := c.cfg.idleTimeout
	var last time.Time
	for {
		if err := c.w.waitBelow(c.ctx, softLimit); err != nil {
			return c.stopped(err)
		}
		if idle > 0 {
			if now := time.Now(); now.Sub(last) > idle/8 {
				c.nc.SetReadDeadline(now.Add(idle))
				last = now
			}
		} else if last.IsZero() {
			c.nc.SetReadDeadline(time.Time{})
			last = time.Now()
		}
		f, err := c.fr.next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if c.ctx.Err() != nil {
					return c.stopped(c.ctx.Err())
				}
				return closeWith(ErrResourceLimit, "local-idle-timeout expired: nothing received for %v", idle)
			}
			return c.framing(err)
		}
		select {
		case err := <-c.haltCh:
			return err
		default:
		}
		if len(f.body) == 0 {
			continue // heartbeat
		}
		if f.typ != frameAMQP {
			return closeWith(ErrFramingError, "frame type %d after open", f.typ)
		}
		if err := c.handle(f); err != nil {
			return err
		}
	}
}

// stopped maps the end of c.ctx (the acceptor closing) to the close frame
// that tells the client to go elsewhere.
func (c *conn) stopped(err error) error {
	if c.ctx.Err() != nil {
		select {
		case herr := <-c.haltCh:
			return herr
		default:
		}
		return closeWith(ErrConnectionForced, "broker shutting down or failing over")
	}
	return err
}

// fail ends the connection from another goroutine (a completion that
// cannot give the client a definite outcome).
func (c *conn) fail(err error) {
	c.halt.Do(func() {
		c.haltCh <- err
		c.stop()
	})
}

// handle dispatches one AMQP frame.
func (c *conn) handle(f frame) error {
	d := newDecoder(f.body)
	code, known := d.descriptor()
	if d.err != nil {
		return closeWith(ErrDecode, "frame at offset %d: %v", f.offset, d.err)
	}
	if !known {
		return closeWith(ErrDecode, "frame at offset %d: unknown performative", f.offset)
	}
	if code == descBegin {
		var b Begin
		b.decode(d)
		if d.err != nil {
			return closeWith(ErrDecode, "begin: %v", d.err)
		}
		return c.begin(f.channel, &b)
	}
	if code == descClose {
		e := decodeErrorOnly(d)
		if e != nil {
			c.log.Debug("client closed the connection with an error", "error", e)
		}
		return errClientClosed
	}
	if code == descOpen {
		return closeWith(ErrIllegalState, "second open")
	}
	s := c.sessions[f.channel]
	if s == nil {
		return closeWith(ErrIllegalState, "frame 0x%x on channel %d, which has no session", code, f.channel)
	}
	return s.handle(code, d, f)
}

// errClientClosed ends a connection the client closed: the broker answers
// with its own close.
var errClientClosed = errors.New("client closed the connection")

func (c *conn) begin(ch uint16, b *Begin) error {
	if ch > channelMax {
		return closeWith(ErrFramingError, "channel %d above channel-max %d", ch, channelMax)
	}
	if _, ok := c.sessions[ch]; ok {
		return closeWith(ErrIllegalState, "begin on channel %d, which has a session", ch)
	}
	if b.HasRemoteChannel {
		return closeWith(ErrNotAllowed, "begin with a remote-channel: the broker does not begin sessions")
	}
	s := newSession(c, ch, b)
	c.sessions[ch] = s
	s.mu.Lock()
	c.w.put(frameAMQP, ch, &Begin{
		RemoteChannel: ch, HasRemoteChannel: true, NextOutgoingID: s.nextOutgoingID,
		IncomingWindow: s.incomingWindow, OutgoingWindow: sessionWindow, HandleMax: handleMax,
	}, nil)
	s.mu.Unlock()
	return nil
}

// finish ends the connection: a close frame (with the error, if it is one
// the client should see), every session's links and transactions undone,
// the writer flushed.
func (c *conn) finish(err error) {
	var ce *connError
	switch {
	case errors.As(err, &ce):
		switch ce.e.Condition {
		case ErrUnauthorizedAccess: // a failed login: the guard logged it, rate-limited
			c.log.Debug("closing AMQP connection", "condition", ce.e.Condition, "reason", ce.e.Description)
		case ErrConnectionForced, ErrResourceLimit:
			c.log.Info("closing AMQP connection", "condition", ce.e.Condition, "reason", ce.e.Description)
		default:
			c.log.Warn("closing AMQP connection", "condition", ce.e.Condition, "reason", ce.e.Description)
		}
		if ce.e.Condition != ErrConnectionForced {
			c.w.put(frameAMQP, 0, closePerf{&ce.e}, nil)
		}
		// A forced close (broker stopping, failing over or not live)
		// ends the connection without a close frame: Qpid Proton's
		// reactor reconnects after a transport error, but a close with
		// amqp:connection:forced leaves its connection half-closed and
		// its reconnect never starts. Every client library treats the
		// lost connection as "try the next address".
	case errors.Is(err, errClientClosed):
		c.w.put(frameAMQP, 0, closePerf{}, nil)
	case errors.As(err, new(loggedErr)):
		c.log.Debug("AMQP connection ended", "reason", err)
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Debug("AMQP connection ended", "reason", err)
	default:
		c.log.Info("AMQP connection ended", "reason", err)
	}
	c.stop()
	for _, s := range c.sessions {
		s.close()
	}
	for _, t := range c.txns {
		t.ss.Close()
	}
	c.streams.Wait() // woken by their links' release and c.ctx
	c.w.close()
	c.w.wait(2 * time.Second)
}

// loggedErr ends a connection for a reason logged already (a failed
// login: by the guard, rate-limited).
type loggedErr struct{ error }

func (e loggedErr) Unwrap() error { return e.error }

type closePerf struct{ e *Error }

func (p closePerf) append(b []byte) []byte { return appendErrorOnly(b, descClose, p.e) }

type endPerf struct{ e *Error }

func (p endPerf) append(b []byte) []byte { return appendErrorOnly(b, descEnd, p.e) }

// drained is the writer's callback once output is below softLimit again:
// links that stopped pulling deliveries resume.
func (c *conn) drained() {
	c.mu.Lock()
	ls := make([]*link, 0, len(c.starved))
	for l := range c.starved {
		ls = append(ls, l)
	}
	clear(c.starved)
	c.mu.Unlock()
	for _, l := range ls {
		l.s.mu.Lock()
		n := l.topupLocked()
		l.s.mu.Unlock()
		l.s.flushAcks()
		if n > 0 {
			l.consumer.Credit(n)
		}
	}
}

func (c *conn) starve(l *link) {
	c.mu.Lock()
	c.starved[l] = struct{}{}
	c.mu.Unlock()
}
