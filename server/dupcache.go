package server

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// dupCache is one address's duplicate ID cache: the last size IDs, in
// insertion order (a ring, grown as IDs come until it holds size), each
// with the journal record that persists it.
// The owning address's mutex guards the index and ring; waitMu guards the
// pending state of entries, because journal callbacks complete entries and
// must never take the address mutex (it is held across Append).
//
// The index is an open-addressing table (linear probing, backward-shift
// deletion) of ring positions with the low 32 bits of each ID's hash: a
// send hashes its ID once, and evicting the oldest ID finds its table slot
// by ring position without hashing or comparing strings again. A Go map
// keyed by the ID strings cost three string hashes and scattered probes per
// send (11% of the broker's CPU at 256 sends in flight).
type dupCache struct {
	size  int
	seed  maphash.Seed
	index []dupRef // len a power of two, at least 2*len(ring); nil until the first add
	ring  []dupSlot
	next  int // ring slot of the next insert (the oldest when full)
	full  bool

	waitMu sync.Mutex
}

// dupRef is an index slot: pos is a ring position + 1 (0: empty).
type dupRef struct {
	hash uint32
	pos  int32
}

type dupSlot struct {
	id   string
	hash uint32
	e    *dupEntry
}

type dupEntry struct {
	recID   uint64 // journal record ID, 0 when not persisted
	pending bool   // its send is not durable yet
	err     error  // outcome of its send once not pending
	waiters []func(error)
}

func newDupCache(size int) *dupCache {
	return &dupCache{size: size, seed: maphash.MakeSeed()}
}

func (c *dupCache) hash(id string) uint32 { return uint32(maphash.String(c.seed, id)) }

// find returns the index slot holding id (hash h), or -1.
func (c *dupCache) find(id string, h uint32) int {
	if c.index == nil {
		return -1
	}
	mask := len(c.index) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		r := c.index[i]
		if r.pos == 0 {
			return -1
		}
		if r.hash == h && c.ring[r.pos-1].id == id {
			return i
		}
	}
}

// slotOf returns the index slot pointing at ring position p (whose ID
// hashes to h), or -1 when the index no longer points there.
func (c *dupCache) slotOf(p int, h uint32) int {
	mask := len(c.index) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		r := c.index[i]
		if r.pos == 0 {
			return -1
		}
		if int(r.pos) == p+1 {
			return i
		}
	}
}

// remove empties index slot i, shifting later slots of its probe run back
// so that no lookup stops early at the hole.
func (c *dupCache) remove(i int) {
	mask := len(c.index) - 1
	for {
		c.index[i] = dupRef{}
		j := i
		for {
			j = (j + 1) & mask
			r := c.index[j]
			if r.pos == 0 {
				return
			}
			home := int(r.hash) & mask
			// r stays when its home is cyclically in (i, j].
			if i <= j {
				if i < home && home <= j {
					continue
				}
			} else if i < home || home <= j {
				continue
			}
			c.index[i] = r
			i = j
			break
		}
	}
}

// len returns the number of IDs the cache holds (forgotten ones included).
func (c *dupCache) len() int {
	if c.full {
		return c.size
	}
	return c.next
}

// lookup returns the entry for id, or nil.
func (c *dupCache) lookup(id string) *dupEntry {
	if i := c.find(id, c.hash(id)); i >= 0 {
		return c.ring[c.index[i].pos-1].e
	}
	return nil
}

// add inserts id (a later add of the same ID replaces the earlier one);
// when the cache is full it evicts the oldest entry and returns its record
// ID (0 when there is none or it was not persisted).
func (c *dupCache) add(id string, e *dupEntry) (evicted uint64) {
	if c.size <= 0 {
		return 0
	}
	if !c.full && c.next == len(c.ring) {
		c.grow()
	}
	if c.full {
		old := &c.ring[c.next]
		if i := c.slotOf(c.next, old.hash); i >= 0 {
			c.remove(i)
		}
		if old.e != nil {
			evicted = old.e.recID
		}
	}
	h := c.hash(id)
	c.ring[c.next] = dupSlot{id: id, hash: h, e: e}
	ref := dupRef{hash: h, pos: int32(c.next + 1)}
	if i := c.find(id, h); i >= 0 {
		c.index[i] = ref
	} else {
		mask := len(c.index) - 1
		i := int(h) & mask
		for c.index[i].pos != 0 {
			i = (i + 1) & mask
		}
		c.index[i] = ref
	}
	c.next++
	if c.next == c.size {
		c.next = 0
		c.full = true
	}
	return evicted
}

// grow doubles the ring (from 16 slots, up to size) and keeps the index
// at least twice as large, so a cache takes memory as IDs come. Called
// before the ring is full: its first next slots hold the IDs in order, and
// positions stay valid.
func (c *dupCache) grow() {
	n := min(max(2*len(c.ring), 16), c.size)
	ring := make([]dupSlot, n)
	copy(ring, c.ring)
	c.ring = ring
	index := make([]dupRef, 1<<bits.Len(uint(2*n-1)))
	mask := len(index) - 1
	for _, r := range c.index {
		if r.pos == 0 {
			continue
		}
		i := int(r.hash) & mask
		for index[i].pos != 0 {
			i = (i + 1) & mask
		}
		index[i] = r
	}
	c.index = index
}

// forget drops e (its append was refused, so its record never existed).
func (c *dupCache) forget(id string, e *dupEntry) {
	if i := c.find(id, c.hash(id)); i >= 0 && c.ring[c.index[i].pos-1].e == e {
		c.remove(i)
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
