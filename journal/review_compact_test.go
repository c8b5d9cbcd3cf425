package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
	"github.com/tandemmq/tandem/journal"
)

// reviewModel is the expected live state: records in the order of their
// adds, each with its updates.
type reviewModel struct {
	order []uint64
	recs  map[uint64]*journal.Record
}

func (m *reviewModel) add(id uint64, data []byte) {
	m.order = append(m.order, id)
	m.recs[id] = &journal.Record{ID: id, Data: data}
}

func (m *reviewModel) update(id uint64, data []byte) {
	r := m.recs[id]
	r.Updates = append(r.Updates, journal.Update{Data: data})
}

func (m *reviewModel) del(id uint64) {
	delete(m.recs, id)
	m.order = slices.DeleteFunc(m.order, func(x uint64) bool { return x == id })
}

func (m *reviewModel) check(t *testing.T, what string, res *journal.LoadResult) {
	t.Helper()
	if len(res.Records) != len(m.order) {
		t.Fatalf("%s: %d records loaded, want %d", what, len(res.Records), len(m.order))
	}
	for i, id := range m.order {
		got, want := res.Records[i], m.recs[id]
		if got.ID != id || !bytes.Equal(got.Data, want.Data) || len(got.Updates) != len(want.Updates) {
			t.Fatalf("%s: record %d is %d (%q, %d updates), want %d (%q, %d updates)", what, i,
				got.ID, got.Data, len(got.Updates), id, want.Data, len(want.Updates))
		}
		for k := range want.Updates {
			if !bytes.Equal(got.Updates[k].Data, want.Updates[k].Data) {
				t.Fatalf("%s: record %d update %d is %q, want %q", what, id, k, got.Updates[k].Data, want.Updates[k].Data)
			}
		}
	}
}

// TestReviewCompactRandomConcurrent: a random workload of adds, updates,
// deletes and re-adds of deleted IDs (no transactions, so compaction reads
// only the live records' segments whenever nothing it moves was updated),
// with explicit compactions running while the workload goes on. After
// each round the durable state (a crash snapshot) loads exactly as the
// model says, with the subscriber-free prefix compacted again and again.
func TestReviewCompactRandomConcurrent(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		updates := seed%2 == 0
		t.Run(fmt.Sprintf("seed%d-updates=%v", seed, updates), func(t *testing.T) { reviewCompactRandom(t, seed, updates) })
	}
}

func reviewCompactRandom(t *testing.T, seed uint64, updates bool) {
	rng := rand.New(rand.NewPCG(seed, 99))
	fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1, SectorSize: 512})
	open := func(fs aio.FS) *journal.FileJournal {
		j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1, PoolFiles: 2})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open(fs)
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	m := &reviewModel{recs: map[uint64]*journal.Record{}}
	var dead []uint64 // deleted IDs, for re-adds
	nextID := uint64(1)
	data := func(id uint64, tag string) []byte {
		return append(fmt.Appendf(nil, "%s-%d-", tag, id), bytes.Repeat([]byte{byte(id)}, 200+rng.IntN(700))...)
	}
	step := func() {
		var entries []journal.Entry
		apply := []func(){}
		p := rng.IntN(100)
		if len(m.order) > 60 {
			p = 99 // keep the live set small: a queue
		}
		switch {
		case p < 45 || len(m.order) < 30:
			id := nextID
			nextID++
			d := data(id, "add")
			entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: id, Data: d})
			apply = append(apply, func() { m.add(id, d) })
		case p < 55 && len(dead) > 0:
			k := rng.IntN(len(dead))
			id := dead[k]
			dead = slices.Delete(dead, k, k+1)
			d := data(id, "readd")
			entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: id, Data: d})
			apply = append(apply, func() { m.add(id, d) })
		case p < 62 && updates:
			id := m.order[rng.IntN(len(m.order))]
			d := fmt.Appendf(nil, "upd-%d-%d", id, rng.Uint32())
			entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: id, Data: d})
			apply = append(apply, func() { m.update(id, d) })
		default:
			// Mostly delete the oldest records (a queue; the first few
			// stay, long-lived), sometimes any.
			var id uint64
			if rng.IntN(10) == 0 {
				id = m.order[rng.IntN(len(m.order))]
			} else {
				id = m.order[min(len(m.order)-1, 3+rng.IntN(5))]
			}
			entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: id})
			apply = append(apply, func() { m.del(id); dead = append(dead, id) })
			// A delete and an add of the same ID in one append, now and then.
			if rng.IntN(8) == 0 {
				d := data(id, "same-append")
				entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: id, Data: d})
				apply = append(apply, func() {
					m.add(id, d)
					dead = dead[:len(dead)-1]
				})
			}
		}
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatalf("append %+v: %v", entries, err)
		}
		for _, f := range apply {
			f()
		}
	}
	compactions, readLive := 0, 0
	for round := range 12 {
		for range 150 + rng.IntN(300) {
			step()
		}
		// Compact while the workload goes on.
		var wg sync.WaitGroup
		var res journal.CompactResult
		var cerr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, cerr = j.Compact(ctx)
		}()
		for range 50 + rng.IntN(150) {
			step()
		}
		wg.Wait()
		if cerr != nil {
			t.Fatalf("round %d: compact: %v", round, cerr)
		}
		if res.NewSegs > 0 {
			compactions++
			if res.SegmentsRead < int(res.To-res.From) {
				readLive++
			}
		} else {
			t.Logf("round %d: %s", round, res.Skipped)
		}
		snap := fs.Crash(seed*100 + uint64(round))
		j2 := open(snap)
		res2, err := j2.Load(ctx)
		if err != nil {
			t.Fatalf("round %d: load: %v", round, err)
		}
		m.check(t, fmt.Sprintf("round %d (compaction %+v)", round, res), res2)
		j2.Close()
	}
	if compactions == 0 {
		t.Fatal("no compaction rewrote anything")
	}
	if readLive == 0 && !updates {
		t.Fatal("no compaction read only the live records' segments")
	}
	t.Logf("%d compactions (%d from the live segments only), %d live records", compactions, readLive, len(m.order))
}
