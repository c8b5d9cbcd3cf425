package journal

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// checkIDMap compares m with the model: the same keys and locations, and
// every key reachable from its home without crossing an empty slot.
func checkIDMap(t *testing.T, m *idMap, model map[uint64]recLoc) {
	t.Helper()
	if m.len() != len(model) {
		t.Fatalf("len %d, model %d", m.len(), len(model))
	}
	for k, want := range model {
		if got, ok := m.get(k); !ok || got != want {
			t.Fatalf("get(%d) = %v, %v; want %v", k, got, ok, want)
		}
	}
	seen := 0
	m.each(func(k uint64, loc *recLoc) {
		seen++
		if want, ok := model[k]; !ok || *loc != want {
			t.Fatalf("each: key %d loc %v, model has %v (%v)", k, *loc, want, ok)
		}
	})
	if seen != len(model) {
		t.Fatalf("each visited %d keys, want %d", seen, len(model))
	}
	for i, s := range m.slots {
		if s.key == 0 {
			continue
		}
		for j := m.home(s.key); j != uint64(i); j = (j + 1) & m.mask {
			if m.slots[j].key == 0 {
				t.Fatalf("key %d at slot %d is cut off from its home %d by the empty slot %d", s.key, i, m.home(s.key), j)
			}
		}
	}
	if len(m.slots) > 0 && m.n > len(m.slots)/4*3 {
		t.Fatalf("%d keys in %d slots: over 3/4 full", m.n, len(m.slots))
	}
}

// TestIDMapModel runs random operations on key patterns that matter
// (consecutive IDs as a queue uses them, strides that are multiples of the
// block size, random, small with 0) against a Go map.
func TestIDMapModel(t *testing.T) {
	patterns := []struct {
		name string
		key  func(r *rand.Rand, i uint64) uint64
	}{
		{"sequential", func(_ *rand.Rand, i uint64) uint64 { return i + 1 }},
		{"stride16", func(_ *rand.Rand, i uint64) uint64 { return 16 * (i + 1) }},
		{"stride4096", func(_ *rand.Rand, i uint64) uint64 { return 4096*i + 7 }},
		{"random", func(r *rand.Rand, _ uint64) uint64 { return r.Uint64() }},
		{"small", func(r *rand.Rand, _ uint64) uint64 { return r.Uint64N(300) }},
		{"high", func(_ *rand.Rand, i uint64) uint64 { return ^uint64(0) - i }},
	}
	for _, p := range patterns {
		t.Run(p.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var m idMap
			model := map[uint64]recLoc{}
			var keys []uint64
			next := uint64(0)
			for step := range 60000 {
				// Grow to ~5000 keys, shrink to ~0, grow again (exercises
				// resizing both ways).
				phase := step / 10000 % 2
				switch op := r.IntN(10); {
				case op < 5-2*phase || len(keys) == 0:
					k := p.key(r, next)
					next++
					loc := recLoc{seg: uint64(step), idx: int32(step), size: uint32(k)}
					_, had := model[k]
					if got := m.insert(k, loc); got == had {
						t.Fatalf("insert(%d) = %v with the key present = %v", k, got, had)
					}
					if !had {
						model[k] = loc
						keys = append(keys, k)
					}
				case op < 9:
					i := r.IntN(len(keys))
					k := keys[i]
					keys[i] = keys[len(keys)-1]
					keys = keys[:len(keys)-1]
					loc, ok := m.remove(k)
					if !ok || loc != model[k] {
						t.Fatalf("remove(%d) = %v, %v; want %v", k, loc, ok, model[k])
					}
					delete(model, k)
					if _, ok := m.remove(k); ok {
						t.Fatalf("second remove(%d) found it", k)
					}
				default:
					k := keys[r.IntN(len(keys))]
					loc := recLoc{seg: 7, idx: int32(step)}
					m.set(k, loc)
					model[k] = loc
				}
				if step%2000 == 0 {
					checkIDMap(t, &m, model)
				}
			}
			checkIDMap(t, &m, model)
			c := m.clone()
			checkIDMap(t, &c, model)
			c.set(12345, recLoc{seg: 1})
			c.each(func(_ uint64, loc *recLoc) { loc.seg = 99 })
			checkIDMap(t, &m, model)
		})
	}
}

// FuzzIDMap applies the operations the bytes encode (op, key) to an idMap
// and a Go map and compares them.
func FuzzIDMap(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 1, 0, 17, 0, 33, 1, 17})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m idMap
		model := map[uint64]recLoc{}
		for i := 0; i+3 <= len(b); i += 3 {
			// Keys from few blocks, so runs collide and wrap.
			k := uint64(binary.LittleEndian.Uint16(b[i+1:])) % 512 * 17
			loc := recLoc{seg: uint64(i), size: uint32(k)}
			switch b[i] % 3 {
			case 0:
				_, had := model[k]
				if m.insert(k, loc) == had {
					t.Fatalf("insert(%d): present = %v", k, had)
				}
				if !had {
					model[k] = loc
				}
			case 1:
				got, ok := m.remove(k)
				want, had := model[k]
				if ok != had || got != want {
					t.Fatalf("remove(%d) = %v, %v; want %v, %v", k, got, ok, want, had)
				}
				delete(model, k)
			case 2:
				m.set(k, loc)
				model[k] = loc
			}
		}
		checkIDMap(t, &m, model)
	})
}
