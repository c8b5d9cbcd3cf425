package jdbcstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tandemmq/tandem/journal"
)

// simTable stands in for the database table: rows by seq, and the meta
// row's ID high-water mark. It applies what the writer would commit.
type simTable struct {
	rows    map[int64]row
	hw      uint64
	st      *state
	nextSeq int64
}

func (s *simTable) commit(p *pending) {
	for _, r := range p.rows {
		s.rows[r.seq] = r
	}
	for _, d := range p.dels {
		delete(s.rows, d)
	}
	if len(p.dels) > 0 {
		s.hw = max(s.hw, p.maxID)
	}
}

func (s *simTable) load() (*journal.LoadResult, error) {
	seqs := make([]int64, 0, len(s.rows))
	for q := range s.rows {
		seqs = append(seqs, q)
	}
	slices.Sort(seqs)
	p := newReplayer("sim")
	for _, q := range seqs {
		r := s.rows[q]
		if err := p.add(r, int64(r.sum())); err != nil {
			return nil, err
		}
	}
	st, res, last, garbage := p.finish()
	res.MaxID = max(res.MaxID, s.hw)
	if len(garbage) > 0 {
		s.commit(&pending{dels: garbage, maxID: st.maxID})
	}
	s.st, s.nextSeq = st, last+1
	return res, nil
}

// errClass maps an Append error to the journal error it wraps.
func errClass(err error) error {
	for _, c := range []error{journal.ErrDuplicateRecord, journal.ErrUnknownRecord, journal.ErrUnknownTx, journal.ErrInvalidEntry} {
		if errors.Is(err, c) {
			return c
		}
	}
	return err
}

// dedupePrepared works around the memory journal's loader, which lists a
// transaction ID twice in Prepared when the ID was prepared, rolled back
// and prepared again (it keeps one entry per prepare record, both showing
// the last transaction). The last occurrence is the right one.
func dedupePrepared(ps []journal.PendingTx) []journal.PendingTx {
	last := map[uint64]int{}
	for i, p := range ps {
		last[p.TxID] = i
	}
	var out []journal.PendingTx
	for i, p := range ps {
		if last[p.TxID] == i {
			out = append(out, p)
		}
	}
	return out
}

func sameResult(a, b *journal.LoadResult) error {
	a.Prepared = dedupePrepared(a.Prepared)
	if len(a.Records) != len(b.Records) {
		return fmt.Errorf("records: %d vs %d", len(a.Records), len(b.Records))
	}
	for i := range a.Records {
		x, y := a.Records[i], b.Records[i]
		if x.ID != y.ID || x.Type != y.Type || !bytes.Equal(x.Data, y.Data) || len(x.Updates) != len(y.Updates) {
			return fmt.Errorf("record %d: %+v vs %+v", i, x, y)
		}
		for k := range x.Updates {
			if x.Updates[k].Type != y.Updates[k].Type || !bytes.Equal(x.Updates[k].Data, y.Updates[k].Data) {
				return fmt.Errorf("record %d update %d differs", x.ID, k)
			}
		}
	}
	if len(a.Prepared) != len(b.Prepared) {
		return fmt.Errorf("prepared: %d vs %d", len(a.Prepared), len(b.Prepared))
	}
	for i := range a.Prepared {
		x, y := a.Prepared[i], b.Prepared[i]
		if x.TxID != y.TxID || !bytes.Equal(x.Data, y.Data) || len(x.Entries) != len(y.Entries) {
			return fmt.Errorf("prepared %d: tx %d (%d entries) vs tx %d (%d entries)", i, x.TxID, len(x.Entries), y.TxID, len(y.Entries))
		}
		for k := range x.Entries {
			p, q := x.Entries[k], y.Entries[k]
			if p.Kind != q.Kind || p.ID != q.ID || p.TxID != q.TxID || p.Type != q.Type || !bytes.Equal(p.Data, q.Data) {
				return fmt.Errorf("prepared tx %d entry %d: %+v vs %+v", x.TxID, k, p, q)
			}
		}
	}
	if a.RolledBack != b.RolledBack || a.MaxID != b.MaxID {
		return fmt.Errorf("rolled back %d vs %d, MaxID %d vs %d", a.RolledBack, b.RolledBack, a.MaxID, b.MaxID)
	}
	return nil
}

// FuzzStateMatchesMemory drives the table state machine (which rows to
// insert and delete) and the journal package's memory journal, the
// reference, with the same appends and restarts. Both must refuse the same
// appends, and loading the rows the table would hold must give the same
// result as the memory journal's load.
func FuzzStateMatchesMemory(f *testing.F) {
	f.Add([]byte{1, 1, 1, 0, 1, 2, 1, 0, 0, 16})
	f.Add([]byte{1, 4, 1, 1, 0, 1, 4, 2, 1, 0, 1, 7, 0, 1, 0, 16, 1, 8, 0, 1, 0, 16})
	f.Add([]byte{2, 4, 3, 2, 5, 1, 5, 3, 2, 1, 0, 16, 1, 3, 3, 0, 0, 16, 1, 9, 0, 2, 0, 16})
	f.Add([]byte{1, 1, 5, 0, 1, 1, 6, 5, 0, 0, 1, 8, 0, 0, 0, 16, 1, 3, 5, 0, 0, 16})
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx := context.Background()
		store := journal.NewMemoryStore()
		m := store.Open()
		if _, err := m.Load(ctx); err != nil {
			t.Fatal(err)
		}
		sim := &simTable{rows: map[int64]row{}}
		if _, err := sim.load(); err != nil {
			t.Fatal(err)
		}
		next := func() byte {
			if len(in) == 0 {
				return 0
			}
			b := in[0]
			in = in[1:]
			return b
		}
		// Transaction IDs are not reused once a transaction ended (as a
		// broker never does): slot s maps to ID 100+s+1000*generation.
		gen := map[uint64]uint64{}
		for len(in) > 0 {
			op := next()
			if op%16 == 0 {
				_ = m.Close()
				m = store.Open()
				want, err := m.Load(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got, err := sim.load()
				if err != nil {
					t.Fatalf("replay of the simulated table: %v", err)
				}
				if err := sameResult(want, got); err != nil {
					t.Fatalf("load differs from the memory journal: %v", err)
				}
				continue
			}
			n := int(op%3) + 1
			entries := make([]journal.Entry, n)
			for i := range entries {
				k, id, tx, dl := next(), next(), next(), next()
				slot := uint64(tx % 3)
				entries[i] = journal.Entry{Kind: journal.Kind(k%10 + 1 - k/250), ID: uint64(id%8) + 1, TxID: 100 + slot + 1000*gen[slot], Type: k, Data: bytes.Repeat([]byte{id}, int(dl%4))}
			}
			mErr := journal.AppendSync(ctx, m, entries...)
			p := &pending{}
			seq, sErr := sim.st.stage(entries, sim.nextSeq, 0, p)
			if (mErr == nil) != (sErr == nil) || (mErr != nil && errClass(mErr) != errClass(sErr)) {
				t.Fatalf("append %+v: memory journal says %v, table state says %v", entries, mErr, sErr)
			}
			if sErr == nil {
				sim.nextSeq = seq
				sim.commit(p)
				for _, e := range entries {
					if e.Kind == journal.KindCommit || e.Kind == journal.KindRollback {
						gen[(e.TxID-100)%1000]++
					}
				}
			}
		}
		_ = m.Close()
		m = store.Open()
		want, err := m.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sim.load()
		if err != nil {
			t.Fatal(err)
		}
		if err := sameResult(want, got); err != nil {
			t.Fatalf("final load differs from the memory journal: %v", err)
		}
	})
}
