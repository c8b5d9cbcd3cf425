package journal_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// TestReclaimSteadyQueue runs a queue in steady state (add, and delete
// the oldest) through many segments: the directory stays bounded, the
// reclaimed files are recycled, and a reload gives the live set.
func TestReclaimSteadyQueue(t *testing.T) {
	for _, pool := range []int{-1, 1} {
		dir := t.TempDir()
		j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, PoolFiles: pool, Logger: quiet,
			FS: aio.OS(aio.NIO, aio.DefaultOptions())})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		data := bytes.Repeat([]byte{3}, 900)
		const depth = 100 // about 1.5 segments of live data
		maxFiles := 0
		for i := 1; i <= 3000; i++ {
			entries := []journal.Entry{{Kind: journal.KindAdd, ID: uint64(i), Data: data}}
			if i > depth {
				entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: uint64(i - depth)})
			}
			if err := journal.AppendSync(ctx, j, entries...); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(dir)
			maxFiles = max(maxFiles, len(ents))
		}
		m := waitReclaimed(j, 30)
		if m.Reclaimed < 30 || m.SegmentsInUse > 4 {
			t.Fatalf("pool %d: reclaimed %d segments, %d in use; want most of ~45 reclaimed", pool, m.Reclaimed, m.SegmentsInUse)
		}
		if maxFiles > 8 {
			t.Fatalf("pool %d: the directory reached %d files", pool, maxFiles)
		}
		if m.Created > 8 {
			t.Fatalf("pool %d: %d files created by zero-filling: reclaimed files were not recycled", pool, m.Created)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		j2, _ := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, PoolFiles: pool, Logger: quiet})
		res, err := j2.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != depth || res.Records[0].ID != 3000-depth+1 {
			t.Fatalf("reload: %d records, first %d", len(res.Records), res.Records[0].ID)
		}
		j2.Close()
	}
}

// TestReclaimPinned: a live record, or an open transaction, keeps its
// segment and every later one.
func TestReclaimPinned(t *testing.T) {
	dir := t.TempDir()
	j, _ := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("long-lived")})
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAddTx, TxID: 2, ID: 3, Data: []byte("open tx")})
	data := make([]byte, 900)
	for i := uint64(10); i < 1000; i++ {
		journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: i, Data: data}, journal.Entry{Kind: journal.KindDelete, ID: i})
	}
	if m := j.Metrics(); m.Reclaimed != 0 {
		t.Fatalf("reclaimed %d segments while record 1 is live", m.Reclaimed)
	}
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindDelete, ID: 1})
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 5000})
	if m := j.Metrics(); m.Reclaimed != 0 {
		t.Fatalf("reclaimed %d segments while transaction 2 is open", m.Reclaimed)
	}
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindRollback, TxID: 2})
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 5001})
	if m := waitReclaimed(j, 10); m.Reclaimed < 10 {
		t.Fatalf("reclaimed %d segments after the pins went", m.Reclaimed)
	}
	j.Close()
	j2, _ := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet})
	res, err := j2.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 2 || res.RolledBack != 0 || len(res.Prepared) != 0 {
		t.Fatalf("reload: %d records, %d rolled back, %d prepared", len(res.Records), res.RolledBack, len(res.Prepared))
	}
	j2.Close()
}

// waitReclaimed waits (up to 5 s) for the background reclaim to reach n.
func waitReclaimed(j *journal.FileJournal, n int) journal.Metrics {
	return waitMetrics(j, func(m journal.Metrics) bool { return m.Reclaimed >= n })
}

// waitMetrics waits (up to 5 s) for the journal's background work to meet
// ok, and returns the metrics it ended with.
func waitMetrics(j *journal.FileJournal, ok func(journal.Metrics) bool) journal.Metrics {
	for range 500 {
		if m := j.Metrics(); ok(m) {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	return j.Metrics()
}

// TestMaxIDSurvivesReclaim: once the segments holding the largest IDs are
// reclaimed, the segment headers still carry them, so IDs are never
// handed out twice.
func TestMaxIDSurvivesReclaim(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() *journal.FileJournal {
		j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open()
	j.Load(ctx)
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 50})
	data := make([]byte, 1000)
	for i := uint64(100); i <= 1000; i++ {
		journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: i, Data: data}, journal.Entry{Kind: journal.KindDelete, ID: i})
	}
	j.Close()
	j = open()
	if res, _ := j.Load(ctx); res.MaxID != 1000 {
		t.Fatalf("MaxID %d, want 1000", res.MaxID)
	}
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindDelete, ID: 50})
	journal.AppendSync(ctx, j) // a synced batch: the reclaim of every older segment follows
	waitMetrics(j, func(m journal.Metrics) bool { return m.SegmentsInUse <= 2 })
	j.Close()
	j = open()
	defer j.Close()
	res, err := j.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.MaxID != 1000 {
		t.Fatalf("after reclaim: MaxID %d, want 1000", res.MaxID)
	}
}

// TestReclaimKeepsMinFiles: with journal-pool-files 1 and
// journal-min-files 6, reclaim recycles rather than removes while fewer
// than 6 files would remain.
func TestReclaimKeepsMinFiles(t *testing.T) {
	dir := t.TempDir()
	j, _ := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet, PoolFiles: 1, MinFiles: 6, CompactMinFiles: -1})
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	data := make([]byte, 900)
	for i := uint64(1); i < 2000; i++ {
		journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: i, Data: data}, journal.Entry{Kind: journal.KindDelete, ID: i})
		if i%100 == 0 {
			m := waitMetrics(j, func(m journal.Metrics) bool { return m.SegmentsInUse+m.PoolFiles >= 6 })
			if m.SegmentsInUse+m.PoolFiles < 6 {
				t.Fatalf("after %d appends: %d in use + %d pooled < journal-min-files 6", i, m.SegmentsInUse, m.PoolFiles)
			}
		}
	}
	if m := j.Metrics(); m.Reclaimed == 0 {
		t.Fatal("nothing reclaimed")
	}
}
