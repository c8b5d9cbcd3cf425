package journal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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

// plainQueue writes records that stay (one re-added after a delete in
// the same segment, one with ID 0) among many that are added and deleted keep appends
// later, with no update and no transaction: compaction then reads only the
// segments holding the live records.
func plainQueue(t *testing.T, j journal.Journal, n, keep int) {
	t.Helper()
	ctx := context.Background()
	must := func(entries ...journal.Entry) {
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	must(journal.Entry{Kind: journal.KindAdd, ID: 1, Type: 7, Data: []byte("first")})
	must(journal.Entry{Kind: journal.KindDelete, ID: 1})
	must(journal.Entry{Kind: journal.KindAdd, ID: 1, Type: 8, Data: []byte("long-lived, added again")})
	must(journal.Entry{Kind: journal.KindAdd, ID: 0, Data: []byte("record ID 0 stays too")})
	data := bytes.Repeat([]byte{9}, 900)
	for i := 100; i < 100+n; i++ {
		entries := []journal.Entry{{Kind: journal.KindAdd, ID: uint64(i), Data: data}}
		if i == 100+n/3 {
			entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: 2, Data: []byte("another that stays")})
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
// steps (file syncs, directory syncs, writes, creates, renames, removes;
// pending directory operations are kept as a random prefix, or with
// reorder as a random subset, as file systems that do not keep them in
// order can) and checks that the load gives the same state as before the
// compaction. With reorder, a compaction that did not sync the directory
// after writing its .cmp files could leave a durable control file naming
// files that are gone (issue 21, item 4).
func TestCompactCrashAtEveryStep(t *testing.T) {
	type tcase struct {
		op      crashfs.Op
		keep    int
		queue   bool // plainQueue instead of churn: the state is read from the live records' segments only
		reorder bool
	}
	cases := []tcase{{crashfs.OpPlainSync, 10, false, false}, {crashfs.OpSyncDir, 10, false, false}, {crashfs.OpPlainWrite, 10, false, false},
		{crashfs.OpPlainSync, 150, false, false}, {crashfs.OpSyncDir, 150, false, false}, {crashfs.OpPlainWrite, 150, false, false},
		{crashfs.OpPlainSync, 150, true, false}, {crashfs.OpSyncDir, 150, true, false}, {crashfs.OpPlainWrite, 150, true, false}}
	for _, op := range []crashfs.Op{crashfs.OpSyncDir, crashfs.OpRename, crashfs.OpRemove, crashfs.OpCreate} {
		cases = append(cases, tcase{op, 150, true, true}, tcase{op, 10, false, true})
	}
	for _, tc := range cases {
		op := tc.op
		for k := 1; ; k++ {
			fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1, SectorSize: 512, ReorderDirOps: tc.reorder})
			j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := j.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.queue {
				plainQueue(t, j, 1200, tc.keep)
			} else {
				churn(t, j, 1200, tc.keep)
			}
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
			if prefix := int(res.To - res.From); tc.queue != (res.SegmentsRead < prefix) {
				t.Fatalf("queue %v: compaction read %d of the prefix's %d segments: %+v", tc.queue, res.SegmentsRead, prefix, res)
			}
			j.Close()
			if snap == nil {
				t.Logf("op %d reorder %v, %d new segments: crashed at each of %d steps", op, tc.reorder, res.NewSegs, k-1)
				// Compaction finished before step k: check the result once.
				sameState(t, "after compaction", before, loadSnapshot(t, fs.Crash(2)))
				break
			}
			sameState(t, fmt.Sprintf("op %d reorder %v crash at step %d", op, tc.reorder, k), before, loadSnapshot(t, snap))
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
	names, err := fs.List("/j")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".free") || strings.HasSuffix(n, ".cmp") || strings.HasSuffix(n, ".compact") {
			t.Fatalf("load left %s behind", n)
		}
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
	body := "tandem-compact 1\n"
	ctl := fmt.Sprintf("%scrc %08x\n", body, crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
	if err := fs.WriteFile("/j/"+journal.DefaultPrefix+".compact", []byte(ctl)); err != nil {
		t.Fatal(err)
	}
	res, err = journal.Scan(fs, "/j", nm, nil)
	if err != nil || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "interrupted compaction") {
		t.Fatalf("scan with a control file: %v, warnings %q", err, res.Warnings)
	}
	// A control file the next load would refuse, verify reports.
	if err := fs.WriteFile("/j/"+journal.DefaultPrefix+".compact", []byte(body)); err != nil {
		t.Fatal(err)
	}
	_, err = journal.Scan(fs, "/j", nm, nil)
	wantCorruption(t, err, "/j/"+journal.DefaultPrefix+".compact", 0, "malformed")
}

// TestCompactSteadyQueueBounded: a queue in steady state with one
// long-lived record, compacted every few segments, keeps its directory
// bounded (the long-lived record is moved, the segments it pinned go to
// the pool or are removed), leaves no compaction files behind and loads
// the live set. Compaction is called explicitly so that the bound does not
// depend on timing: after a compaction the files are the segments in use,
// the pool, and the freed segments the preparer has not taken yet.
func TestCompactSteadyQueueBounded(t *testing.T) {
	for _, updated := range []bool{false, true} {
		t.Run(fmt.Sprintf("updated=%v", updated), func(t *testing.T) { compactSteadyQueue(t, updated) })
	}
}

// compactSteadyQueue: with updated, the long-lived record has an update
// and compaction replays the whole prefix; without, it reads only the
// segment holding the record.
func compactSteadyQueue(t *testing.T, updated bool) {
	const seg, pool = 64 << 10, 2
	dir := t.TempDir()
	open := func() *journal.FileJournal {
		j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: seg, PoolFiles: pool, Logger: quiet, CompactMinFiles: -1,
			FS: aio.OS(aio.NIO, aio.DefaultOptions())})
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
	must := func(entries ...journal.Entry) {
		t.Helper()
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	must(journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("long-lived")})
	if updated {
		must(journal.Entry{Kind: journal.KindUpdate, ID: 1, Data: []byte("its update")})
	}
	data := bytes.Repeat([]byte{5}, 900)
	const depth, perRound, rounds = 20, 300, 6 // a round is about 4.4 segments
	// Between compactions: the segments of a round, those kept by the
	// last compaction (at most 3), the pool (pool+1) and the freed
	// segments not yet recycled or removed (at most a round's), and one
	// file being zero-filled.
	const bound = (5 + 3 + pool + 1 + 5 + 1) * seg
	maxDir, id := int64(0), uint64(100)
	for r := range rounds {
		for range perRound {
			id++
			entries := []journal.Entry{{Kind: journal.KindAdd, ID: id, Data: data}}
			if id > 100+depth {
				entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: id - depth})
			}
			must(entries...)
			maxDir = max(maxDir, dirSize(dir))
		}
		res, err := j.Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.NewSegs != 1 {
			t.Fatalf("round %d: compaction of [%d, %d) wrote %d segments (%s), want the live state in one", r, res.From, res.To, res.NewSegs, res.Skipped)
		}
		if prefix := int(res.To - res.From); updated != (res.SegmentsRead == prefix) {
			t.Fatalf("round %d: compaction read %d of the prefix's %d segments", r, res.SegmentsRead, prefix)
		}
		if m := j.Metrics(); m.SegmentsInUse > 3 {
			t.Fatalf("round %d: %d segments in use after compacting [%d, %d)", r, m.SegmentsInUse, res.From, res.To)
		}
		maxDir = max(maxDir, dirSize(dir))
	}
	t.Logf("%d appends through about %d segments: the directory reached %d KiB (bound %d KiB)",
		rounds*perRound, rounds*perRound*950/seg, maxDir>>10, bound>>10)
	if maxDir > bound {
		t.Fatalf("the directory reached %d bytes, over the bound %d", maxDir, bound)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open()
	defer j.Close()
	res, err := j.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != depth+1 || res.Records[0].ID != 1 || (len(res.Records[0].Updates) == 1) != updated || res.Records[1].ID != id-depth+1 {
		t.Fatalf("reload: %d records, want the long-lived one and %d queued", len(res.Records), depth)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".free") || strings.HasSuffix(e.Name(), ".cmp") || strings.HasSuffix(e.Name(), ".compact") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestCompactResyncAfterRestart: a journal restarted after a compaction
// still refuses a stream resume inside the rewritten prefix (the
// compacted segments say so in their header), and accepts one after it.
// Before the header flag, only the process that compacted knew.
func TestCompactResyncAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() *journal.FileJournal {
		t.Helper()
		j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1,
			FS: aio.OS(aio.NIO, aio.DefaultOptions())})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Load(ctx); err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open()
	plainQueue(t, j, 1200, 20) // about 17 segments, the first 16 mostly dead
	res, err := j.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.NewSegs == 0 || res.To < 3 {
		t.Fatalf("compaction %+v rewrote nothing: the scenario needs it", res)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for _, restarts := range []int{1, 2} { // the flag survives a restart that does not compact
		j = open()
		for _, tc := range []struct {
			pos  journal.Position
			want bool // ErrResyncNeeded
		}{
			{journal.Position{Seq: res.To - 1}, true},               // a rewritten segment's start
			{journal.Position{Seq: res.To - 1, Offset: 4096}, true}, // inside it
			{journal.Position{Seq: res.To}, false},                  // the first segment after the prefix
		} {
			s, err := j.Subscribe(tc.pos)
			if got := errors.Is(err, journal.ErrResyncNeeded); got != tc.want {
				t.Errorf("restart %d: Subscribe(%v) = %v, want ErrResyncNeeded %v", restarts, tc.pos, err, tc.want)
			}
			if err == nil {
				s.Close()
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompactBelowSubscriber: a subscriber reading from the middle of the
// journal keeps every segment from its position on: compaction rewrites
// only the prefix below it, and the subscriber reads on without a gap or
// an error. A position in the removed or rewritten segments then needs a
// resync; a subscriber starting from the oldest segment reads the
// rewritten ones.
func TestCompactBelowSubscriber(t *testing.T) {
	j, err := journal.Open(journal.Options{Dir: t.TempDir(), SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1,
		FS: aio.OS(aio.NIO, aio.DefaultOptions())})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	plainQueue(t, j, 1200, 20) // about 17 segments, the first 16 mostly dead
	const from = 8
	sub, err := j.Subscribe(journal.Position{Seq: from})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	res, err := j.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.NewSegs == 0 || res.From != 1 || res.To > from {
		t.Fatalf("compacted [%d, %d) into %d segments (%s), want a prefix below the subscriber at %d", res.From, res.To, res.NewSegs, res.Skipped, from)
	}
	for _, seq := range []uint64{1, res.To - 1} { // removed, rewritten
		if _, err := j.Subscribe(journal.Position{Seq: seq}); !errors.Is(err, journal.ErrResyncNeeded) {
			t.Fatalf("subscribe at compacted segment %d: %v, want ErrResyncNeeded", seq, err)
		}
	}
	if s, err := j.Subscribe(journal.Position{}); err != nil {
		t.Fatalf("subscribe from the oldest segment: %v", err)
	} else {
		s.Close()
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	next, n := journal.Position{Seq: from}, 0
	for {
		b, err := sub.Next(ctx)
		if errors.Is(err, journal.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("after %d batches: %v", n, err)
		}
		if b.Pos != next {
			t.Fatalf("batch %d at %v, want %v", n, b.Pos, next)
		}
		next = b.End()
		if b.Sealed {
			next = journal.Position{Seq: b.Pos.Seq + 1}
		}
		n++
	}
	if next.Seq < 17 {
		t.Fatalf("the subscriber stopped at %v", next)
	}
}

// TestCompactSwitchRefusesBadControl (issue 21, item 4): a durable control
// file whose rewritten segments are missing, or are not the ones the
// compaction wrote (no compaction flag, another salt), is refused as
// corruption naming the file, before the switch removes anything; a
// version 1 control file (no salts, written by earlier builds) still
// completes.
func TestCompactSwitchRefusesBadControl(t *testing.T) {
	// The state after the control file is durable and before the switch's
	// first rename: kill the process there.
	fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1, SectorSize: 512})
	j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	churn(t, j, 1200, 150)
	before := loadSnapshot(t, fs.Fork())
	var snap *crashfs.FS
	fs.KillAt(crashfs.OpRename, 2, func(s *crashfs.FS) { snap = s }) // 1: the control file's, 2: the first .cmp's
	if res, err := j.Compact(ctx); err != nil || res.NewSegs == 0 {
		t.Fatalf("compact: %+v, %v", res, err)
	}
	j.Close()
	if snap == nil {
		t.Fatal("no snapshot")
	}
	ctlPath := "/j/" + journal.DefaultPrefix + ".compact"
	ctl, err := snap.ReadFile(ctlPath)
	if err != nil {
		t.Fatalf("the control file is not there: %v", err)
	}
	var seq uint64
	var salt string
	for _, line := range strings.Split(string(ctl), "\n") {
		if _, err := fmt.Sscanf(line, "rename %d %s", &seq, &salt); err == nil {
			break
		}
	}
	if seq == 0 {
		t.Fatalf("no rename line with a salt in %q", ctl)
	}
	name := "/j/" + journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, seq)
	cmp, err := snap.ReadFile(name + ".cmp")
	if err != nil {
		t.Fatal(err)
	}
	old, err := snap.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	table := crc32.MakeTable(crc32.Castagnoli)
	for _, tc := range []struct {
		name   string
		damage func(fs *crashfs.FS)
		file   string // the file the error must name ("" : the load succeeds)
		reason string
	}{
		{"missing", func(fs *crashfs.FS) { fs.Remove(name + ".cmp"); fs.Remove(name) }, name + ".cmp", "neither it nor"},
		{"not flagged", func(fs *crashfs.FS) { fs.WriteFile(name+".cmp", old) }, name + ".cmp", "lacks the compaction flag"},
		// As if an earlier attempt at the switch had renamed the .cmp file
		// over the old segment, but the file there is the old one.
		{"missing, the old segment in place", func(fs *crashfs.FS) { fs.Remove(name + ".cmp") }, name, "lacks the compaction flag"},
		{"another salt", func(fs *crashfs.FS) {
			b := bytes.Clone(cmp)
			b[24] ^= 1
			binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], table))
			fs.WriteFile(name+".cmp", b)
		}, name + ".cmp", "salt"},
		{"damaged header", func(fs *crashfs.FS) {
			b := bytes.Clone(cmp)
			b[30] ^= 1
			fs.WriteFile(name+".cmp", b)
		}, name + ".cmp", "bad segment header"},
		{"version 1 control file", func(fs *crashfs.FS) {
			var b strings.Builder
			for _, line := range strings.Split(string(ctl), "\n") {
				switch {
				case strings.HasPrefix(line, "tandem-compact"):
					b.WriteString("tandem-compact 1\n")
				case strings.HasPrefix(line, "rename"):
					f := strings.Fields(line)
					b.WriteString(f[0] + " " + f[1] + "\n")
				case strings.HasPrefix(line, "remove"):
					b.WriteString(line + "\n")
				}
			}
			body := b.String()
			fs.WriteFile(ctlPath, fmt.Appendf([]byte(body), "crc %08x\n", crc32.Checksum([]byte(body), table)))
		}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := snap.Fork()
			tc.damage(fs)
			j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
			if err != nil {
				t.Fatal(err)
			}
			res, err := j.Load(ctx)
			j.Close()
			if tc.file == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				sameState(t, tc.name, before, res)
				return
			}
			var ce *journal.CorruptionError
			if !errors.As(err, &ce) || ce.File != tc.file || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("load: %v; want a CorruptionError naming %s about %q", err, tc.file, tc.reason)
			}
			// Verify (a scan, which never writes) reports the same.
			_, err = journal.Scan(fs, "/j", journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}, nil)
			if !errors.As(err, &ce) || ce.File != tc.file || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("scan: %v; want a CorruptionError naming %s about %q", err, tc.file, tc.reason)
			}
			// Nothing was switched: the control file and the prefix are
			// still there, and the load refuses again.
			if _, err := fs.ReadFile(ctlPath); err != nil {
				t.Fatalf("the control file is gone: %v", err)
			}
			j, _ = journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
			if _, err := j.Load(ctx); !errors.As(err, &ce) {
				t.Fatalf("second load: %v, want the same refusal", err)
			}
			j.Close()
		})
	}
}
