package server

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// mapDupCache is the reference: the cache as a Go map and a ring, with the
// same replace and evict rules, and an undo that restores the map, the ring
// slot and the ring position.
type mapDupCache struct {
	size int
	m    map[string]*dupEntry
	ring []dupSlot
	next int
	full bool
}

type mapDupUndo struct {
	id      string
	pos     int
	old     dupSlot
	evicted bool      // old was in the map and the add removed it
	prev    *dupEntry // what m[id] held before the add (nil: absent)
	wasFull bool
}

func (c *mapDupCache) add(id string, e *dupEntry) (evicted uint64, u mapDupUndo) {
	if c.ring == nil {
		c.ring = make([]dupSlot, c.size)
	}
	u = mapDupUndo{id: id, pos: c.next, old: c.ring[c.next], wasFull: c.full}
	if c.full {
		old := c.ring[c.next]
		if c.m[old.id] == old.e {
			delete(c.m, old.id)
			u.evicted = true
		}
		if old.e != nil {
			evicted = old.e.recID
		}
	}
	u.prev = c.m[id]
	c.ring[c.next] = dupSlot{id: id, e: e}
	c.m[id] = e
	if c.next++; c.next == c.size {
		c.next, c.full = 0, true
	}
	return evicted, u
}

func (c *mapDupCache) undo(u mapDupUndo) {
	if u.prev != nil {
		c.m[u.id] = u.prev
	} else {
		delete(c.m, u.id)
	}
	if u.evicted {
		c.m[u.old.id] = u.old.e
	}
	c.ring[u.pos] = u.old
	c.next, c.full = u.pos, u.wasFull
}

// TestDupCacheModel runs random adds, re-adds, undos of refused appends
// (the adds since the last accepted append, last first, as a refused
// transaction does) and lookups against the map reference, with IDs from a
// small pool so that probe runs collide, wrap and shift back on removal.
// After each step every ID's lookup agrees, and each add evicts the same
// record as the reference: an undo restores the eviction order too.
func TestDupCacheModel(t *testing.T) {
	for _, size := range []int{1, 2, 3, 7, 64, 1000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			c := newDupCache(size)
			ref := &mapDupCache{size: size, m: map[string]*dupEntry{}}
			pool := 3*size + 5
			var rec uint64
			type undos struct {
				c   dupUndo
				ref mapDupUndo
			}
			var open []undos // adds of the append being built
			for step := range 20000 {
				id := "id-" + strconv.Itoa(rng.IntN(pool))
				switch op := rng.IntN(10); {
				case op < 6: // a send: add when not present (or re-add)
					if c.lookup(id) != nil && op != 0 {
						break
					}
					rec++
					e := &dupEntry{recID: rec}
					got, cu := c.add(id, e)
					want, ru := ref.add(id, e)
					if got != want {
						t.Fatalf("step %d: add(%s) evicted %d, want %d", step, id, got, want)
					}
					open = append(open, undos{cu, ru})
				case op < 7: // the append is refused
					for i := len(open) - 1; i >= 0; i-- {
						c.undo(open[i].c)
						ref.undo(open[i].ref)
					}
					open = open[:0]
				default: // the append is accepted
					open = open[:0]
				}
				for k := range pool {
					id := "id-" + strconv.Itoa(k)
					if got, want := c.lookup(id), ref.m[id]; got != want {
						t.Fatalf("step %d: lookup(%s) = %p, want %p", step, id, got, want)
					}
				}
			}
		})
	}
}

// BenchmarkDupCache: a send's cache work on a full default-size cache
// (lookup of a new ID, then add evicting the oldest).
func BenchmarkDupCache(b *testing.B) {
	c := newDupCache(DefaultIDCacheSize)
	ids := make([]string, 4*DefaultIDCacheSize)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-7f3a9c-%d", i)
	}
	for _, id := range ids[:DefaultIDCacheSize] {
		c.add(id, &dupEntry{})
	}
	e := &dupEntry{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := ids[(i+DefaultIDCacheSize)%len(ids)]
		if c.lookup(id) == nil {
			c.add(id, e)
		}
	}
}
