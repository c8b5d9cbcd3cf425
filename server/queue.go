package server

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/selector"
)

// ref is a message's place in one queue.
type ref struct {
	msg        *Message
	q          *Queue
	seq        uint64 // position in the queue, for restoring order on redelivery
	deliveries uint32 // times delivered (persisted on cancel)
	// notBefore (Unix ns, 0: now) delays its next delivery
	// (redelivery-delay). It changes only while the reference is out of
	// its queue's deque (the deque counts the delayed ones).
	notBefore int64
	// pt is set for a depaged message: its place in the queue's page
	// tracking (its ack is a RecPageAck record).
	pt *pageTrack
}

// durable reports whether acking the reference writes to the journal.
func (r *ref) durable() bool { return r.msg.Durable && r.q.durable }

// Queue is a queue bound to an address. Messages wait in it until a
// consumer with credit takes them. An idle queue costs memory only: what a
// send makes deliverable is delivered by the send's completion itself, up
// to a batch, when no delivery is running (see push); what credit, a new
// consumer or a redelivery makes deliverable, and any backlog, is
// delivered by a goroutine started for it that exits once nothing more is
// deliverable (see wake).
type Queue struct {
	id          uint64
	name        string
	addr        *address
	routing     Routing
	durable     bool
	temporary   bool
	autoCreated bool
	refData     []byte // the encoded queue ID, shared by every ref update
	// filter (a queue filter of <addresses>) lets only matching messages
	// be routed to the queue; nil: all.
	filter *selector.Selector
	// srv is the server, for what dispatch hands over (expired messages);
	// nil in tests that build a queue alone.
	srv *Server

	// autoDelete: an auto-created anycast queue whose address settings
	// delete it once idle (auto-delete-queues), after deleteDelay, when it
	// holds at most deleteCount messages (-1: any number).
	autoDelete  bool
	deleteDelay time.Duration
	deleteCount int64

	// routed counts references routed to the queue (under its address's
	// mutex) and not pushed yet: a send in flight. Auto-delete waits for
	// them.
	routed atomic.Int64

	mu        sync.Mutex
	msgs      refDeque
	seq       uint64
	consumers []*Consumer
	rr        int
	deleted   bool      // delivery has stopped; what is pushed now is dropped
	deleting  bool      // DeleteQueue has begun: no consumer may attach, no auto-delete
	idleSince time.Time // when its last consumer left (or it was loaded); zero: never idle

	delivering atomic.Int64 // delivered, not acked
	// enqueued and acked count messages added to and acknowledged (or
	// purged, moved away) from the queue since the broker started.
	enqueued, acked atomic.Uint64
	// paused stops deliveries (PauseQueue); pausedRec is its record in
	// the bindings journal (0 for a non-durable queue). Guarded by mu.
	paused    bool
	pausedRec uint64
	// dispatching is set while one goroutine (a delivery goroutine or a
	// send's completion) takes messages out under mu and hands them to
	// consumers outside it: one at a time, so deliveries keep queue order.
	// It rechecks under mu before clearing it, so nothing made deliverable
	// meanwhile is left behind.
	dispatching bool
	idle        sync.Cond // on mu: broadcast when dispatching clears
	// selectors counts the consumers with a selector: dispatch then looks
	// past messages the next consumer does not want. Guarded by mu.
	selectors int
	// delayTimer wakes the queue when its earliest delayed message
	// (redelivery-delay) becomes deliverable, at delayAt. Guarded by mu.
	delayTimer *time.Timer
	delayAt    int64
	// expired are messages dispatch found expired, for the server to
	// expire (takeExpiredLocked). Guarded by mu.
	expired []*ref
	// pgp is the queue's paged messages (paging.go), nil until something
	// of it was paged.
	pgp atomic.Pointer[pageState]
}

// QueueInfo describes a queue for /status.
type QueueInfo struct {
	Address   string `json:"address"`
	Name      string `json:"name"`
	Routing   string `json:"routing"`
	Durable   bool   `json:"durable"`
	Depth     int64  `json:"depth"`
	Consumers int    `json:"consumers"`
	// Delivering counts messages delivered and not acknowledged yet
	// (part of Depth).
	Delivering int64 `json:"delivering"`
	// Paged counts messages in the paging journal not read into memory
	// yet (part of Depth).
	Paged int64 `json:"paged"`
	// Enqueued and Acknowledged count messages added to the queue and
	// acknowledged (purged or moved away included) since the broker
	// started.
	Enqueued     uint64 `json:"enqueued"`
	Acknowledged uint64 `json:"acknowledged"`
	// OldestAgeMs is the age of the oldest waiting message by its
	// sender's timestamp; nil when none waits or it has no timestamp.
	OldestAgeMs *int64 `json:"oldest_message_age_ms"`
	Paused      bool   `json:"paused"`
	Temporary   bool   `json:"temporary"`
	AutoCreated bool   `json:"auto_created"`
}

func newQueue(id uint64, name string, a *address, routing Routing, durable, temporary, auto bool) *Queue {
	q := &Queue{
		id: id, name: name, addr: a, routing: routing, durable: durable,
		temporary: temporary, autoCreated: auto, refData: encodeQueueID(id),
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
	paused := q.paused
	var oldest int64
	if depth > 0 {
		oldest = q.msgs.at(0).msg.Timestamp
	}
	q.mu.Unlock()
	delivering := q.delivering.Load()
	paged := q.pagedDepth()
	qi := QueueInfo{
		Address: q.addr.name, Name: q.name, Routing: q.routing.String(), Durable: q.durable,
		Depth: depth + delivering + paged, Paged: paged, Consumers: nc, Delivering: delivering,
		Enqueued: q.enqueued.Load(), Acknowledged: q.acked.Load(), Paused: paused,
		Temporary: q.temporary, AutoCreated: q.autoCreated,
	}
	if oldest > 0 {
		age := max(time.Now().UnixNano()-oldest, 0) / 1e6
		qi.OldestAgeMs = &age
	}
	return qi
}

// wake starts a delivery goroutine when messages wait for a consumer
// with credit and no delivery is running; a running delivery takes them
// itself (its recheck under mu sees what woke us). The goroutine exits
// once nothing more is deliverable, and shutdown waits for it.
func (q *Queue) wake() {
	q.mu.Lock()
	if q.dispatching || !q.deliverableLocked() {
		q.mu.Unlock()
		return
	}
	q.dispatching = true
	q.mu.Unlock()
	go q.drain()
}

// deliverableLocked reports whether a message waits and a consumer has
// credit for it. Caller holds q.mu.
func (q *Queue) deliverableLocked() bool {
	if q.deleted || q.paused || q.msgs.len() == 0 {
		return false
	}
	for _, c := range q.consumers {
		if c.credit > 0 {
			return true
		}
	}
	return false
}

// batchPool holds the delivery goroutines' batches.
var batchPool = sync.Pool{New: func() any { b := make([]delivery, 0, 128); return &b }}

// drain is a delivery goroutine, started by wake with dispatching set: it
// delivers until nothing more is deliverable, then clears dispatching and
// returns.
func (q *Queue) drain() {
	bp := batchPool.Get().(*[]delivery)
	batch := (*bp)[:0]
	q.mu.Lock()
	for {
		batch = q.dispatchLocked(batch[:0])
		exp := q.takeExpiredLocked()
		if len(batch) == 0 {
			q.dispatching = false
			q.idle.Broadcast()
			q.mu.Unlock()
			q.expire(exp)
			break
		}
		q.mu.Unlock()
		q.expire(exp)
		for i, d := range batch {
			d.c.deliver(d.r)
			batch[i] = delivery{}
		}
		q.mu.Lock()
	}
	*bp = batch
	batchPool.Put(bp)
}

// push appends r (already durable when it needs to be), which was routed
// here (routed counted it). It returns true when consumers are attached:
// the caller (a send's completion, whose consumers' handlers only encode
// frames) then calls deliverInline once it has answered the sender, saving
// a delivery goroutine per send. Nothing is claimed here: the sender's done
// may do anything, closing the consumer and deleting the queue included.
// A reference pushed to a deleted queue is dropped: only a non-durable
// one can be, because neither deletion leaves a send in flight to a
// durable queue (an auto-delete waits for routed to fall to zero,
// DeleteQueue for its barrier).
func (q *Queue) push(r *ref) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.routed.Add(-1)
	if q.deleted {
		if q.srv != nil {
			q.srv.release(r)
		}
		return false
	}
	q.seq++
	r.seq = q.seq
	q.msgs.pushBack(r)
	q.enqueued.Add(1)
	return len(q.consumers) > 0
}

// deliverInline delivers one batch of at most inlineDeliveries when no
// delivery is running, so a send's completion never works through a
// backlog; whatever is still deliverable then is left to a delivery
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
	exp := q.takeExpiredLocked()
	q.mu.Unlock()
	q.expire(exp)
	for i, d := range batch {
		d.c.deliver(d.r)
		batch[i] = delivery{}
	}
	q.mu.Lock()
	if q.deliverableLocked() { // hand the rest to a delivery goroutine
		q.mu.Unlock()
		go q.drain()
		return
	}
	q.dispatching = false
	q.idle.Broadcast()
	q.mu.Unlock()
}

// inlineDeliveries is the most a send's completion delivers itself.
const inlineDeliveries = 8

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
	} else {
		for _, r := range rs {
			r.notBefore = 0
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
// Expired messages it meets go to q.expired. With consumer selectors or
// delayed messages it looks past the head (scanLocked). Caller holds
// q.mu.
func (q *Queue) dispatchLocked(out []delivery) []delivery {
	if q.deleted || q.paused || len(q.consumers) == 0 {
		return out
	}
	if q.selectors > 0 || q.msgs.delayed > 0 {
		out = q.scanLocked(out)
	} else {
		var now int64
		for q.msgs.len() > 0 && len(out) < cap(out) {
			c := q.nextConsumerLocked(nil)
			if c == nil {
				break
			}
			r := q.msgs.popFront()
			if e := r.msg.Expiration; e != 0 {
				if now == 0 {
					now = time.Now().UnixNano()
				}
				if e <= now {
					q.expired = append(q.expired, r)
					continue
				}
			}
			out = append(out, q.assignLocked(c, r))
		}
	}
	if len(out) > 0 {
		q.delivering.Add(int64(len(out)))
	}
	if pg := q.pg(); pg != nil && pg.pending.Load() > 0 && q.msgs.len() < depageLowWater && q.srv != nil {
		q.srv.pager.want(q) // read more of its paged messages
	}
	return out
}

// nextConsumerLocked returns the next consumer, round robin, with credit
// and (m non-nil) wanting m; nil when none. Caller holds q.mu.
func (q *Queue) nextConsumerLocked(m *Message) *Consumer {
	n := len(q.consumers)
	for i := 0; i < n; i++ {
		cc := q.consumers[(q.rr+i)%n]
		if cc.credit > 0 && (m == nil || cc.wants(m)) {
			q.rr = (q.rr + i + 1) % n
			return cc
		}
	}
	return nil
}

// assignLocked gives r to c. Caller holds q.mu.
func (q *Queue) assignLocked(c *Consumer, r *ref) delivery {
	c.credit--
	r.deliveries++
	c.mu.Lock()
	c.delivered[r.msg.ID] = r
	c.mu.Unlock()
	return delivery{c, r}
}

// scanLocked is dispatch past the head: each waiting message, in order,
// goes to the next consumer with credit whose selector wants it; messages
// nobody takes, and delayed ones not due yet, keep their place. It stops
// once out is full or no consumer has credit left, and arms the delay
// timer for the earliest delayed message it saw. Caller holds q.mu.
func (q *Queue) scanLocked(out []delivery) []delivery {
	now := time.Now().UnixNano()
	var earliest int64
	start := len(out)
	credit := q.hasCreditLocked()
	q.msgs.filter(func(r *ref) (keep, stop bool) {
		if !credit || len(out) == cap(out) {
			return true, true
		}
		if e := r.msg.Expiration; e != 0 && e <= now {
			q.expired = append(q.expired, r)
			return false, false
		}
		if r.notBefore > now {
			if earliest == 0 || r.notBefore < earliest {
				earliest = r.notBefore
			}
			return true, false
		}
		c := q.nextConsumerLocked(r.msg)
		if c == nil {
			return true, false
		}
		out = append(out, q.assignLocked(c, r))
		if c.credit == 0 {
			credit = q.hasCreditLocked()
		}
		return false, false
	})
	for _, d := range out[start:] {
		d.r.notBefore = 0 // out of the deque: its count went with it
	}
	if earliest != 0 {
		q.armDelayLocked(earliest)
	}
	return out
}

func (q *Queue) hasCreditLocked() bool {
	for _, c := range q.consumers {
		if c.credit > 0 {
			return true
		}
	}
	return false
}

// armDelayLocked makes sure the queue wakes at (Unix ns) at: its earliest
// delayed message is due then. Caller holds q.mu.
func (q *Queue) armDelayLocked(at int64) {
	if q.delayTimer != nil && q.delayAt <= at {
		return
	}
	if q.delayTimer != nil {
		q.delayTimer.Stop()
	}
	q.delayAt = at
	var t *time.Timer
	t = time.AfterFunc(time.Duration(at-time.Now().UnixNano()), func() {
		q.mu.Lock()
		if q.delayTimer == t {
			q.delayTimer, q.delayAt = nil, 0
		}
		q.mu.Unlock()
		q.wake()
	})
	q.delayTimer = t
}

// takeExpiredLocked returns and forgets what dispatch found expired.
// Caller holds q.mu.
func (q *Queue) takeExpiredLocked() []*ref {
	if len(q.expired) == 0 {
		return nil
	}
	rs := q.expired
	q.expired = nil
	return rs
}

// expire hands expired messages taken out of q to the server, which
// moves them to the expiry address or drops them. Caller does not hold
// q.mu.
func (q *Queue) expire(rs []*ref) {
	if len(rs) > 0 && q.srv != nil {
		q.srv.expireRefs(q, rs)
	}
}

// addConsumer attaches c.
func (q *Queue) addConsumer(c *Consumer) bool {
	q.mu.Lock()
	if q.deleted || q.deleting {
		q.mu.Unlock()
		return false
	}
	if c.sel != nil {
		q.selectors++
	}
	q.consumers = append(q.consumers, c)
	q.mu.Unlock()
	if q.srv != nil {
		q.srv.cluster.fwd.changed() // peers see the consumer count (forward.go)
	}
	q.wake()
	if pg := q.pg(); pg != nil && pg.pending.Load() > 0 && q.srv != nil {
		q.srv.pager.want(q)
	}
	return true
}

// removeConsumer detaches c and returns its unacked deliveries (the caller
// puts them back at the queue head). It returns the number of consumers
// left; at 0 the queue is idle from now.
func (q *Queue) removeConsumer(c *Consumer) (cancelled []*ref, left int) {
	q.mu.Lock()
	if i := slices.Index(q.consumers, c); i >= 0 {
		if c.sel != nil {
			q.selectors--
		}
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
	if left == 0 {
		q.idleSince = time.Now()
	}
	q.mu.Unlock()
	if q.srv != nil {
		q.srv.cluster.fwd.changed()
	}
	return cancelled, left
}

// shutdown stops delivering: it waits for a delivery in progress (a
// delivery goroutine's or a send completion's); nothing is delivered once
// it returns, and no delivery goroutine of the queue is left.
func (q *Queue) shutdown() {
	q.mu.Lock()
	q.deleted = true
	for q.dispatching {
		q.idle.Wait()
	}
	if q.delayTimer != nil {
		q.delayTimer.Stop()
		q.delayTimer = nil
	}
	q.mu.Unlock()
}
