package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/config"
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
	// policy is the address's settings (config <address-settings>),
	// worked out when it is created or loaded.
	policy config.AddressPolicy

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

	// mem is the memory of its messages held in memory (paging.go);
	// pagedInflight counts its paged sends not complete yet.
	mem, pagedInflight atomic.Int64
	// paging: new messages go to the paging journal (guarded by mu).
	paging bool
	// parked are the sends BLOCK holds, in order (guarded by mu).
	parked []parkedSend
}

// stampExpiry gives m, sent without an expiration, the address's
// expiry-delay.
func (a *address) stampExpiry(m *Message) {
	if d := a.policy.ExpiryDelay; d > 0 && m.Expiration == 0 {
		m.Expiration = time.Now().Add(d).UnixNano()
	}
}

// routeLocked picks the queues m, sent with routing r, goes to: one
// anycast queue (round robin) or every multicast queue, among those whose
// filter accepts it (m nil: any). Caller holds a.mu.
func (a *address) routeLocked(r Routing, m *Message, out []*Queue) []*Queue {
	if r == Anycast {
		n := len(a.queues)
		for i := 0; i < n; i++ {
			q := a.queues[(a.rr+i)%n]
			if q.routing == Anycast && (m == nil || q.accepts(m)) {
				a.rr = (a.rr + i + 1) % n
				return append(out, q)
			}
		}
		return out
	}
	for _, q := range a.queues {
		if q.routing == Multicast && (m == nil || q.accepts(m)) {
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
