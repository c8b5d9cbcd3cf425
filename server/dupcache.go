package server

import (
	"hash/maphash"
	"math/bits"
	"sync"

	"github.com/tandemmq/tandem/journal"
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
	// deferred (guarded by waitMu) is set for an entry whose record is
	// appended only once its message is durable in the paging journal
	// (appendDeferred): an eviction before then deletes nothing, and the
	// record is then never appended.
	deferred deferState
}

type deferState uint8

const (
	deferNone     deferState = iota
	deferWaiting             // its record is not appended yet
	deferAppended            // appended
	deferEvicted             // evicted before it was appended: never appended
)

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

// len returns the number of IDs in the window (an ID re-added counts
// once per add).
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
// ID (0 when there is none or it was not persisted), with what undo needs
// to take the add back.
func (c *dupCache) add(id string, e *dupEntry) (evicted uint64, u dupUndo) {
	if c.size <= 0 {
		return 0, dupUndo{pos: -1}
	}
	if !c.full && c.next == len(c.ring) {
		c.grow()
	}
	u = dupUndo{pos: c.next, old: c.ring[c.next], full: c.full}
	if c.full {
		old := &c.ring[c.next]
		if i := c.slotOf(c.next, old.hash); i >= 0 {
			c.remove(i)
			u.evicted = true
		}
		if old.e != nil {
			c.waitMu.Lock()
			if old.e.deferred == deferWaiting {
				old.e.deferred, u.unevict = deferEvicted, old.e
			} else {
				evicted = old.e.recID
			}
			c.waitMu.Unlock()
		}
	}
	h := c.hash(id)
	c.ring[c.next] = dupSlot{id: id, hash: h, e: e}
	ref := dupRef{hash: h, pos: int32(c.next + 1)}
	if i := c.find(id, h); i >= 0 {
		u.replaced = c.index[i].pos
		c.index[i] = ref
	} else {
		c.insert(ref)
	}
	c.next++
	if c.next == c.size {
		c.next = 0
		c.full = true
	}
	return evicted, u
}

// grow doubles the ring (from 16 slots, up to size) and keeps the index
// at least twice as large, so a cache takes memory as IDs come. Called
// before the ring is full: its first next slots hold the IDs in order, and
// ring positions stay valid, so a dupUndo taken before a grow still names
// the slot it changed (an undo after a grow leaves the ring larger, which
// changes no lookup and no eviction).
func (c *dupCache) grow() {
	n := min(max(2*len(c.ring), 16), c.size)
	ring := make([]dupSlot, n)
	copy(ring, c.ring)
	c.ring = ring
	old := c.index
	c.index = make([]dupRef, 1<<bits.Len(uint(2*n-1)))
	for _, r := range old {
		if r.pos != 0 {
			c.insert(r)
		}
	}
}

// insert puts ref in the first empty index slot of its probe run.
func (c *dupCache) insert(ref dupRef) {
	mask := len(c.index) - 1
	i := int(ref.hash) & mask
	for c.index[i].pos != 0 {
		i = (i + 1) & mask
	}
	c.index[i] = ref
}

// dupUndo is what one add changed: the ring slot it wrote and what was
// there (evicted: the index still pointed at it), the ring position + 1 of
// an entry of the same ID it replaced in the index (0: none), and whether
// the ring was full.
type dupUndo struct {
	pos      int // -1: the add changed nothing
	old      dupSlot
	evicted  bool
	replaced int32
	full     bool
	unevict  *dupEntry // a deferred entry the add marked evicted
}

// undo takes an add back because its append was refused, so neither the
// added ID's record nor the delete of the evicted one exists: the evicted
// ID is in the window again, the added one is not, and the next add evicts
// what it would have evicted before. Adds made under one hold of the
// address mutex are undone in the reverse order, under the same hold.
func (c *dupCache) undo(u dupUndo) {
	if u.pos < 0 {
		return
	}
	if i := c.slotOf(u.pos, c.ring[u.pos].hash); i >= 0 {
		if u.replaced != 0 {
			c.index[i].pos = u.replaced
		} else {
			c.remove(i)
		}
	}
	c.ring[u.pos] = u.old
	if u.evicted {
		c.insert(dupRef{hash: u.old.hash, pos: int32(u.pos + 1)})
	}
	if e := u.unevict; e != nil {
		c.waitMu.Lock()
		if e.deferred == deferEvicted {
			e.deferred = deferWaiting
		}
		c.waitMu.Unlock()
	}
	c.next, c.full = u.pos, u.full
}

// appendDeferred appends a deferred entry's record (add, unless it was
// evicted meanwhile) with the other entries (evictions), under waitMu so
// that an eviction either sees it appended (and deletes it after) or
// makes it never appended.
func (c *dupCache) appendDeferred(e *dupEntry, add journal.Entry, others []journal.Entry, appendFn func([]journal.Entry) error) error {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	var es []journal.Entry
	if e != nil && e.deferred == deferWaiting {
		e.deferred = deferAppended
		es = append(es, add)
	}
	es = append(es, others...)
	if len(es) == 0 {
		return nil
	}
	return appendFn(es)
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
