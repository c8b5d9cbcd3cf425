package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
	"github.com/tandemmq/tandem/journal"
)

// sameState compares two loads: live records (order, data, updates) and
// prepared transactions.
func sameState(t *testing.T, what string, a, b *journal.LoadResult) {
	t.Helper()
	if len(a.Records) != len(b.Records) || len(a.Prepared) != len(b.Prepared) {
		t.Fatalf("%s: %d records %d prepared, want %d and %d", what, len(b.Records), len(b.Prepared), len(a.Records), len(a.Prepared))
	}
	for i := range a.Records {
		ra, rb := a.Records[i], b.Records[i]
		if ra.ID != rb.ID || ra.Type != rb.Type || !bytes.Equal(ra.Data, rb.Data) || len(ra.Updates) != len(rb.Updates) {
			t.Fatalf("%s: record %d: %d/%d", what, i, rb.ID, ra.ID)
		}
		for k := range ra.Updates {
			if !bytes.Equal(ra.Updates[k].Data, rb.Updates[k].Data) {
				t.Fatalf("%s: record %d update %d differs", what, ra.ID, k)
			}
		}
	}
	for i := range a.Prepared {
		pa, pb := a.Prepared[i], b.Prepared[i]
		if pa.TxID != pb.TxID || !bytes.Equal(pa.Data, pb.Data) || len(pa.Entries) != len(pb.Entries) {
			t.Fatalf("%s: prepared %d: tx %d/%d", what, i, pb.TxID, pa.TxID)
		}
	}
	if b.MaxID < a.MaxID {
		t.Fatalf("%s: MaxID %d < %d", what, b.MaxID, a.MaxID)
	}
}

// churn writes a long-lived record, a prepared transaction and an open
// one early, then many records that are added, updated and deleted.
func churn(t *testing.T, j journal.Journal, n, keep int) {
	t.Helper()
	ctx := context.Background()
	must := func(entries ...journal.Entry) {
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	must(journal.Entry{Kind: journal.KindAdd, ID: 1, Type: 7, Data: []byte("long-lived")})
	must(journal.Entry{Kind: journal.KindUpdate, ID: 1, Type: 8, Data: []byte("first update")})
	must(journal.Entry{Kind: journal.KindAddTx, TxID: 2, ID: 3, Data: []byte("prepared add")})
	must(journal.Entry{Kind: journal.KindPrepare, TxID: 2, Data: []byte("xid")})
	must(journal.Entry{Kind: journal.KindAddTx, TxID: 4, ID: 5, Data: []byte("open tx add")})
	data := bytes.Repeat([]byte{9}, 900)
	for i := 100; i < 100+n; i++ {
		entries := []journal.Entry{{Kind: journal.KindAdd, ID: uint64(i), Data: data}}
		if i%50 == 0 {
			entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: 1, Data: fmt.Appendf(nil, "u%d", i)})
		}
		if i >= 100+keep {
			entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: uint64(i - keep)})
		}
		must(entries...)
	}
}

// TestCompactLongLived: a long-lived record, a prepared and an open
// transaction no longer keep every segment: automatic compaction bounds
// the directory, and the state loads the same, before and after the
// transactions end.
func TestCompactLongLived(t *testing.T) {
	dir := t.TempDir()
	open := func() *journal.FileJournal {
		j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet, PoolFiles: 2})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open()
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	churn(t, j, 3000, 10)
	if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindCommit, TxID: 4}); err != nil {
		t.Fatal(err)
	}
	m := waitMetrics(j, func(m journal.Metrics) bool { return m.Compactions > 0 && m.SegmentsInUse <= 15 })
	if m.Compactions == 0 || m.SegmentsInUse > 15 {
		t.Fatalf("compactions %d, segments in use %d", m.Compactions, m.SegmentsInUse)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) > 20 {
		t.Fatalf("%d files in the directory", len(ents))
	}
	j.Close()
	j = open()
	res, err := j.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 12 || res.Records[0].ID != 1 || len(res.Records[0].Updates) != 61 || len(res.Prepared) != 1 || res.RolledBack != 0 {
		t.Fatalf("after compaction: %d records (first %d with %d updates), %d prepared, %d rolled back",
			len(res.Records), res.Records[0].ID, len(res.Records[0].Updates), len(res.Prepared), res.RolledBack)
	}
	// The records and the transaction that lived through compaction can
	// still be used, and their segments reclaimed afterwards.
	if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindCommit, TxID: 2}, journal.Entry{Kind: journal.KindDelete, ID: 1}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = open()
	defer j.Close()
	res, err = j.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 12 || res.Records[len(res.Records)-1].ID != 3 {
		t.Fatalf("after commit: %d records", len(res.Records))
	}
}

// TestCompactCrashAtEveryStep crashes a compaction at each of its durable
// steps (file syncs, directory syncs, writes; pending directory operations
// are kept as a random prefix) and checks that the load gives the same
// state as before the compaction.
func TestCompactCrashAtEveryStep(t *testing.T) {
	for _, tc := range []struct {
		op   crashfs.Op
		keep int
	}{{crashfs.OpPlainSync, 10}, {crashfs.OpSyncDir, 10}, {crashfs.OpPlainWrite, 10},
		{crashfs.OpPlainSync, 150}, {crashfs.OpSyncDir, 150}, {crashfs.OpPlainWrite, 150}} {
		op := tc.op
		for k := 1; ; k++ {
			fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1, SectorSize: 512})
			j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := j.Load(ctx); err != nil {
				t.Fatal(err)
			}
			churn(t, j, 1200, tc.keep)
			before := loadSnapshot(t, fs.Crash(1))
			var snap *crashfs.FS
			fs.CrashAt(op, k, uint64(k), func(s *crashfs.FS) { snap = s })
			res, err := j.Compact(ctx)
			if err != nil {
				t.Fatalf("op %d step %d: compact: %v", op, k, err)
			}
			if res.NewSegs == 0 {
				t.Fatalf("compaction skipped: %s", res.Skipped)
			}
			j.Close()
			if snap == nil {
				t.Logf("op %d, %d new segments: crashed at each of %d steps", op, res.NewSegs, k-1)
				// Compaction finished before step k: check the result once.
				sameState(t, "after compaction", before, loadSnapshot(t, fs.Crash(2)))
				break
			}
			sameState(t, fmt.Sprintf("op %d crash at step %d", op, k), before, loadSnapshot(t, snap))
		}
	}
}

func loadSnapshot(t *testing.T, fs *crashfs.FS) *journal.LoadResult {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, err := j.Load(context.Background())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return res
}

// TestCompactPreparedAgain: a transaction ID prepared, rolled back and
// prepared again in the compacted prefix is rewritten once (its entries
// and one prepare), so its commit after the compaction applies each entry
// once.
func TestCompactPreparedAgain(t *testing.T) {
	fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1, SectorSize: 512})
	open := func() *journal.FileJournal {
		j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	ctx := context.Background()
	must := func(j journal.Journal, entries ...journal.Entry) {
		t.Helper()
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	j := open()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	must(j, journal.Entry{Kind: journal.KindAdd, ID: 1 << 40, Data: []byte("one")})
	must(j, journal.Entry{Kind: journal.KindUpdateTx, TxID: 9, ID: 1 << 40, Data: []byte("u-a")}, journal.Entry{Kind: journal.KindPrepare, TxID: 9})
	must(j, journal.Entry{Kind: journal.KindRollback, TxID: 9})
	must(j, journal.Entry{Kind: journal.KindUpdateTx, TxID: 9, ID: 1 << 40, Data: []byte("u-b")}, journal.Entry{Kind: journal.KindPrepare, TxID: 9})
	churn(t, j, 600, 5)
	res, err := j.Compact(ctx)
	if err != nil || res.NewSegs == 0 {
		t.Fatalf("compact: %+v, %v", res, err)
	}
	j.Close()
	j = open()
	lr, err := j.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ours []journal.PendingTx
	for _, p := range lr.Prepared {
		if p.TxID == 9 {
			ours = append(ours, p)
		}
	}
	if len(ours) != 1 || len(ours[0].Entries) != 1 || string(ours[0].Entries[0].Data) != "u-b" {
		t.Fatalf("after compaction, tx 9 is prepared %d times: %+v", len(ours), ours)
	}
	must(j, journal.Entry{Kind: journal.KindCommit, TxID: 9})
	j.Close()
	j = open()
	defer j.Close()
	if lr, err = j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if r := lr.Records[0]; r.ID != 1<<40 || len(r.Updates) != 1 || string(r.Updates[0].Data) != "u-b" {
		t.Fatalf("record 1<<40 after the commit: %d updates %+v, want the one update u-b", len(r.Updates), r.Updates)
	}
}

// TestScanWarnsOfPendingCompaction: Scan (tandem data print, verify,
// repair) never writes, so it cannot finish an interrupted compaction; it
// says that one is pending.
func TestScanWarnsOfPendingCompaction(t *testing.T) {
	fs := crashfs.New(crashfs.Options{})
	j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	j.Close()
	nm := journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}
	res, err := journal.Scan(fs, "/j", nm, nil)
	if err != nil || len(res.Warnings) != 0 {
		t.Fatalf("clean scan: %v, warnings %q", err, res.Warnings)
	}
	if err := fs.WriteFile("/j/"+journal.DefaultPrefix+".compact", []byte("tandem-compact 1\n")); err != nil {
		t.Fatal(err)
	}
	res, err = journal.Scan(fs, "/j", nm, nil)
	if err != nil || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "interrupted compaction") {
		t.Fatalf("scan with a control file: %v, warnings %q", err, res.Warnings)
	}
}
