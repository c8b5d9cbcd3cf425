package server

import (
	"sync"

	"github.com/tandemmq/tandem/journal"
)

// address is a named destination with the queues bound to it.
type address struct {
	name      string
	anycast   bool
	multicast bool
	recID     uint64 // its record in the bindings journal

	// mu guards queues, rr and dup, and orders this address's journal
	// appends: a duplicate ID's add is appended before its eviction's
	// delete. It is held across Append, never in journal callbacks.
	mu     sync.Mutex
	queues []*Queue
	rr     int
	dup    *dupCache
	// entries is send's journal entry buffer, reused under mu.
	entries []journal.Entry
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
