package server

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// mapDupCache is the reference: the cache as a Go map and a ring, with the
// same replace and evict rules.
type mapDupCache struct {
	size int
	m    map[string]*dupEntry
	ring []dupSlot
	next int
	full bool
}

func (c *mapDupCache) add(id string, e *dupEntry) (evicted uint64) {
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
	c.ring[c.next] = dupSlot{id: id, e: e}
	c.m[id] = e
	if c.next++; c.next == c.size {
		c.next, c.full = 0, true
	}
	return evicted
}

func (c *mapDupCache) forget(id string, e *dupEntry) {
	if c.m[id] == e {
		delete(c.m, id)
	}
	e.recID = 0
}

// TestDupCacheModel runs random adds, re-adds, forgets and lookups against
// the map reference, with IDs from a small pool so that probe runs collide,
// wrap and shift back on removal.
func TestDupCacheModel(t *testing.T) {
	for _, size := range []int{1, 2, 3, 7, 64, 1000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			c := newDupCache(size)
			ref := &mapDupCache{size: size, m: map[string]*dupEntry{}}
			pool := 3*size + 5
			var rec uint64
			var live []*dupEntry
			var liveIDs []string
			for step := range 20000 {
				id := "id-" + strconv.Itoa(rng.IntN(pool))
				switch op := rng.IntN(10); {
				case op < 6: // a send: add when not present (or re-add)
					if c.lookup(id) != nil && op != 0 {
						break
					}
					rec++
					e := &dupEntry{recID: rec}
					if got, want := c.add(id, e), ref.add(id, e); got != want {
						t.Fatalf("step %d: add(%s) evicted %d, want %d", step, id, got, want)
					}
					live = append(live, e)
					liveIDs = append(liveIDs, id)
				case op < 7 && len(live) > 0: // a refused append
					i := rng.IntN(len(live))
					c.forget(liveIDs[i], live[i])
					ref.forget(liveIDs[i], live[i])
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
