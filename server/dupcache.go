package server

import "sync"

// dupCache is one address's duplicate ID cache: the last size IDs, in
// insertion order (a ring), each with the journal record that persists it.
// The owning address's mutex guards the map and ring; waitMu guards the
// pending state of entries, because journal callbacks complete entries and
// must never take the address mutex (it is held across Append).
type dupCache struct {
	size int
	m    map[string]*dupEntry
	ring []dupSlot
	next int // ring slot of the next insert (the oldest when full)
	full bool

	waitMu sync.Mutex
}

type dupSlot struct {
	id string
	e  *dupEntry
}

type dupEntry struct {
	recID   uint64 // journal record ID, 0 when not persisted
	pending bool   // its send is not durable yet
	err     error  // outcome of its send once not pending
	waiters []func(error)
}

func newDupCache(size int) *dupCache {
	return &dupCache{size: size, m: make(map[string]*dupEntry)}
}

// lookup returns the entry for id, or nil.
func (c *dupCache) lookup(id string) *dupEntry { return c.m[id] }

// add inserts id; when the cache is full it evicts the oldest entry and
// returns its record ID (0 when there is none or it was not persisted).
func (c *dupCache) add(id string, e *dupEntry) (evicted uint64) {
	if c.size <= 0 {
		return 0
	}
	if c.ring == nil {
		c.ring = make([]dupSlot, c.size)
	}
	if c.full {
		old := c.ring[c.next]
		if c.m[old.id] == old.e {
			delete(c.m, old.id)
		}
		if old.e != nil {
			evicted = old.e.recID
		}
	}
	c.ring[c.next] = dupSlot{id, e}
	c.m[id] = e
	c.next++
	if c.next == c.size {
		c.next = 0
		c.full = true
	}
	return evicted
}

// forget drops e (its append was refused, so its record never existed).
func (c *dupCache) forget(id string, e *dupEntry) {
	if c.m[id] == e {
		delete(c.m, id)
	}
	e.recID = 0
}

// wait calls fn with the entry's outcome: at once when it is known, else
// when complete runs.
func (c *dupCache) wait(e *dupEntry, fn func(error)) {
	c.waitMu.Lock()
	if e.pending {
		e.waiters = append(e.waiters, fn)
		c.waitMu.Unlock()
		return
	}
	err := e.err
	c.waitMu.Unlock()
	fn(err)
}

// complete records the outcome of the entry's send and runs its waiters.
func (c *dupCache) complete(e *dupEntry, err error) {
	c.waitMu.Lock()
	e.pending = false
	e.err = err
	ws := e.waiters
	e.waiters = nil
	c.waitMu.Unlock()
	for _, w := range ws {
		w(err)
	}
}
