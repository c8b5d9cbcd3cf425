package server

import (
	"slices"
	"sync"
	"sync/atomic"
)

// ref is a message's place in one queue.
type ref struct {
	msg        *Message
	q          *Queue
	seq        uint64 // position in the queue, for restoring order on redelivery
	deliveries uint32 // times delivered (persisted on cancel)
}

// durable reports whether acking the reference writes to the journal.
func (r *ref) durable() bool { return r.msg.Durable && r.q.durable }

// Queue is a queue bound to an address. Messages wait in it until a
// consumer with credit takes them. A goroutine per queue delivers what
// credit and consumers make deliverable; what a send makes deliverable is
// delivered by the send's completion itself, up to a batch, when no
// delivery is running (see push).
type Queue struct {
	id          uint64
	name        string
	addr        *address
	routing     Routing
	durable     bool
	temporary   bool
	autoCreated bool
	refData     []byte // the encoded queue ID, shared by every ref update

	mu        sync.Mutex
	msgs      refDeque
	seq       uint64
	consumers []*Consumer
	rr        int
	deleted   bool // delivery has stopped; what is pushed now is dropped
	deleting  bool // DeleteQueue has begun: no consumer may attach

	delivering atomic.Int64 // delivered, not acked
	// dispatching is set while a goroutine (the delivery goroutine or an
	// enqueuer) takes messages out under mu and hands them to consumers
	// outside it: one at a time, so deliveries keep queue order. It
	// rechecks under mu before clearing it, so nothing made deliverable
	// meanwhile is left behind.
	dispatching bool
	idle        sync.Cond // on mu: broadcast when dispatching clears
	kick        chan struct{}
	stop        chan struct{}
	stopped     chan struct{}
}

// QueueInfo describes a queue for /status.
type QueueInfo struct {
	Address   string `json:"address"`
	Name      string `json:"name"`
	Routing   string `json:"routing"`
	Durable   bool   `json:"durable"`
	Depth     int64  `json:"depth"`
	Consumers int    `json:"consumers"`
}

func newQueue(id uint64, name string, a *address, routing Routing, durable, temporary, auto bool) *Queue {
	q := &Queue{
		id: id, name: name, addr: a, routing: routing, durable: durable,
		temporary: temporary, autoCreated: auto, refData: encodeQueueID(id),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	q.idle.L = &q.mu
	return q
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Info returns the queue's description and depth (waiting plus being
// delivered).
func (q *Queue) Info() QueueInfo {
	q.mu.Lock()
	depth := int64(q.msgs.len())
	nc := len(q.consumers)
	q.mu.Unlock()
	return QueueInfo{
		Address: q.addr.name, Name: q.name, Routing: q.routing.String(), Durable: q.durable,
		Depth: depth + q.delivering.Load(), Consumers: nc,
	}
}

// wake asks the delivery goroutine to look for work.
func (q *Queue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// push appends r (already durable when it needs to be). It returns true
// when consumers are attached: the caller (a send's completion, whose
// consumers' handlers only encode frames) then calls deliverInline once it
// has answered the sender, saving the delivery goroutine's wake-up per
// send. Nothing is claimed here: the sender's done may do anything,
// closing the consumer and deleting the queue included.
func (q *Queue) push(r *ref) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return false
	}
	q.seq++
	r.seq = q.seq
	q.msgs.pushBack(r)
	return len(q.consumers) > 0
}

// deliverInline delivers one batch of at most inlineDeliveries when no
// delivery is running, so a send's completion never works through a
// backlog; whatever is still waiting then is left to the delivery
// goroutine. A running delivery takes the pushed messages itself.
func (q *Queue) deliverInline() {
	var buf [inlineDeliveries]delivery
	q.mu.Lock()
	if q.dispatching || q.deleted {
		q.mu.Unlock()
		return
	}
	q.dispatching = true
	batch := q.dispatchLocked(buf[:0])
	q.mu.Unlock()
	for i, d := range batch {
		d.c.deliver(d.r)
		batch[i] = delivery{}
	}
	q.mu.Lock()
	q.dispatching = false
	q.idle.Broadcast()
	more := q.msgs.len() > 0 && len(q.consumers) > 0 && !q.deleted
	q.mu.Unlock()
	if more {
		q.wake()
	}
}

// inlineDeliveries is the most a send's completion delivers itself.
const inlineDeliveries = 8

// deliverLocked delivers until nothing more is deliverable, in batches of
// cap(batch). Caller holds q.mu and has found dispatching clear; it
// returns with q.mu released and dispatching clear.
func (q *Queue) deliverLocked(batch []delivery) {
	q.dispatching = true
	for {
		batch = q.dispatchLocked(batch[:0])
		if len(batch) == 0 {
			q.dispatching = false
			q.idle.Broadcast()
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		for i, d := range batch {
			d.c.deliver(d.r)
			batch[i] = delivery{}
		}
		q.mu.Lock()
	}
}

// requeue puts cancelled deliveries back at the head, in queue order. It
// returns false when the queue was deleted: the references were dropped,
// and the caller acks the durable ones (Server.cancel).
func (q *Queue) requeue(rs []*ref) bool {
	if len(rs) == 0 {
		return true
	}
	slices.SortFunc(rs, func(a, b *ref) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	q.mu.Lock()
	live := !q.deleted
	if live {
		for i := len(rs) - 1; i >= 0; i-- {
			q.msgs.pushFront(rs[i])
		}
	}
	q.mu.Unlock()
	q.delivering.Add(-int64(len(rs)))
	q.wake()
	return live
}

type delivery struct {
	c *Consumer
	r *ref
}

// dispatchLocked hands waiting messages to consumers with credit, round
// robin, at most len(out) cap of them; none once the queue is shut down.
// Caller holds q.mu.
func (q *Queue) dispatchLocked(out []delivery) []delivery {
	if q.deleted {
		return out
	}
	n := len(q.consumers)
	for q.msgs.len() > 0 && len(out) < cap(out) && n > 0 {
		var c *Consumer
		for i := 0; i < n; i++ {
			cc := q.consumers[(q.rr+i)%n]
			if cc.credit > 0 {
				c = cc
				q.rr = (q.rr + i + 1) % n
				break
			}
		}
		if c == nil {
			break
		}
		r := q.msgs.popFront()
		c.credit--
		r.deliveries++
		c.mu.Lock()
		c.delivered[r.msg.ID] = r
		c.mu.Unlock()
		out = append(out, delivery{c, r})
	}
	if len(out) > 0 {
		q.delivering.Add(int64(len(out)))
	}
	return out
}

// run is the queue's delivery goroutine; it returns when stop closes.
func (q *Queue) run() {
	defer close(q.stopped)
	batch := make([]delivery, 0, 128)
	for {
		select {
		case <-q.kick:
		case <-q.stop:
			return
		}
		q.mu.Lock()
		if q.dispatching { // its recheck under mu sees what woke us
			q.mu.Unlock()
			continue
		}
		q.deliverLocked(batch)
	}
}

// addConsumer attaches c.
func (q *Queue) addConsumer(c *Consumer) bool {
	q.mu.Lock()
	if q.deleted || q.deleting {
		q.mu.Unlock()
		return false
	}
	q.consumers = append(q.consumers, c)
	q.mu.Unlock()
	q.wake()
	return true
}

// removeConsumer detaches c and returns its unacked deliveries to the
// queue head. It returns the number of consumers left.
func (q *Queue) removeConsumer(c *Consumer) (cancelled []*ref, left int) {
	q.mu.Lock()
	if i := slices.Index(q.consumers, c); i >= 0 {
		q.consumers = slices.Delete(q.consumers, i, i+1)
		if q.rr >= len(q.consumers) {
			q.rr = 0
		}
	}
	c.mu.Lock()
	c.closed.Store(true)
	for _, r := range c.delivered {
		cancelled = append(cancelled, r)
	}
	c.delivered = nil
	c.mu.Unlock()
	left = len(q.consumers)
	q.mu.Unlock()
	return cancelled, left
}

// shutdown stops delivering: it waits for a delivery in progress (the
// goroutine's or a send completion's) and stops the delivery goroutine;
// nothing is delivered once it returns.
func (q *Queue) shutdown() {
	q.mu.Lock()
	q.deleted = true
	for q.dispatching {
		q.idle.Wait()
	}
	q.mu.Unlock()
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	<-q.stopped
}
