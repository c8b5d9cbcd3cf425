package journal_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// TestReviewResumeIntoRewrittenSegment: a backup streams the primary's
// segments into its own directory, disconnects at the start of a segment,
// and resumes from that position after the primary compacted the prefix.
// The segment at that position is now a rewritten one (the prefix's whole
// live state), not the continuation of what the backup holds: resuming
// there must be refused (ErrResyncNeeded), or the backup ends up with the
// state twice and with records the primary deleted (found before
// 817982e: the backup held the long-lived record's update twice and two
// records whose deletes were in the rewritten segment).
func TestReviewResumeIntoRewrittenSegment(t *testing.T) {
	fs := aio.OS(aio.NIO, aio.DefaultOptions())
	primary, backup := t.TempDir(), t.TempDir()
	nm := journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}
	j, err := journal.Open(journal.Options{Dir: primary, FS: fs, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	must := func(entries ...journal.Entry) {
		t.Helper()
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	must(journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("long-lived")})
	must(journal.Entry{Kind: journal.KindUpdate, ID: 1, Data: []byte("its one update")})
	data := bytes.Repeat([]byte{3}, 900)
	for i := uint64(100); i < 900; i++ { // about 12 segments, each dead once the next starts
		entries := []journal.Entry{{Kind: journal.KindAdd, ID: i, Data: data}}
		if i > 102 {
			entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: i - 2})
		}
		must(entries...)
	}
	cur := j.Metrics().SegmentsInUse // segments 1..cur, cur being appended to
	stop := journal.Position{Seq: uint64(cur - 1)}

	// The backup copies everything before the last sealed segment, then
	// disconnects.
	sub, err := j.Subscribe(journal.Position{})
	if err != nil {
		t.Fatal(err)
	}
	for pos := sub.Position(); pos != stop; pos = sub.Position() {
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := journal.ApplyBatch(fs, backup, nm, b); err != nil {
			t.Fatal(err)
		}
	}
	sub.Close()

	res, err := j.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.NewSegs == 0 || res.To <= stop.Seq || res.To-uint64(res.NewSegs) > stop.Seq {
		t.Skipf("compaction %+v did not rewrite segment %d: the scenario needs it", res, stop.Seq)
	}

	// The backup reconnects where it stopped.
	sub, err = j.Subscribe(stop)
	if errors.Is(err, journal.ErrResyncNeeded) {
		return // refused: the backup resyncs from a full copy
	}
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	must() // the current segment's records so far are durable
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		b, err := sub.Next(ctx)
		if errors.Is(err, journal.ErrClosed) {
			break
		}
		if err != nil {
			t.Logf("resumed stream failed (safe, but it should have said ErrResyncNeeded): %v", err)
			return
		}
		if err := journal.ApplyBatch(fs, backup, nm, b); err != nil {
			t.Fatal(err)
		}
	}
	a := loadDir(t, primary)
	bk := loadDir(t, backup)
	if len(a.Records) != len(bk.Records) {
		ids := func(r *journal.LoadResult) (o []uint64) {
			for _, x := range r.Records {
				o = append(o, x.ID)
			}
			return o
		}
		t.Fatalf("primary %d records %v, backup %d %v (compaction %+v)", len(a.Records), ids(a), len(bk.Records), ids(bk), res)
	}
	for i := range a.Records {
		ra, rb := a.Records[i], bk.Records[i]
		if ra.ID != rb.ID || len(ra.Updates) != len(rb.Updates) {
			t.Fatalf("record %d: primary %d with %d updates, backup %d with %d updates", i, ra.ID, len(ra.Updates), rb.ID, len(rb.Updates))
		}
	}
}
