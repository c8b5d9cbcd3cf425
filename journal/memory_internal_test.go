package journal

import (
	"context"
	"testing"
)

// TestMemoryStoreBounded: a memory journal under add/delete keeps what is
// live, not every record ever appended.
func TestMemoryStoreBounded(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	data := make([]byte, 100)
	for i := uint64(1); i <= 50000; i++ {
		entries := []Entry{{Kind: KindAdd, ID: i, Data: data}}
		if i > 10 {
			entries = append(entries, Entry{Kind: KindDelete, ID: i - 10})
		}
		if i%7 == 0 {
			entries = append(entries, Entry{Kind: KindAddTx, TxID: 1<<40 + i, ID: 1<<41 + i}, Entry{Kind: KindPrepare, TxID: 1<<40 + i})
			entries = append(entries, Entry{Kind: KindRollback, TxID: 1<<40 + i})
		}
		if err := m.Append(entries, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := m.Store()
	s.mu.Lock()
	n, prep := len(s.l.recs), len(s.l.prepSeq)
	s.mu.Unlock()
	if n > 3000 || prep > 200 {
		t.Fatalf("store holds %d records and %d prepares for 10 live records", n, prep)
	}
	m.Close()
	res, err := s.Open().Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 10 || res.Records[0].ID != 49991 || res.MaxID != 1<<41+49994 {
		t.Fatalf("reload: %d records, first %d, MaxID %d", len(res.Records), res.Records[0].ID, res.MaxID)
	}
}
