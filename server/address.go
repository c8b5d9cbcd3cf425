package server

import (
	"sync"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// address is a named destination with the queues bound to it.
type address struct {
	name      string
	anycast   bool
	multicast bool
	recID     uint64 // its record in the bindings journal
	// autoCreated: created by a client's send or consumer, not by
	// management; autoDelete: its address settings delete it (after
	// deleteDelay) once no queue is bound to it (auto-delete-addresses).
	autoCreated bool
	autoDelete  bool
	deleteDelay time.Duration

	// mu guards queues, rr and dup, and orders this address's journal
	// appends: a duplicate ID's add is appended before its eviction's
	// delete. It is held across Append, never in journal callbacks.
	mu     sync.Mutex
	queues []*Queue
	rr     int
	dup    *dupCache
	// entries is send's journal entry buffer, reused under mu.
	entries []journal.Entry
	// deleted is set (under mu, with the server's mutex held) when the
	// address is auto-deleted: a send holding it looks the name up again.
	deleted bool
	// emptySince is when its last queue went (or it was created or loaded
	// without queues); guarded by mu.
	emptySince time.Time
}

// route picks the queues a message sent with routing r goes to: one
// anycast queue (round robin) or every multicast queue. Caller holds a.mu.
func (a *address) routeLocked(r Routing, out []*Queue) []*Queue {
	if r == Anycast {
		n := len(a.queues)
		for i := 0; i < n; i++ {
			q := a.queues[(a.rr+i)%n]
			if q.routing == Anycast {
				a.rr = (a.rr + i + 1) % n
				return append(out, q)
			}
		}
		return out
	}
	for _, q := range a.queues {
		if q.routing == Multicast {
			out = append(out, q)
		}
	}
	return out
}

func (a *address) hasRouting(r Routing) bool {
	if r == Anycast {
		return a.anycast
	}
	return a.multicast
}

// hasAnycastQueueLocked reports whether an anycast queue is bound. Caller
// holds a.mu.
func (a *address) hasAnycastQueueLocked() bool {
	for _, q := range a.queues {
		if q.routing == Anycast {
			return true
		}
	}
	return false
}

// routableLocked reports whether a send with routing r may route through
// a: it was not deleted meanwhile, and an anycast send finds a queue.
// Caller holds a.mu.
func (a *address) routableLocked(r Routing) bool {
	return !a.deleted && (r == Multicast || a.hasAnycastQueueLocked())
}
