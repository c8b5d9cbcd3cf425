package journal

import (
	"maps"
	"slices"
	"testing"
)

// decodeOps turns fuzz bytes into appends of small entries: 3 bytes each
// (kind, ID, transaction; the kind byte's high bit puts the entry in the
// same append as the previous one), so that IDs and transactions collide
// often.
func decodeOps(b []byte) [][]Entry {
	var appends [][]Entry
	for ; len(b) >= 3; b = b[3:] {
		e := Entry{Kind: Kind(b[0] & 0x7f % 10), ID: uint64(b[1]%6 + 1), TxID: uint64(b[2]%4 + 1), Type: b[1]}
		if b[2]&0x80 != 0 {
			e.Data = []byte{b[2], b[1]}
		}
		if b[0]&0x80 != 0 && len(appends) > 0 {
			appends[len(appends)-1] = append(appends[len(appends)-1], e)
		} else {
			appends = append(appends, []Entry{e})
		}
	}
	return appends
}

// FuzzStateMachines applies arbitrary appends to the validator (the
// append side) and replays what it accepted through the loader (the
// replay side), directly and as the memory store does (compacting as it
// goes): both sides must agree on the live records, the prepared and the
// unfinished transactions and MaxID, each record and prepared transaction
// must appear once, and the validator rebuilt by the load must equal the
// one that accepted the appends.
func FuzzStateMachines(f *testing.F) {
	f.Add([]byte{1, 1, 1, 2, 1, 1, 3, 1, 1})
	// Prepared, rolled back, prepared again.
	f.Add([]byte{4, 1, 1, 7, 0, 1, 9, 0, 1, 4, 2, 1, 7, 0, 1})
	// A whole transaction in one append, a refused one.
	f.Add([]byte{4, 1, 2, 0x85, 2, 2, 0x88, 0, 2, 3, 5, 0, 6, 1, 3, 8, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 3*4096 {
			return
		}
		v := newValidator()
		full, mem := newLoader(), newLoader()
		for _, entries := range decodeOps(b) {
			if err := v.apply(entries, 1); err != nil {
				continue
			}
			for i := range entries {
				full.apply(&entries[i], 1)
				mem.apply(&entries[i], 1)
			}
			mem.compactDead()
		}
		memRes, memV, memUnf := mem.snapshot()
		res, v2, unfinished := full.finish()
		for _, r := range []struct {
			name string
			res  *LoadResult
			v    *validator
			unf  []uint64
		}{{"replay", res, v2, unfinished}, {"memory store", memRes, memV, memUnf}} {
			ids := map[uint64]bool{}
			for _, rec := range r.res.Records {
				if ids[rec.ID] {
					t.Fatalf("%s: record %d listed twice", r.name, rec.ID)
				}
				ids[rec.ID] = true
			}
			if !maps.Equal(ids, keysOf(v.live)) {
				t.Fatalf("%s: live %v, the validator has %v", r.name, slices.Sorted(maps.Keys(ids)), slices.Sorted(maps.Keys(keysOf(v.live))))
			}
			prep := map[uint64]bool{}
			for _, p := range r.res.Prepared {
				if prep[p.TxID] {
					t.Fatalf("%s: transaction %d prepared twice", r.name, p.TxID)
				}
				prep[p.TxID] = true
			}
			wantPrep, wantUnf := map[uint64]bool{}, []uint64{}
			for id, tx := range v.txs {
				if tx.prepared {
					wantPrep[id] = true
				} else {
					wantUnf = append(wantUnf, id)
				}
			}
			slices.Sort(wantUnf)
			if !maps.Equal(prep, wantPrep) || !slices.Equal(r.unf, wantUnf) {
				t.Fatalf("%s: prepared %v unfinished %v, the validator has %v and %v", r.name, prep, r.unf, wantPrep, wantUnf)
			}
			if r.res.MaxID != v.maxID {
				t.Fatalf("%s: MaxID %d, the validator has %d", r.name, r.res.MaxID, v.maxID)
			}
			// The validator a load rebuilds continues like the original.
			if !maps.Equal(keysOf(r.v.live), keysOf(v.live)) || len(r.v.txs) != len(v.txs) || r.v.maxID != v.maxID {
				t.Fatalf("%s: rebuilt validator differs", r.name)
			}
			// Live bytes (adds and updates) per segment agree too.
			if got, want := r.v.pins.liveBytes(0, 2), v.pins.liveBytes(0, 2); got != want {
				t.Fatalf("%s: rebuilt validator counts %d live bytes, the original %d", r.name, got, want)
			}
			for id, tx := range v.txs {
				tx2 := r.v.txs[id]
				if tx2 == nil || tx2.prepared != tx.prepared || len(tx2.ops) != len(tx.ops) {
					t.Fatalf("%s: rebuilt transaction %d differs: %+v, want %+v", r.name, id, tx2, tx)
				}
			}
		}
	})
}

func keysOf(m idMap) map[uint64]bool {
	out := make(map[uint64]bool, m.len())
	m.each(func(k uint64, _ *recLoc) { out[k] = true })
	return out
}
