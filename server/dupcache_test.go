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
// After each step every ID's lookup and the window's length agree, and
// each add evicts the same record as the reference: an undo restores the
// eviction order too, also when the adds it takes back grew the ring.
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
			openRing := 0    // the ring's length when the first of them was made
			grewUndone := 0  // refused appends whose adds grew the ring
			refuse := false  // refuse the append at the next step
			for step := range 20000 {
				id := "id-" + strconv.Itoa(rng.IntN(pool))
				op := rng.IntN(10)
				if refuse {
					op, refuse = 6, false
				}
				switch {
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
					if len(open) == 0 {
						openRing = len(c.ring)
					}
					open = append(open, undos{cu, ru})
					// Half the appends whose adds grew the ring are refused
					// (the others let it grow on).
					if len(c.ring) > openRing && rng.IntN(2) == 0 {
						refuse = true
					}
				case op < 7: // the append is refused
					if len(open) > 0 && len(c.ring) > openRing {
						grewUndone++
					}
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
				want := ref.next
				if ref.full {
					want = size
				}
				if got := c.len(); got != want {
					t.Fatalf("step %d: len %d, want %d", step, got, want)
				}
			}
			// The ring starts at 16 slots: a larger cache must have undone
			// adds that grew it, the case where positions must survive a
			// reallocation.
			if size > 16 && grewUndone == 0 {
				t.Errorf("no refused append undid an add that grew the ring")
			}
		})
	}
}

// TestDupCacheUndoAfterGrow: a refused transaction whose adds grew the
// ring (16 to 32 slots) and, in a cache of 20, filled it and evicted the
// oldest IDs, is undone last add first: the window is exactly the one
// before (every earlier ID found, none of the refused ones, the same
// length), and the adds after it evict the same records, in the same
// order, as in a cache that never saw the refused transaction.
func TestDupCacheUndoAfterGrow(t *testing.T) {
	for _, tc := range []struct{ size, before, refused int }{
		{64, 16, 3},  // the first refused add grows the ring to 32
		{20, 16, 7},  // grows to 20, fills it and evicts 3 of the earlier IDs
		{64, 15, 40}, // grows twice (16 to 32 to 64)
	} {
		t.Run(fmt.Sprintf("size=%d,before=%d,refused=%d", tc.size, tc.before, tc.refused), func(t *testing.T) {
			c, clean := newDupCache(tc.size), newDupCache(tc.size)
			var rec uint64
			add := func(id string) {
				rec++
				c.add(id, &dupEntry{recID: rec})
				clean.add(id, &dupEntry{recID: rec})
			}
			for i := range tc.before {
				add("early-" + strconv.Itoa(i))
			}
			ring := len(c.ring)
			var us []dupUndo
			for i := range tc.refused {
				_, u := c.add("refused-"+strconv.Itoa(i), &dupEntry{recID: 1000 + uint64(i)})
				us = append(us, u)
			}
			if len(c.ring) == ring {
				t.Fatalf("the refused adds did not grow the ring (%d slots)", ring)
			}
			for i := len(us) - 1; i >= 0; i-- {
				c.undo(us[i])
			}
			if c.len() != clean.len() {
				t.Fatalf("len %d after the undo, want %d", c.len(), clean.len())
			}
			for i := range tc.before {
				id := "early-" + strconv.Itoa(i)
				if got, want := c.lookup(id), clean.lookup(id); got == nil || got.recID != want.recID {
					t.Fatalf("%s: %v after the undo, want record %d", id, got, want.recID)
				}
			}
			for i := range tc.refused {
				if e := c.lookup("refused-" + strconv.Itoa(i)); e != nil {
					t.Fatalf("refused-%d is still in the window (record %d)", i, e.recID)
				}
			}
			for i := range 3 * tc.size {
				id := "late-" + strconv.Itoa(i)
				rec++
				got, _ := c.add(id, &dupEntry{recID: rec})
				want, _ := clean.add(id, &dupEntry{recID: rec})
				if got != want {
					t.Fatalf("add %d after the undo evicted record %d, want %d", i, got, want)
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
