package journal

import "testing"

// TestValidatorLiveBytes: the live bytes compaction estimates from count
// the updates of live records (in the add's segment), a transaction's
// updates from its commit on, and nothing of a deleted record or of a
// refused append.
func TestValidatorLiveBytes(t *testing.T) {
	v := newValidator()
	data := make([]byte, 100)
	add := Entry{Kind: KindAdd, ID: 1, Data: data}
	upd := Entry{Kind: KindUpdate, ID: 1, Data: data[:10]}
	steps := []struct {
		name    string
		entries []Entry
		seg     uint64
		fails   bool
		want    int
	}{
		{"add", []Entry{add}, 1, false, entrySize(&add)},
		{"updates in later segments", []Entry{upd, upd, upd}, 3, false, entrySize(&add) + 3*entrySize(&upd)},
		{"refused append undoes its update", []Entry{upd, {Kind: KindUpdate, ID: 9}}, 3, true, entrySize(&add) + 3*entrySize(&upd)},
		{"uncommitted update-tx", []Entry{{Kind: KindUpdateTx, ID: 1, TxID: 5, Data: data[:10]}}, 3, false, entrySize(&add) + 3*entrySize(&upd)},
		{"commit", []Entry{{Kind: KindCommit, TxID: 5}}, 4, false, entrySize(&add) + 3*entrySize(&upd) + entrySize(&Entry{Kind: KindUpdateTx, ID: 1, TxID: 5, Data: data[:10]})},
		{"delete", []Entry{{Kind: KindDelete, ID: 1}}, 4, false, 0},
	}
	for _, s := range steps {
		err := v.apply(s.entries, s.seg)
		if (err != nil) != s.fails {
			t.Fatalf("%s: apply: %v", s.name, err)
		}
		if got := v.pins.liveBytes(0, 10); got != int64(s.want) {
			t.Fatalf("%s: live bytes %d, want %d", s.name, got, s.want)
		}
		if got := v.pins.liveBytes(1, 2); got != int64(s.want) {
			t.Fatalf("%s: live bytes of the add's segment %d, want %d", s.name, got, s.want)
		}
	}
}
