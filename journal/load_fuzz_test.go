package journal_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
	"github.com/tandemmq/tandem/journal"
)

const fuzzSeg = 64 << 10

// fuzzSegments writes a small journal (records, updates, a prepared and an
// open transaction) into a crash-simulating FS and returns the bytes of
// its first segment, as a crash left it (unsealed) and after Close
// (sealed).
func fuzzSegments(tb testing.TB) (crashed, sealed []byte) {
	fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1})
	j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: fuzzSeg, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		tb.Fatal(err)
	}
	must := func(entries ...journal.Entry) {
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			tb.Fatal(err)
		}
	}
	for i := uint64(1); i <= 20; i++ {
		must(journal.Entry{Kind: journal.KindAdd, ID: i, Type: 1, Data: fmt.Appendf(nil, "record %d", i)})
		if i%3 == 0 {
			must(journal.Entry{Kind: journal.KindUpdate, ID: i - 1, Data: []byte("u")}, journal.Entry{Kind: journal.KindDelete, ID: i - 2})
		}
	}
	must(journal.Entry{Kind: journal.KindAddTx, TxID: 100, ID: 50, Data: []byte("tx")}, journal.Entry{Kind: journal.KindPrepare, TxID: 100, Data: []byte("xid")})
	must(journal.Entry{Kind: journal.KindDeleteTx, TxID: 101, ID: 20})
	path := "/j/" + journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, 1)
	if crashed, err = fs.Crash(1).ReadFile(path); err != nil {
		tb.Fatal(err)
	}
	j.Close()
	if sealed, err = fs.ReadFile(path); err != nil {
		tb.Fatal(err)
	}
	return crashed, sealed
}

// FuzzLoad loads a journal whose first segment holds arbitrary bytes
// (seeded with real segments), alone or followed by a second, valid
// segment. Load must not panic; it fails only with a *CorruptionError;
// when it succeeds, a second load (after the first one's repairs) gives
// the same state, with no new torn tail. Each input is also scanned as
// `tandem data verify` does, within a time budget (linear work counters)
// and a memory budget. Each input is a 64 KiB segment, so minimizing one
// takes long: run with -fuzzminimizetime 3s.
func FuzzLoad(f *testing.F) {
	crashed, sealed := fuzzSegments(f)
	f.Add(crashed[:4096], false)
	f.Add(sealed[:4096], true)
	f.Add(crashed[:2048], true)
	// A bad record after the first ones, then fake headers claiming the
	// rest of the segment (once quadratic).
	crafted, _ := craftedSegment(fuzzSeg, 16, nil)
	f.Add(crafted, false)
	journal.BuildScanTables() // once per process: not an input's cost
	f.Fuzz(func(t *testing.T, seg []byte, second bool) {
		if len(seg) > fuzzSeg {
			return
		}
		file := make([]byte, fuzzSeg)
		copy(file, seg)
		fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1})
		if err := fs.MkdirAll("/j"); err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/j/"+journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, 1), file); err != nil {
			t.Fatal(err)
		}
		open := func() journal.Journal {
			j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: fuzzSeg, Logger: quiet, CompactMinFiles: -1})
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
		ctx := context.Background()
		if second {
			// A valid second segment: the first is then a sealed one.
			j := open()
			if _, err := j.Load(ctx); err != nil {
				return // the first segment is corrupt or torn; enough
			}
			_ = journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 1 << 40, Data: []byte("second")})
			j.Close()
		}
		// The scan verify does: linear work, bounded memory.
		var sr *journal.ScanResult
		allocs := heapAllocated(func() {
			sr, _ = journal.Scan(fs, "/j", journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}, nil)
		})
		if sr != nil {
			if n := int64(2 * fuzzSeg); sr.Work.BytesRead > 6*n || sr.Work.CRCBytes > 24*n || sr.Work.Candidates > n/4+1 {
				t.Fatalf("a scan of two %d-byte segments did more than linear work: %+v", fuzzSeg, sr.Work)
			}
		}
		if limit := uint64(4 << 20); allocs > limit {
			t.Fatalf("a scan of two %d-byte segments allocated %d bytes, over %d", fuzzSeg, allocs, limit)
		}
		j := open()
		res, err := j.Load(ctx)
		j.Close()
		if err != nil {
			var ce *journal.CorruptionError
			if !errors.As(err, &ce) || ce.File == "" || ce.Reason == "" {
				t.Fatalf("load failed with %v, not a *CorruptionError naming the file", err)
			}
			return
		}
		j2 := open()
		res2, err := j2.Load(ctx)
		j2.Close()
		if err != nil {
			t.Fatalf("second load: %v (the first one succeeded)", err)
		}
		if len(res2.Records) != len(res.Records) || len(res2.Prepared) != len(res.Prepared) || res2.MaxID < res.MaxID {
			t.Fatalf("second load: %d records %d prepared MaxID %d; first: %d %d %d",
				len(res2.Records), len(res2.Prepared), res2.MaxID, len(res.Records), len(res.Prepared), res.MaxID)
		}
		for i := range res.Records {
			if res.Records[i].ID != res2.Records[i].ID || len(res.Records[i].Updates) != len(res2.Records[i].Updates) {
				t.Fatalf("second load: record %d differs", i)
			}
		}
		for _, w := range res2.Warnings {
			t.Fatalf("second load warns again: %s", w)
		}
	})
}
