package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// transportLost is called by a transport's reader when it ends.
func (c *Conn) transportLost(t *transport, cause error) {
	c.mu.Lock()
	t.lost = true
	current := c.cur.Load() == t
	if current {
		c.cur.Store(nil)
		if !c.closed {
			c.ready = make(chan struct{})
		}
	}
	closed := c.closed
	reconnect := current && !closed && c.url.ReconnectAttempts != 0
	if reconnect {
		c.wg.Add(1)
	}
	c.mu.Unlock()
	pend := t.takePending()
	switch {
	case !current:
		// a connection being restored died, or one already replaced: its
		// calls are restore's own or were moved already
		c.failPending(pend, cause)
	case closed:
		c.failPending(pend, ErrClosed)
		c.failConsumers(ErrClosed)
	case !reconnect:
		c.log.Warn("connection lost; reconnection is off (reconnectAttempts=0)", "addr", t.addr, "err", cause)
		c.shutdown(fmt.Errorf("%w: connection to %s lost: %v", ErrClosed, t.addr, cause), pend)
		c.emit(Event{Kind: EventFailed, Addr: t.addr, Err: cause})
	default:
		go c.failover(t, cause, pend)
	}
}

// failover reconnects as the URL says and restores the Conn's state.
func (c *Conn) failover(old *transport, cause error, pend map[uint64]*call) {
	defer c.wg.Done()
	c.log.Warn("connection lost; failing over", "addr", old.addr, "err", cause)
	c.settle(pend)
	c.emit(Event{Kind: EventFailingOver, Addr: old.addr, Err: cause})
	start := time.Now()
	var pause time.Duration
	var lastErr error = cause
	attempts := c.url.ReconnectAttempts
	for attempt := 0; attempts < 0 || attempt < attempts; attempt++ {
		if attempt > 0 {
			pause = c.url.nextInterval(pause)
			if sleepCtx(c.ctx, pause) != nil {
				break
			}
		}
		for _, addr := range c.candidates(old.addr) {
			if c.ctx.Err() != nil {
				break
			}
			t, err := c.connect(c.ctx, addr)
			if err != nil {
				lastErr = err
				c.log.Debug("reconnect attempt failed", "addr", addr, "attempt", attempt+1, "err", err)
				continue
			}
			if err := c.restore(t, pend); err != nil {
				lastErr = err
				c.log.Warn("restoring sessions failed", "addr", addr, "err", err)
				t.fail(err)
				continue
			}
			c.log.Info("failed over", "addr", addr, "after", time.Since(start).Round(time.Millisecond))
			c.emit(Event{Kind: EventFailedOver, Addr: addr})
			return
		}
	}
	if c.ctx.Err() != nil { // closed by the application
		c.failPending(pend, ErrClosed)
		c.failConsumers(ErrClosed)
		return
	}
	err := fmt.Errorf("%w: gave up reconnecting (reconnectAttempts=%d): %v", ErrClosed, attempts, lastErr)
	c.log.Error("failover failed", "err", err)
	c.shutdown(err, pend)
	c.emit(Event{Kind: EventFailed, Addr: old.addr, Err: err})
}

// settle completes, at once, the calls in flight on a lost connection whose
// outcome the next connection cannot change, and removes them from pend:
// acks and lostUnknown requests (commit, queue management) have unknown
// outcomes, lostOK requests (rollback, closes) are done (the broker ends
// a connection's sessions with it), transacted sends are rolled back
// (never resent: the next broker's session has no transaction to join).
// Their callers need not wait for the failover, which may take long or
// fail. Left in pend for restore: sends to resend and lostRetry requests.
func (c *Conn) settle(pend map[uint64]*call) {
	ops := make([]*call, 0, len(pend))
	for _, cl := range pend {
		ops = append(ops, cl)
	}
	slices.SortFunc(ops, func(a, b *call) int { return cmpU64(a.corr, b.corr) })
	for _, cl := range ops {
		switch {
		case cl.kind == callAck:
			c.failAcks(cl.acks, ErrUnknownOutcome)
		case cl.kind == callRequest && cl.lost == lostUnknown:
			cl.finish(nil, ErrUnknownOutcome)
		case cl.kind == callRequest && cl.lost == lostOK:
			cl.finish(nil, nil)
		case cl.kind == callSend && cl.send.tx:
			cl.send.s.markRollbackOnly()
			cl.send.complete(ErrTransactionRolledBack)
		default:
			continue
		}
		delete(pend, cl.corr)
	}
}

// candidates lists the addresses to try. With ha=true: the live/backup
// pair from the topology (the member that was lost last), then the URL's
// addresses (the lost one last). Without: the lost broker first (a
// transient failure), then the URL's other addresses.
func (c *Conn) candidates(lost string) []string {
	c.mu.Lock()
	members := slices.Clone(c.topology.Members)
	c.mu.Unlock()
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if !c.url.HA {
		add(lost)
	}
	if c.url.HA {
		for _, m := range members {
			if a, err := parseElem(m.URL); err == nil && a != lost {
				add(a)
			}
		}
		for _, m := range members {
			if a, err := parseElem(m.URL); err == nil && a == lost {
				add(a)
			}
		}
	}
	for _, a := range c.url.Addrs {
		if a != lost {
			add(a)
		}
	}
	add(lost)
	return out
}

// restore re-creates sessions and consumers on t, then resends what was in
// flight (settle already completed what is not resent) and installs t. An
// error means t is unusable (try another broker); pend is untouched then,
// except when t died after the resends: pend is empty then (its calls were
// resent on t and completed by t's loss).
func (c *Conn) restore(t *transport, pend map[uint64]*call) error {
	t.start()
	ctx, cancel := withTimeout(c.ctx, c.url.CallTimeout)
	defer cancel()

	c.mu.Lock()
	sessions := make([]*Session, 0, len(c.sessions))
	for _, s := range c.sessions {
		sessions = append(sessions, s)
	}
	c.mu.Unlock()
	slices.SortFunc(sessions, func(a, b *Session) int { return cmpU64(a.id, b.id) })

	type waiting struct {
		cl *call
		k  *Consumer // nil for a session
	}
	var calls []waiting
	for _, s := range sessions {
		cl := &call{kind: callRequest, op: "re-create session", done: make(chan struct{})}
		if err := t.send(c.nextID(), &wire.CreateSession{Session: s.id, Transacted: s.transacted, Name: s.name}, cl); err != nil {
			return err
		}
		calls = append(calls, waiting{cl: cl})
		// A transaction with work stays bound to the lost transport, so
		// nothing of it can commit here (session.go, "Transactions across
		// a connection loss"): no marking is needed, and none could be
		// early enough for a Commit already waiting for t.
		s.mu.Lock()
		consumers := make([]*Consumer, 0, len(s.consumers))
		for _, k := range s.consumers {
			consumers = append(consumers, k)
		}
		s.mu.Unlock()
		slices.SortFunc(consumers, func(a, b *Consumer) int { return cmpU64(a.id, b.id) })
		for _, k := range consumers {
			stale := k.rebind(t)
			c.failAcks(stale, ErrStaleDelivery)
			cl := &call{kind: callRequest, op: "re-create consumer", done: make(chan struct{})}
			if err := t.send(c.nextID(), k.createFrame(), cl); err != nil {
				return err
			}
			calls = append(calls, waiting{cl: cl, k: k})
		}
	}
	for _, w := range calls {
		select {
		case <-w.cl.done:
		case <-ctx.Done():
			return fmt.Errorf("re-creating sessions: %w", ctx.Err())
		case <-t.dead:
			return fmt.Errorf("re-creating sessions: connection lost: %w", t.failErr)
		}
		if w.cl.err != nil {
			return w.cl.err
		}
		if w.k == nil {
			if err := result(w.cl.op, w.cl.resp); err != nil {
				return err
			}
			continue
		}
		cc, _ := w.cl.resp.(*wire.ConsumerCreated)
		if cc == nil {
			return fmt.Errorf("re-create consumer: unexpected answer %T", w.cl.resp)
		}
		if unavailable(cc.Code) {
			return serverError(w.cl.op, cc.Code, cc.Message)
		}
		if err := serverError(w.cl.op, cc.Code, cc.Message); err != nil {
			c.log.Warn("consumer could not be re-created", "queue", w.k.Queue(), "err", err)
			w.k.closeWith(err)
			continue
		}
		w.k.mu.Lock()
		w.k.queue = cc.Queue
		w.k.mu.Unlock()
	}

	c.mu.Lock()
	c.adoptNodeLocked(t.welcome.NodeID)
	c.addr = t.addr
	c.mergeTopologyLocked(&t.welcome.Topology)
	c.mu.Unlock()

	// Resend in the original order before anyone else can send on t.
	ops := make([]*call, 0, len(pend))
	for _, cl := range pend {
		ops = append(ops, cl)
	}
	slices.SortFunc(ops, func(a, b *call) int { return cmpU64(a.corr, b.corr) })
	resent := 0
	for _, cl := range ops {
		switch cl.kind {
		case callSend:
			op := cl.send
			switch {
			case op.tx:
				op.s.markRollbackOnly()
				op.complete(ErrTransactionRolledBack)
			case op.ws.DuplicateID == "":
				op.complete(ErrUnknownOutcome)
			default:
				ncl := &call{kind: callSend, send: op}
				if err := t.send(c.nextID(), &op.ws, ncl); err != nil {
					op.complete(ErrUnknownOutcome)
				} else {
					resent++
				}
			}
		case callAck:
			c.failAcks(cl.acks, ErrUnknownOutcome)
		case callRequest:
			switch cl.lost {
			case lostOK:
				cl.finish(nil, nil)
			case lostRetry:
				cl.finish(nil, errRetry)
			default:
				cl.finish(nil, ErrUnknownOutcome)
			}
		}
	}
	if resent > 0 {
		c.log.Info("resent in-flight sends with their duplicate IDs", "count", resent, "addr", t.addr)
	}
	if testHookResent != nil {
		testHookResent(t)
	}
	clear(pend) // every call was resent on t or completed
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		t.fail(ErrClosed)
		return nil
	}
	if t.lost {
		// t died after the resends: its reader found it not current and
		// completed what was resent on it (outcome unknown), so nobody
		// would fail over from it. Try the next broker (pend is empty).
		c.mu.Unlock()
		return fmt.Errorf("connection lost while restoring: %w", t.failErr)
	}
	c.cur.Store(t)
	c.closeReadyLocked()
	c.mu.Unlock()
	return nil
}

// testHookResent, when set by a test, runs in restore after the resends
// and before t is installed.
var testHookResent func(t *transport)

// shutdown closes the Conn after a loss it will not recover from.
func (c *Conn) shutdown(err error, pend map[uint64]*call) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.closeErr = err
		c.closeReadyLocked()
	}
	c.mu.Unlock()
	c.failPending(pend, err)
	c.failConsumers(err)
}

// failPending completes calls whose connection is gone for good: sends and
// acks have unknown outcomes (transacted sends are rolled back), requests
// fail with err (or unknown outcome).
func (c *Conn) failPending(pend map[uint64]*call, err error) {
	ops := make([]*call, 0, len(pend))
	for _, cl := range pend {
		ops = append(ops, cl)
	}
	slices.SortFunc(ops, func(a, b *call) int { return cmpU64(a.corr, b.corr) })
	for _, cl := range ops {
		switch cl.kind {
		case callSend:
			if cl.send.tx { // its transaction is gone with the connection
				cl.send.s.markRollbackOnly()
				cl.send.complete(ErrTransactionRolledBack)
				continue
			}
			cl.send.complete(ErrUnknownOutcome)
		case callAck:
			c.failAcks(cl.acks, ErrUnknownOutcome)
		case callRequest:
			if cl.lost == lostUnknown {
				cl.finish(nil, ErrUnknownOutcome)
			} else {
				cl.finish(nil, err)
			}
		}
	}
}

func (c *Conn) failAcks(ops []ackOp, err error) {
	for _, op := range ops {
		op.done(err)
	}
}

// failConsumers ends every consumer's Receive with err and reports acks
// not yet sent as stale.
func (c *Conn) failConsumers(err error) {
	c.cmu.RLock()
	ks := make([]*Consumer, 0, len(c.consumers))
	for _, k := range c.consumers {
		ks = append(ks, k)
	}
	c.cmu.RUnlock()
	for _, k := range ks {
		k.closeWith(err)
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var _ = errors.Is
var _ context.Context
