package client

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// errTransportDead is returned by transport.send when the transport already
// failed: nothing was sent, so the caller may use the next transport.
var errTransportDead = errors.New("client: transport dead")

type callKind uint8

const (
	callRequest callKind = iota
	callSend
	callAck
)

// lostPolicy says what a request in flight becomes when its connection is
// lost and the client fails over.
type lostPolicy uint8

const (
	lostUnknown lostPolicy = iota // ErrUnknownOutcome (commit, queue management)
	lostOK                        // nil once failed over (closes, rollback: nothing to undo)
	lostRetry                     // sent again on the new connection (creates: idempotent by ID)
)

// errRetry completes a lostRetry call that failover wants sent again.
var errRetry = errors.New("client: retry on the new connection")

// call is one request waiting for its answer.
type call struct {
	kind callKind
	corr uint64

	// callRequest
	op   string
	lost lostPolicy
	done chan struct{}
	resp wire.Frame
	err  error

	// callSend
	send *sendOp

	// callAck
	consumer *Consumer
	acks     []ackOp
}

func (cl *call) finish(resp wire.Frame, err error) {
	cl.resp, cl.err = resp, err
	close(cl.done)
}

// transport is one TCP connection to one broker: a reader goroutine, a
// flusher (inline for a lone request, else a writer goroutine that batches
// everything queued while it was writing), a pinger, and the map of calls
// waiting for answers. A Conn replaces its transport on failover.
type transport struct {
	c       *Conn
	nc      net.Conn
	dec     *wire.Decoder
	addr    string
	gen     uint64
	welcome *wire.Welcome

	wmu      sync.Mutex
	enc      wire.Encoder // frames waiting to be written
	spare    wire.Encoder // the buffer being written
	flushing bool         // someone owns writing
	handoff  bool         // ownership was handed to the writer goroutine
	werr     error
	ackDirty []*Consumer // consumers with acks to encode at the next flush
	ackFail  []ackOp     // acks to report stale once wmu is released
	kick     chan struct{}

	pmu     sync.Mutex
	pending map[uint64]*call
	closed  bool // pending taken: no more registrations

	failOnce sync.Once
	failErr  error
	dead     chan struct{} // closed by fail
	lost     bool          // its reader reported the loss (guarded by Conn.mu)
	recv     atomic.Uint64 // frames received, for the heartbeat check
	wg       sync.WaitGroup
	// written is signalled after each write (a large send waits for the
	// socket: large.go); largeIn are the large deliveries being received,
	// by consumer (reader-owned).
	written chan struct{}
	largeIn map[uint64]*Message
}

func newTransport(c *Conn, nc net.Conn, dec *wire.Decoder, addr string, gen uint64, w *wire.Welcome) *transport {
	return &transport{
		c: c, nc: nc, dec: dec, addr: addr, gen: gen, welcome: w,
		kick: make(chan struct{}, 1), pending: make(map[uint64]*call), dead: make(chan struct{}),
		written: make(chan struct{}, 1),
	}
}

// start runs the reader, writer and pinger goroutines. The reader reports
// the transport's end to the Conn.
func (t *transport) start() {
	t.wg.Add(3)
	go t.readLoop()
	go t.writeLoop()
	go t.pingLoop()
}

// fail closes the socket once; the reader then reports the loss.
func (t *transport) fail(err error) {
	t.failOnce.Do(func() {
		t.failErr = err
		close(t.dead)
		t.nc.Close()
	})
}

// isDead reports whether t has failed: nothing more is sent on it, and its
// broker discards the sessions (so the transactions) it held for it.
func (t *transport) isDead() bool {
	select {
	case <-t.dead:
		return true
	default:
		return false
	}
}

// send registers cl (when not nil) under corr and queues the frame.
func (t *transport) send(corr uint64, f wire.Frame, cl *call) error {
	t.wmu.Lock()
	if t.werr != nil {
		t.wmu.Unlock()
		return errTransportDead
	}
	inline := true
	if cl != nil {
		cl.corr = corr
		t.pmu.Lock()
		if t.closed {
			t.pmu.Unlock()
			t.wmu.Unlock()
			return errTransportDead
		}
		// a lone request is written by its caller (lowest latency); with
		// others in flight the writer goroutine batches
		inline = len(t.pending) == 0
		t.pending[corr] = cl
		t.pmu.Unlock()
	}
	if err := t.enc.Encode(corr, f); err != nil {
		if cl != nil {
			t.pmu.Lock()
			delete(t.pending, corr)
			t.pmu.Unlock()
		}
		t.wmu.Unlock()
		return err
	}
	t.flushLocked(inline)
	return nil
}

// queue queues a frame for the writer goroutine without ever writing on
// the caller's goroutine: the reader uses it, so it never blocks in a write
// while the broker blocks writing to us.
func (t *transport) queue(corr uint64, f wire.Frame) {
	t.wmu.Lock()
	if t.werr != nil {
		t.wmu.Unlock()
		return
	}
	if err := t.enc.Encode(corr, f); err != nil {
		t.wmu.Unlock()
		return
	}
	t.flushLocked(false)
}

// markAcks queues c's pending acks for the next flush.
func (t *transport) markAcks(c *Consumer) {
	t.wmu.Lock()
	if t.werr != nil {
		// t failed: these acks will never be sent; say so now rather than
		// when (if ever) the Conn is restored on another connection
		t.dropAcksLocked(c)
		t.unlockW()
		return
	}
	found := false
	for _, d := range t.ackDirty {
		if d == c {
			found = true
			break
		}
	}
	if !found {
		t.ackDirty = append(t.ackDirty, c)
	}
	t.pmu.Lock()
	inline := len(t.pending) == 0
	t.pmu.Unlock()
	t.flushLocked(inline)
}

// encodeAcksLocked turns queued acks into one Ack frame per consumer.
func (t *transport) encodeAcksLocked() {
	for _, c := range t.ackDirty {
		c.mu.Lock()
		if c.gen != t.gen {
			// re-created on another connection: its acks are that
			// connection's (rebind reported the ones made for t)
			c.mu.Unlock()
			continue
		}
		ops := c.ackOps
		c.ackOps = nil
		c.mu.Unlock()
		if len(ops) == 0 {
			continue
		}
		ids := make([]uint64, len(ops))
		for i := range ops {
			ids[i] = ops[i].msg.ID
		}
		corr := t.c.nextID()
		cl := &call{kind: callAck, corr: corr, consumer: c, acks: ops}
		t.pmu.Lock()
		if t.closed {
			t.pmu.Unlock()
			t.ackFail = append(t.ackFail, ops...)
			continue
		}
		t.pending[corr] = cl
		t.pmu.Unlock()
		if err := t.enc.Encode(corr, &wire.Ack{Consumer: c.id, MessageIDs: ids}); err != nil {
			// cannot happen for sane batch sizes; report rather than lose
			t.pmu.Lock()
			delete(t.pending, corr)
			t.pmu.Unlock()
			t.ackFail = append(t.ackFail, ops...)
		}
	}
	clear(t.ackDirty)
	t.ackDirty = t.ackDirty[:0]
}

// dropAcksLocked reports the acks c queued for t as stale (never sent)
// when c still lives on t. Called with wmu held once t failed.
func (t *transport) dropAcksLocked(c *Consumer) {
	c.mu.Lock()
	var ops []ackOp
	if c.gen == t.gen {
		ops = c.ackOps
		c.ackOps = nil
	}
	c.mu.Unlock()
	t.ackFail = append(t.ackFail, ops...)
}

// flushLocked writes what is queued unless someone else is writing. Called
// with wmu held; returns with it released. Inline, the caller writes once
// and hands anything queued meanwhile to the writer goroutine. Exactly one
// goroutine owns writing at a time (flushing); the writer goroutine takes
// ownership only when handed it (handoff), so a stale kick is ignored.
func (t *transport) flushLocked(inline bool) {
	if t.flushing {
		t.unlockW()
		return
	}
	t.flushing = true
	if inline {
		t.writeSome()
		if t.enc.Len() == 0 && len(t.ackDirty) == 0 {
			t.flushing = false
			t.unlockW()
			return
		}
	}
	t.handoff = true
	t.unlockW()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// unlockW releases wmu and then reports acks that could not be sent (their
// callbacks may call back into the transport).
func (t *transport) unlockW() {
	fail := t.ackFail
	t.ackFail = nil
	t.wmu.Unlock()
	for _, op := range fail {
		op.done(ErrStaleDelivery)
	}
}

// writeSome writes everything queued once (wmu held on entry and exit,
// released during the write).
func (t *transport) writeSome() {
	t.encodeAcksLocked()
	if t.enc.Len() == 0 || t.werr != nil {
		return
	}
	t.enc, t.spare = t.spare, t.enc
	t.wmu.Unlock()
	_, err := t.nc.Write(t.spare.Bytes())
	t.spare.Reset()
	select {
	case t.written <- struct{}{}:
	default:
	}
	t.wmu.Lock()
	if err != nil && t.werr == nil {
		t.werr = err
		t.fail(fmt.Errorf("write to %s: %w", t.addr, err))
	}
}

// writeLoop owns writing whenever flushing was handed to it.
func (t *transport) writeLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.dead:
			t.wmu.Lock()
			if t.werr == nil {
				t.werr = errTransportDead
			}
			// acks queued and not yet encoded will never be sent (with
			// werr set, markAcks reports later ones itself)
			for _, c := range t.ackDirty {
				t.dropAcksLocked(c)
			}
			clear(t.ackDirty)
			t.ackDirty = t.ackDirty[:0]
			t.unlockW()
			return
		case <-t.kick:
		}
		t.wmu.Lock()
		if !t.handoff {
			t.unlockW() // a stale kick: someone else owns writing
			continue
		}
		t.handoff = false
		for (t.enc.Len() > 0 || len(t.ackDirty) > 0) && t.werr == nil {
			t.writeSome()
		}
		t.flushing = false
		t.unlockW()
	}
}

// pingLoop sends heartbeats and declares the connection dead after
// ClientFailureCheckPeriod without any frame from the broker.
func (t *transport) pingLoop() {
	defer t.wg.Done()
	check := t.c.url.ClientFailureCheckPeriod
	every := check
	if ttl := time.Duration(t.welcome.ConnectionTTL) * time.Millisecond; ttl > 0 && ttl < every {
		every = ttl
	}
	every /= 2
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last, lastSeen := t.recv.Load(), time.Now()
	for {
		select {
		case <-t.dead:
			return
		case now := <-tick.C:
			if n := t.recv.Load(); n != last {
				last, lastSeen = n, now
			} else if check > 0 && now.Sub(lastSeen) > check {
				t.fail(fmt.Errorf("no frame from %s for %v (clientFailureCheckPeriod)", t.addr, now.Sub(lastSeen).Round(time.Millisecond)))
				return
			}
			t.queue(t.c.nextID(), &wire.Ping{}) // never blocks the check in a write
		}
	}
}

// takePending closes registration and returns every call waiting.
func (t *transport) takePending() map[uint64]*call {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.closed = true
	p := t.pending
	t.pending = nil
	return p
}

func (t *transport) take(corr uint64) *call {
	t.pmu.Lock()
	cl := t.pending[corr]
	delete(t.pending, corr)
	t.pmu.Unlock()
	return cl
}

// putBack re-registers a call (a send the broker refused as unavailable):
// it is resent after failover.
func (t *transport) putBack(cl *call) bool {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if t.closed {
		return false
	}
	t.pending[cl.corr] = cl
	return true
}
