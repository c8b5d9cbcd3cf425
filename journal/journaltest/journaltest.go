package journaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// Open is the factory a conformance run uses. It must:
//
//   - with reopen false, return a new journal on a new, empty store (a fresh
//     temporary directory, fresh tables): nothing from an earlier call may
//     be visible;
//   - with reopen true, return a new journal instance on the same store as
//     the previous call made in the same test (t). The suite has closed the
//     previous instance before it reopens;
//   - return the journal not yet loaded: the suite calls Load itself;
//   - register any cleanup of the store with t.Cleanup. The suite closes
//     every journal it opens (Close may then be called twice by a cleanup:
//     implementations must tolerate that).
//
// Open must fail the test (t.Fatal) rather than return nil.
type Open func(t *testing.T, reopen bool) journal.Journal

// Timeout bounds every wait of the suite for a callback.
var Timeout = 30 * time.Second

// Run runs every conformance test as a subtest of t.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"EmptyLoad", testEmptyLoad},
		{"AppendBeforeLoad", testAppendBeforeLoad},
		{"AddUpdateDelete", testAddUpdateDelete},
		{"DataRoundTrip", testDataRoundTrip},
		{"Errors", testErrors},
		{"MultiEntryAtomic", testMultiEntryAtomic},
		{"TxCommit", testTxCommit},
		{"TxRollback", testTxRollback},
		{"TxErrors", testTxErrors},
		{"PreparedSurvivesReopen", testPreparedSurvivesReopen},
		{"PrepareAgainAfterEnd", testPrepareAgainAfterEnd},
		{"UnfinishedRolledBack", testUnfinishedRolledBack},
		{"CallbackOrder", testCallbackOrder},
		{"ConcurrentAppenders", testConcurrentAppenders},
		{"NoSync", testNoSync},
		{"EmptyAppend", testEmptyAppend},
		{"Close", testClose},
		{"MaxID", testMaxID},
		{"ManyReopens", testManyReopens},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// load opens and loads a journal and closes it at cleanup.
func load(t *testing.T, open Open, reopen bool) (journal.Journal, *journal.LoadResult) {
	t.Helper()
	j := open(t, reopen)
	if j == nil {
		t.Fatal("journaltest: open returned nil")
	}
	t.Cleanup(func() { _ = j.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	res, err := j.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if res == nil {
		t.Fatal("Load returned a nil result and no error")
	}
	return j, res
}

// reload closes j and opens and loads the same store again.
func reload(t *testing.T, open Open, j journal.Journal) (journal.Journal, *journal.LoadResult) {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return load(t, open, true)
}

func mustSync(t *testing.T, j journal.Journal, entries ...journal.Entry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := journal.AppendSync(ctx, j, entries...); err != nil {
		t.Fatalf("append %v: %v", kinds(entries), err)
	}
}

// mustRefuse checks that Append returns an error matching want and never
// calls done.
func mustRefuse(t *testing.T, j journal.Journal, want error, entries ...journal.Entry) {
	t.Helper()
	var called atomic.Bool
	err := j.Append(entries, true, func(error) { called.Store(true) })
	if !errors.Is(err, want) {
		t.Fatalf("append %v: got error %v, want %v", kinds(entries), err, want)
	}
	// A barrier: once a later append completes, an erroneous done would
	// have run too (callbacks run in order).
	mustSync(t, j)
	if called.Load() {
		t.Fatalf("append %v returned %v but also called done", kinds(entries), err)
	}
}

func kinds(entries []journal.Entry) string {
	var b bytes.Buffer
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s(id=%d,tx=%d)", e.Kind, e.ID, e.TxID)
	}
	return "[" + b.String() + "]"
}

func add(id uint64, typ uint8, data string) journal.Entry {
	return journal.Entry{Kind: journal.KindAdd, ID: id, Type: typ, Data: []byte(data)}
}

func upd(id uint64, typ uint8, data string) journal.Entry {
	return journal.Entry{Kind: journal.KindUpdate, ID: id, Type: typ, Data: []byte(data)}
}

func del(id uint64) journal.Entry { return journal.Entry{Kind: journal.KindDelete, ID: id} }

func txe(k journal.Kind, tx, id uint64, typ uint8, data string) journal.Entry {
	e := journal.Entry{Kind: k, TxID: tx, ID: id, Type: typ}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

func ctl(k journal.Kind, tx uint64, data string) journal.Entry {
	e := journal.Entry{Kind: k, TxID: tx}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

// rec is the expected form of a live record.
type rec struct {
	id      uint64
	typ     uint8
	data    string
	updates []string // "type:data"
}

func checkRecords(t *testing.T, res *journal.LoadResult, want []rec) {
	t.Helper()
	got := make([]rec, len(res.Records))
	for i, r := range res.Records {
		got[i] = rec{id: r.ID, typ: r.Type, data: string(r.Data)}
		for _, u := range r.Updates {
			got[i].updates = append(got[i].updates, fmt.Sprintf("%d:%s", u.Type, u.Data))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("live records: got %d %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.id != w.id || g.typ != w.typ || g.data != w.data || !slices.Equal(g.updates, w.updates) {
			t.Fatalf("live record %d: got %+v, want %+v (records are in the order of their adds)", i, g, w)
		}
	}
}

func testEmptyLoad(t *testing.T, open Open) {
	j, res := load(t, open, false)
	if len(res.Records) != 0 || len(res.Prepared) != 0 || res.RolledBack != 0 || res.MaxID != 0 {
		t.Fatalf("empty store loaded %+v", res)
	}
	select {
	case <-j.Failed():
		t.Fatal("Failed is closed on a healthy journal")
	default:
	}
	if err := j.Err(); err != nil {
		t.Fatalf("Err on a healthy journal: %v", err)
	}
	_, res = reload(t, open, j)
	if len(res.Records) != 0 {
		t.Fatalf("reopened empty store has %d records", len(res.Records))
	}
}

func testAppendBeforeLoad(t *testing.T, open Open) {
	j := open(t, false)
	t.Cleanup(func() { _ = j.Close() })
	err := j.Append([]journal.Entry{add(1, 1, "x")}, true, func(error) {
		t.Error("done called for an append before Load")
	})
	if !errors.Is(err, journal.ErrNotLoaded) {
		t.Fatalf("append before Load: got %v, want ErrNotLoaded", err)
	}
}

func testAddUpdateDelete(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(10, 1, "ten"))
	mustSync(t, j, add(5, 2, "five"))
	mustSync(t, j, add(7, 3, "seven"))
	mustSync(t, j, upd(10, 4, "a"))
	mustSync(t, j, upd(10, 5, "b"))
	mustSync(t, j, del(5))
	mustSync(t, j, upd(7, 6, ""))
	want := []rec{
		{id: 10, typ: 1, data: "ten", updates: []string{"4:a", "5:b"}},
		{id: 7, typ: 3, data: "seven", updates: []string{"6:"}},
	}
	j, res := reload(t, open, j)
	checkRecords(t, res, want)
	// A deleted ID may be added again, and goes to the end of the order.
	mustSync(t, j, add(5, 9, "again"))
	_, res = reload(t, open, j)
	checkRecords(t, res, append(want, rec{id: 5, typ: 9, data: "again"}))
}

func testDataRoundTrip(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	bin := []byte{0, 1, 0xff, 0, '\n', 0}
	caller := []byte("reused-by-caller")
	mustSync(t, j,
		journal.Entry{Kind: journal.KindAdd, ID: 1, Type: 255, Data: big},
		journal.Entry{Kind: journal.KindAdd, ID: 2, Type: 0, Data: nil},
		journal.Entry{Kind: journal.KindAdd, ID: 3, Type: 1, Data: bin},
		journal.Entry{Kind: journal.KindAdd, ID: 1<<64 - 1, Type: 2, Data: caller},
	)
	copy(caller, "XXXXXXXXXXXXXXXX") // Append copied the data
	_, res := reload(t, open, j)
	if len(res.Records) != 4 {
		t.Fatalf("got %d records, want 4", len(res.Records))
	}
	if r := res.Records[0]; r.ID != 1 || r.Type != 255 || !bytes.Equal(r.Data, big) {
		t.Fatalf("200 KiB record did not round-trip (id %d type %d len %d)", r.ID, r.Type, len(r.Data))
	}
	if r := res.Records[1]; r.ID != 2 || len(r.Data) != 0 {
		t.Fatalf("empty record: got id %d len %d", r.ID, len(r.Data))
	}
	if r := res.Records[2]; !bytes.Equal(r.Data, bin) {
		t.Fatalf("binary record: got %x, want %x", r.Data, bin)
	}
	if r := res.Records[3]; r.ID != 1<<64-1 || string(r.Data) != "reused-by-caller" {
		t.Fatalf("record with max ID: got id %d data %q (Append must copy entry data)", r.ID, r.Data)
	}
}

func testErrors(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(1, 1, "one"))
	mustRefuse(t, j, journal.ErrDuplicateRecord, add(1, 1, "again"))
	mustRefuse(t, j, journal.ErrUnknownRecord, upd(2, 1, "x"))
	mustRefuse(t, j, journal.ErrUnknownRecord, del(2))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindCommit, 99, ""))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindRollback, 99, ""))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindPrepare, 99, "xid"))
	mustRefuse(t, j, journal.ErrInvalidEntry, journal.Entry{Kind: 0, ID: 3})
	mustRefuse(t, j, journal.ErrInvalidEntry, journal.Entry{Kind: 200, ID: 3})
	mustSync(t, j, del(1))
	mustRefuse(t, j, journal.ErrUnknownRecord, del(1))
	mustRefuse(t, j, journal.ErrUnknownRecord, upd(1, 1, "x"))
	// Refused appends leave no trace.
	j, res := reload(t, open, j)
	checkRecords(t, res, nil)
	mustRefuse(t, j, journal.ErrUnknownRecord, del(1))
}

func testMultiEntryAtomic(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	// Entries of one append see each other.
	mustSync(t, j, add(1, 1, "a"), upd(1, 2, "u"), add(2, 1, "b"), del(2))
	// One bad entry refuses the whole append.
	mustRefuse(t, j, journal.ErrUnknownRecord, add(3, 1, "c"), del(1), upd(4, 1, "x"))
	mustRefuse(t, j, journal.ErrDuplicateRecord, del(1), add(5, 1, "e"), add(5, 1, "e"))
	mustRefuse(t, j, journal.ErrUnknownTx,
		txe(journal.KindAddTx, 7, 6, 1, "t"), ctl(journal.KindCommit, 7, ""), ctl(journal.KindCommit, 7, ""))
	// None of them happened: 1 is live, 3, 5 and 6 are not, tx 7 is unknown.
	mustSync(t, j, add(3, 1, "c"), add(5, 1, "e"), add(6, 1, "f"))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindRollback, 7, ""))
	// A whole transaction in one append.
	mustSync(t, j, txe(journal.KindAddTx, 8, 9, 1, "nine"), txe(journal.KindDeleteTx, 8, 3, 0, ""), ctl(journal.KindCommit, 8, ""))
	_, res := reload(t, open, j)
	checkRecords(t, res, []rec{
		{id: 1, typ: 1, data: "a", updates: []string{"2:u"}},
		{id: 5, typ: 1, data: "e"},
		{id: 6, typ: 1, data: "f"},
		{id: 9, typ: 1, data: "nine"},
	})
}

func testTxCommit(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(1, 1, "one"), add(2, 1, "two"))
	mustSync(t, j, txe(journal.KindAddTx, 100, 3, 2, "three"))
	mustSync(t, j, txe(journal.KindUpdateTx, 100, 1, 3, "u1"))
	mustSync(t, j, txe(journal.KindDeleteTx, 100, 2, 0, ""))
	mustSync(t, j, txe(journal.KindUpdateTx, 100, 3, 4, "u3")) // update of a record added in the same tx
	// Not applied before the commit: 2 is still live, 3 is not.
	mustSync(t, j, upd(2, 5, "still-live"))
	mustRefuse(t, j, journal.ErrUnknownRecord, upd(3, 1, "x"))
	mustSync(t, j, ctl(journal.KindCommit, 100, ""))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindCommit, 100, ""))
	mustRefuse(t, j, journal.ErrUnknownRecord, del(2))
	mustSync(t, j, upd(3, 6, "after"))
	_, res := reload(t, open, j)
	checkRecords(t, res, []rec{
		{id: 1, typ: 1, data: "one", updates: []string{"3:u1"}},
		{id: 3, typ: 2, data: "three", updates: []string{"4:u3", "6:after"}},
	})
	if len(res.Prepared) != 0 || res.RolledBack != 0 {
		t.Fatalf("prepared %d rolled back %d, want 0 0", len(res.Prepared), res.RolledBack)
	}
}

func testTxRollback(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(1, 1, "one"))
	mustSync(t, j, txe(journal.KindAddTx, 5, 2, 1, "two"), txe(journal.KindDeleteTx, 5, 1, 0, ""), txe(journal.KindUpdateTx, 5, 1, 1, "u"))
	mustSync(t, j, ctl(journal.KindRollback, 5, ""))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindCommit, 5, ""))
	// Rolled back after prepare too.
	mustSync(t, j, txe(journal.KindAddTx, 6, 3, 1, "three"), ctl(journal.KindPrepare, 6, "xid-6"))
	mustSync(t, j, ctl(journal.KindRollback, 6, ""))
	_, res := reload(t, open, j)
	checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one"}})
	if len(res.Prepared) != 0 || res.RolledBack != 0 {
		t.Fatalf("prepared %d rolled back %d, want 0 0", len(res.Prepared), res.RolledBack)
	}
}

func testTxErrors(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(1, 1, "one"))
	mustRefuse(t, j, journal.ErrDuplicateRecord, txe(journal.KindAddTx, 10, 1, 1, "dup"))
	mustRefuse(t, j, journal.ErrUnknownRecord, txe(journal.KindUpdateTx, 10, 2, 1, "x"))
	mustRefuse(t, j, journal.ErrUnknownRecord, txe(journal.KindDeleteTx, 10, 2, 0, ""))
	// The refused entries did not open transaction 10.
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindPrepare, 10, "xid"))
	mustSync(t, j, txe(journal.KindAddTx, 10, 2, 1, "two"))
	mustRefuse(t, j, journal.ErrDuplicateRecord, txe(journal.KindAddTx, 10, 2, 1, "two again"))
	mustSync(t, j, ctl(journal.KindPrepare, 10, "xid"))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindPrepare, 10, "xid"))
	mustRefuse(t, j, journal.ErrUnknownTx, txe(journal.KindAddTx, 10, 3, 1, "after prepare"))
	// A non-transactional add of an ID the transaction adds makes its commit conflict.
	mustSync(t, j, add(2, 1, "raced"))
	mustRefuse(t, j, journal.ErrDuplicateRecord, ctl(journal.KindCommit, 10, ""))
	mustSync(t, j, ctl(journal.KindRollback, 10, ""))
	_, res := reload(t, open, j)
	checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one"}, {id: 2, typ: 1, data: "raced"}})
}

func testPreparedSurvivesReopen(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(1, 1, "one"))
	mustSync(t, j, txe(journal.KindAddTx, 20, 2, 7, "two"), txe(journal.KindUpdateTx, 20, 1, 8, "u"))
	mustSync(t, j, txe(journal.KindDeleteTx, 21, 1, 0, ""))
	mustSync(t, j, ctl(journal.KindPrepare, 21, "xid-21"))
	mustSync(t, j, ctl(journal.KindPrepare, 20, "xid-20"))
	j, res := reload(t, open, j)
	checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one"}})
	if len(res.Prepared) != 2 {
		t.Fatalf("got %d prepared transactions, want 2", len(res.Prepared))
	}
	p0, p1 := res.Prepared[0], res.Prepared[1]
	if p0.TxID != 21 || string(p0.Data) != "xid-21" || p1.TxID != 20 || string(p1.Data) != "xid-20" {
		t.Fatalf("prepared: got tx %d %q, tx %d %q; want 21 xid-21, 20 xid-20 (order of prepares)", p0.TxID, p0.Data, p1.TxID, p1.Data)
	}
	if len(p1.Entries) != 2 || p1.Entries[0].Kind != journal.KindAddTx || p1.Entries[0].ID != 2 ||
		string(p1.Entries[0].Data) != "two" || p1.Entries[0].Type != 7 || p1.Entries[1].Kind != journal.KindUpdateTx {
		t.Fatalf("prepared tx 20 entries: %+v", p1.Entries)
	}
	if res.RolledBack != 0 {
		t.Fatalf("rolled back %d, want 0", res.RolledBack)
	}
	// Still prepared after a second reopen without activity.
	j, res = reload(t, open, j)
	if len(res.Prepared) != 2 {
		t.Fatalf("second reopen: %d prepared, want 2", len(res.Prepared))
	}
	mustRefuse(t, j, journal.ErrUnknownTx, txe(journal.KindAddTx, 20, 3, 1, "x"))
	mustSync(t, j, ctl(journal.KindCommit, 20, ""))
	mustSync(t, j, ctl(journal.KindRollback, 21, ""))
	_, res = reload(t, open, j)
	checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one", updates: []string{"8:u"}}, {id: 2, typ: 7, data: "two"}})
	if len(res.Prepared) != 0 {
		t.Fatalf("%d prepared after commit and rollback", len(res.Prepared))
	}
}

// testPrepareAgainAfterEnd: a transaction ID that is prepared, rolled back
// (or committed) and then used and prepared again is one prepared
// transaction, listed once, in the order of its last prepare.
func testPrepareAgainAfterEnd(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(1, 1, "one"))
	// Tx 40: prepared, rolled back, prepared again with other entries.
	mustSync(t, j, txe(journal.KindAddTx, 40, 2, 1, "first try"), ctl(journal.KindPrepare, 40, "xid-40a"))
	mustSync(t, j, ctl(journal.KindRollback, 40, ""))
	// Tx 41 is prepared in between: it comes before 40's second prepare.
	mustSync(t, j, txe(journal.KindAddTx, 41, 3, 1, "three"), ctl(journal.KindPrepare, 41, "xid-41"))
	mustSync(t, j, txe(journal.KindAddTx, 40, 4, 1, "second try"), ctl(journal.KindPrepare, 40, "xid-40b"))
	// Tx 42: prepared, committed, then reused and prepared again.
	mustSync(t, j, txe(journal.KindUpdateTx, 42, 1, 2, "u"), ctl(journal.KindPrepare, 42, "xid-42a"))
	mustSync(t, j, ctl(journal.KindCommit, 42, ""))
	mustSync(t, j, txe(journal.KindDeleteTx, 42, 1, 0, ""), ctl(journal.KindPrepare, 42, "xid-42b"))
	check := func(what string, res *journal.LoadResult) {
		t.Helper()
		checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one", updates: []string{"2:u"}}})
		var got []string
		for _, p := range res.Prepared {
			got = append(got, fmt.Sprintf("%d:%s:%d", p.TxID, p.Data, len(p.Entries)))
		}
		want := []string{"41:xid-41:1", "40:xid-40b:1", "42:xid-42b:1"}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: prepared (tx:xid:entries) %q, want %q: each transaction once, in the order of its last prepare", what, got, want)
		}
		for _, p := range res.Prepared {
			if p.TxID == 40 && (p.Entries[0].ID != 4 || string(p.Entries[0].Data) != "second try") {
				t.Fatalf("%s: tx 40 entries %+v, want only the add of 4 made after the rollback", what, p.Entries)
			}
		}
		if res.RolledBack != 0 {
			t.Fatalf("%s: rolled back %d, want 0", what, res.RolledBack)
		}
	}
	j, res := reload(t, open, j)
	check("reopen", res)
	j, res = reload(t, open, j)
	check("second reopen", res)
	mustSync(t, j, ctl(journal.KindCommit, 40, ""), ctl(journal.KindRollback, 41, ""), ctl(journal.KindRollback, 42, ""))
	_, res = reload(t, open, j)
	if len(res.Prepared) != 0 {
		t.Fatalf("%d prepared after every transaction ended", len(res.Prepared))
	}
	checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one", updates: []string{"2:u"}}, {id: 4, typ: 1, data: "second try"}})
}

func testUnfinishedRolledBack(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(1, 1, "one"))
	mustSync(t, j, txe(journal.KindAddTx, 30, 2, 1, "two"), txe(journal.KindDeleteTx, 30, 1, 0, ""))
	mustSync(t, j, txe(journal.KindAddTx, 31, 3, 1, "three"))
	j, res := reload(t, open, j)
	checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one"}})
	if res.RolledBack != 2 || len(res.Prepared) != 0 {
		t.Fatalf("rolled back %d prepared %d, want 2 0", res.RolledBack, len(res.Prepared))
	}
	if res.MaxID < 31 {
		t.Fatalf("MaxID %d, want >= 31 (transaction IDs count)", res.MaxID)
	}
	// Rolled back means gone: the transactions are unknown now, and a later
	// load does not find them again.
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindCommit, 30, ""))
	mustRefuse(t, j, journal.ErrUnknownTx, ctl(journal.KindPrepare, 31, ""))
	_, res = reload(t, open, j)
	checkRecords(t, res, []rec{{id: 1, typ: 1, data: "one"}})
	if res.RolledBack != 0 {
		t.Fatalf("second load rolled back %d again, want 0 (Load must end them durably)", res.RolledBack)
	}
}

func testCallbackOrder(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	const n = 2000
	var (
		mu      sync.Mutex
		order   []int
		inside  atomic.Int32
		overlap atomic.Bool
		wg      sync.WaitGroup
	)
	wg.Add(n)
	for i := range n {
		e := add(uint64(i+1), 1, "r")
		err := j.Append([]journal.Entry{e}, i%3 != 0, func(err error) {
			if inside.Add(1) != 1 {
				overlap.Store(true)
			}
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			inside.Add(-1)
			wg.Done()
		})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	waitGroup(t, &wg)
	if overlap.Load() {
		t.Fatal("done callbacks ran concurrently")
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("callback %d was for append %d: callbacks must run in append order", i, v)
		}
	}
	_, res := reload(t, open, j)
	if len(res.Records) != n {
		t.Fatalf("got %d records, want %d", len(res.Records), n)
	}
	for i, r := range res.Records {
		if r.ID != uint64(i+1) {
			t.Fatalf("record %d has ID %d, want %d", i, r.ID, i+1)
		}
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(Timeout):
		t.Fatal("callbacks did not all run")
	}
}

func testConcurrentAppenders(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	const writers, per = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				id := uint64(w*per + i + 1)
				data := bytes.Repeat([]byte{byte(w)}, 100+i)
				ctx, cancel := context.WithTimeout(context.Background(), Timeout)
				err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: id, Type: uint8(w), Data: data})
				if err == nil && i%2 == 0 {
					err = journal.AppendSync(ctx, j, upd(id, 1, "u"))
				}
				cancel()
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, res := reload(t, open, j)
	if len(res.Records) != writers*per {
		t.Fatalf("got %d records, want %d", len(res.Records), writers*per)
	}
	seen := make(map[uint64]bool)
	for _, r := range res.Records {
		w, i := int(r.ID-1)/per, int(r.ID-1)%per
		if seen[r.ID] || r.Type != uint8(w) || len(r.Data) != 100+i || (i%2 == 0) != (len(r.Updates) == 1) {
			t.Fatalf("record %d: type %d len %d updates %d (dup %v)", r.ID, r.Type, len(r.Data), len(r.Updates), seen[r.ID])
		}
		seen[r.ID] = true
	}
}

func testNoSync(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	const n = 500
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		if err := j.Append([]journal.Entry{add(uint64(i+1), 1, "nosync")}, false, func(err error) {
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitGroup(t, &wg) // sync=false appends complete without a synced one after them
	_, res := reload(t, open, j)
	if len(res.Records) != n {
		t.Fatalf("got %d records after a clean close, want %d", len(res.Records), n)
	}
}

func testEmptyAppend(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j) // an empty append is a barrier
	var wg sync.WaitGroup
	wg.Add(1)
	if err := j.Append(nil, false, func(err error) {
		if err != nil {
			t.Errorf("empty append: %v", err)
		}
		wg.Done()
	}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, &wg)
}

func testClose(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	const n = 300
	var completed atomic.Int32
	for i := range n {
		if err := j.Append([]journal.Entry{add(uint64(i+1), 1, "c")}, i%2 == 0, func(err error) {
			if err != nil {
				t.Errorf("append %d completed with %v", i, err)
			}
			completed.Add(1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c := completed.Load(); c != n {
		t.Fatalf("Close returned with %d of %d callbacks run", c, n)
	}
	err := j.Append([]journal.Entry{add(n+1, 1, "late")}, true, func(error) { t.Error("done called after Close") })
	if !errors.Is(err, journal.ErrClosed) {
		t.Fatalf("append after Close: got %v, want ErrClosed", err)
	}
	_ = j.Close() // a second Close must not panic or hang
	_, res := load(t, open, true)
	if len(res.Records) != n {
		t.Fatalf("got %d records after Close, want %d", len(res.Records), n)
	}
}

func testMaxID(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	mustSync(t, j, add(40, 1, "a"))
	mustSync(t, j, add(1000, 1, "b"))
	mustSync(t, j, del(1000))
	mustSync(t, j, txe(journal.KindAddTx, 1500, 41, 1, "t"))
	mustSync(t, j, ctl(journal.KindRollback, 1500, ""))
	j, res := reload(t, open, j)
	if res.MaxID != 1500 {
		t.Fatalf("MaxID %d, want 1500 (deleted records and ended transactions count)", res.MaxID)
	}
	mustSync(t, j, txe(journal.KindAddTx, 1600, 2000, 1, "t"), ctl(journal.KindCommit, 1600, ""))
	_, res = reload(t, open, j)
	if res.MaxID != 2000 {
		t.Fatalf("MaxID %d, want 2000", res.MaxID)
	}
}

func testManyReopens(t *testing.T, open Open) {
	j, _ := load(t, open, false)
	var want []rec
	for round := range 5 {
		base := uint64(round * 10)
		mustSync(t, j, add(base+1, 1, "x"), add(base+2, 1, "y"))
		mustSync(t, j, del(base+2))
		want = append(want, rec{id: base + 1, typ: 1, data: "x"})
		var res *journal.LoadResult
		j, res = reload(t, open, j)
		checkRecords(t, res, want)
	}
}
