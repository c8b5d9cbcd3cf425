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
// consumer with credit takes them; a goroutine per queue delivers.
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
	deleted   bool

	delivering atomic.Int64 // delivered, not acked
	kick       chan struct{}
	stop       chan struct{}
	stopped    chan struct{}
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

// enqueue appends references (already durable when they need to be).
func (q *Queue) enqueue(rs ...*ref) {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return
	}
	for _, r := range rs {
		q.seq++
		r.seq = q.seq
		q.msgs.pushBack(r)
	}
	hasConsumers := len(q.consumers) > 0
	q.mu.Unlock()
	if hasConsumers {
		q.wake()
	}
}

// requeue puts cancelled deliveries back at the head, in queue order.
func (q *Queue) requeue(rs []*ref) {
	if len(rs) == 0 {
		return
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
	if !q.deleted {
		for i := len(rs) - 1; i >= 0; i-- {
			q.msgs.pushFront(rs[i])
		}
	}
	q.mu.Unlock()
	q.delivering.Add(-int64(len(rs)))
	q.wake()
}

type delivery struct {
	c *Consumer
	r *ref
}

// dispatchLocked hands waiting messages to consumers with credit, round
// robin, at most len(out) cap of them. Caller holds q.mu.
func (q *Queue) dispatchLocked(out []delivery) []delivery {
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
		for {
			q.mu.Lock()
			batch = q.dispatchLocked(batch[:0])
			q.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, d := range batch {
				d.c.deliver(d.r)
				batch[i] = delivery{}
			}
		}
	}
}

// addConsumer attaches c.
func (q *Queue) addConsumer(c *Consumer) bool {
	q.mu.Lock()
	if q.deleted {
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

// shutdown stops the delivery goroutine and waits for it.
func (q *Queue) shutdown() {
	q.mu.Lock()
	q.deleted = true
	q.mu.Unlock()
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	<-q.stopped
}
