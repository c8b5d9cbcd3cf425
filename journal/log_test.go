package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
	"github.com/tandemmq/tandem/journal"
)

func openLog(t *testing.T, fs aio.FS, dir string) *journal.FileJournal {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: dir, FS: fs, SegmentSize: 64 << 10, Log: true, Logger: quiet, Prefix: "tandem-page", Ext: "tjp"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

type logRec struct {
	pos  journal.Position
	ids  []uint64
	data [][]byte
}

// loadLog loads j and returns the records its visitor saw.
func loadLog(t *testing.T, j *journal.FileJournal) ([]logRec, *journal.LoadResult) {
	t.Helper()
	var recs []logRec
	res, err := j.LoadLog(context.Background(), func(pos journal.Position, payload []byte) error {
		recs = append(recs, decodeLogRec(t, pos, payload))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, res
}

func decodeLogRec(t *testing.T, pos journal.Position, payload []byte) logRec {
	t.Helper()
	r := logRec{pos: pos}
	it := journal.NewEntryIter(payload)
	var e journal.Entry
	for {
		ok, err := it.Next(&e)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return r
		}
		r.ids = append(r.ids, e.ID)
		r.data = append(r.data, bytes.Clone(e.Data))
	}
}

func logBody(id uint64) []byte {
	return bytes.Repeat([]byte{byte(id)}, 100+int(id%700))
}

// TestLogMode: a log-mode journal takes adds only; LoadLog hands every
// record with its position and keeps none (the result has no records);
// a LogReader reads them back in order from any of those positions, up
// to the durable end, and ReadRecord reads one.
func TestLogMode(t *testing.T) {
	dir := t.TempDir()
	fs := aio.OS(aio.NIO, aio.DefaultOptions())
	j := openLog(t, fs, dir)
	if _, err := j.Load(context.Background()); err == nil {
		t.Fatal("Load of a log-mode journal succeeded")
	}
	loadLog(t, j)
	ctx := context.Background()
	const n = 600 // about 250 KiB over 64 KiB segments
	for id := uint64(1); id <= n; id++ {
		entries := []journal.Entry{{Kind: journal.KindAdd, ID: id, Type: 1, Data: logBody(id)}}
		if id%10 == 0 && id < n { // two entries in one record now and then
			id++
			entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, TxID: 7, Data: logBody(id)})
		}
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []journal.Entry{{Kind: journal.KindUpdate, ID: 1, Type: 2}, {Kind: journal.KindDelete, ID: 1}, {Kind: journal.KindCommit, TxID: 7}} {
		if err := j.Append([]journal.Entry{bad}, true, func(error) {}); err == nil {
			t.Fatalf("%s accepted", bad.Kind)
		}
	}
	// Read back from the start.
	r := j.NewLogReader(journal.Position{})
	var got []logRec
	for {
		pos, p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, decodeLogRec(t, pos, p))
	}
	checkLogRecs(t, got, n)
	// More appended after EOF is read by the same reader.
	if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: n + 1, Type: 1, Data: logBody(n + 1)}); err != nil {
		t.Fatal(err)
	}
	pos, p, err := r.Next()
	if err != nil || decodeLogRec(t, pos, p).ids[0] != n+1 {
		t.Fatalf("after EOF: %v %v", pos, err)
	}
	r.Close()
	// Random access.
	for _, rec := range []logRec{got[0], got[len(got)/2], got[len(got)-1]} {
		p, err := j.ReadRecord(rec.pos)
		if err != nil {
			t.Fatal(err)
		}
		if d := decodeLogRec(t, rec.pos, p); d.ids[0] != rec.ids[0] || !bytes.Equal(d.data[0], rec.data[0]) {
			t.Fatalf("ReadRecord(%v) = ids %v", rec.pos, d.ids)
		}
		// A reader from that position starts with that record.
		rr := j.NewLogReader(rec.pos)
		if at, _, err := rr.Next(); err != nil || at != rec.pos {
			t.Fatalf("reader from %v: %v %v", rec.pos, at, err)
		}
		rr.Close()
	}
	if _, err := j.ReadRecord(journal.Position{Seq: got[1].pos.Seq, Offset: got[1].pos.Offset + 1}); err == nil {
		t.Fatal("ReadRecord inside a record succeeded")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// Reload: every record, same positions, no record kept in the result.
	j = openLog(t, fs, dir)
	loaded, res := loadLog(t, j)
	defer j.Close()
	if len(res.Records) != 0 || res.MaxID != n+1 {
		t.Fatalf("load result: %d records, max ID %d", len(res.Records), res.MaxID)
	}
	if len(loaded) != len(got)+1 {
		t.Fatalf("loaded %d records, want %d", len(loaded), len(got)+1)
	}
	for i := range got {
		if loaded[i].pos != got[i].pos || loaded[i].ids[0] != got[i].ids[0] {
			t.Fatalf("record %d: loaded at %v id %v, read at %v id %v", i, loaded[i].pos, loaded[i].ids, got[i].pos, got[i].ids)
		}
	}
}

func checkLogRecs(t *testing.T, recs []logRec, n uint64) {
	t.Helper()
	next := uint64(1)
	var last journal.Position
	for _, r := range recs {
		if r.pos.Seq < last.Seq || r.pos.Seq == last.Seq && r.pos.Offset <= last.Offset {
			t.Fatalf("position %v after %v", r.pos, last)
		}
		last = r.pos
		for i, id := range r.ids {
			if id != next || !bytes.Equal(r.data[i], logBody(id)) {
				t.Fatalf("record at %v: id %d, want %d (or its data differs)", r.pos, id, next)
			}
			next++
		}
	}
	if next != n+1 {
		t.Fatalf("read up to id %d, want %d", next-1, n)
	}
}

// TestLogFloor: segments go only once the floor passes them, and an idle
// journal reclaims when the floor moves; a reader of a reclaimed segment
// gets ErrResyncNeeded. Without a floor nothing is ever reclaimed.
func TestLogFloor(t *testing.T) {
	dir := t.TempDir()
	fs := aio.OS(aio.NIO, aio.DefaultOptions())
	j := openLog(t, fs, dir)
	loadLog(t, j)
	defer j.Close()
	ctx := context.Background()
	for id := uint64(1); id <= 1000; id++ {
		if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: logBody(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if j.Oldest() != 1 {
		t.Fatalf("oldest %d without a floor", j.Oldest())
	}
	cur := j.DurableEnd().Seq
	if cur < 5 {
		t.Fatalf("only %d segments", cur)
	}
	if err := j.SetFloor(3); err != nil {
		t.Fatal(err)
	}
	waitOldest(t, j, 3)
	if err := j.SetFloor(2); err != nil || j.Floor() != 3 {
		t.Fatalf("floor moved back: %d %v", j.Floor(), err)
	}
	r := j.NewLogReader(journal.Position{Seq: 1})
	if _, _, err := r.Next(); !errors.Is(err, journal.ErrResyncNeeded) {
		t.Fatalf("reading a reclaimed segment: %v", err)
	}
	r.Close()
	// Past the current segment: everything before it goes, the current one stays.
	if err := j.SetFloor(cur + 10); err != nil {
		t.Fatal(err)
	}
	waitOldest(t, j, cur)
	if _, err := j.Compact(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitOldest(t *testing.T, j *journal.FileJournal, want uint64) {
	t.Helper()
	for i := 0; j.Oldest() < want; i++ {
		if i > 1000 {
			t.Fatalf("oldest %d, want %d", j.Oldest(), want)
		}
		// Reclaim runs with synced batches: a barrier makes one.
		if err := journal.AppendSync(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogCorruption: a flipped byte in a record is reported with the
// file and offset by LoadLog and by a LogReader.
func TestLogCorruption(t *testing.T) {
	dir := t.TempDir()
	fs := aio.OS(aio.NIO, aio.DefaultOptions())
	j := openLog(t, fs, dir)
	loadLog(t, j)
	var positions []journal.Position
	for id := uint64(1); id <= 300; id++ {
		if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: logBody(id)}); err != nil {
			t.Fatal(err)
		}
	}
	r := j.NewLogReader(journal.Position{})
	for {
		pos, _, err := r.Next()
		if err != nil {
			break
		}
		positions = append(positions, pos)
	}
	r.Close()
	j.Close()
	victim := positions[3] // in a sealed segment
	path := filepath.Join(dir, journal.SegmentName("tandem-page", "tjp", victim.Seq))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	f.ReadAt(b[:], victim.Offset+40)
	b[0] ^= 0x10
	f.WriteAt(b[:], victim.Offset+40)
	f.Close()

	j = openLog(t, fs, dir)
	_, err = j.LoadLog(context.Background(), func(journal.Position, []byte) error { return nil })
	var ce *journal.CorruptionError
	if !errors.As(err, &ce) || ce.File != path {
		t.Fatalf("LoadLog: %v, want corruption in %s", err, path)
	}
	j.Close()
}

// TestLogReaderCorruption: a LogReader of a live journal checks each
// record's checksum.
func TestLogReaderCorruption(t *testing.T) {
	dir := t.TempDir()
	fs := aio.OS(aio.NIO, aio.DefaultOptions())
	j := openLog(t, fs, dir)
	loadLog(t, j)
	defer j.Close()
	for id := uint64(1); id <= 5; id++ {
		if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: logBody(id)}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, journal.SegmentName("tandem-page", "tjp", 1))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	f.ReadAt(b[:], journal.SegmentHeaderSize+journal.RecordHeaderSize+20)
	b[0] ^= 1
	f.WriteAt(b[:], journal.SegmentHeaderSize+journal.RecordHeaderSize+20)
	f.Close()
	r := j.NewLogReader(journal.Position{})
	defer r.Close()
	_, _, err = r.Next()
	var ce *journal.CorruptionError
	if !errors.As(err, &ce) || ce.File != path || ce.Offset != journal.SegmentHeaderSize {
		t.Fatalf("reader: %v, want corruption at %s:%d", err, path, journal.SegmentHeaderSize)
	}
}

// TestLogCrash: a power loss at every fdatasync of a log-mode journal
// loses no acknowledged record and loads in order (crashfs keeps what was
// synced and a random part of the rest).
func TestLogCrash(t *testing.T) {
	kills := []int{1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 120, 144, 170, 233, 300, 377}
	for _, kill := range kills {
		t.Run(fmt.Sprint(kill), func(t *testing.T) {
			fs := crashfs.New(crashfs.Options{Kind: aio.NIO})
			j := openLog(t, fs, "/log")
			loadLog(t, j)
			var snap *crashfs.FS
			fs.CrashAt(crashfs.OpSync, kill, uint64(kill), func(c *crashfs.FS) { snap = c })
			acked := uint64(0)
			for id := uint64(1); id <= 500 && snap == nil; id++ {
				if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: logBody(id)}); err != nil {
					t.Fatal(err)
				}
				if snap == nil {
					acked = id
				}
			}
			j.Close()
			if snap == nil {
				t.Skip("no crash point reached")
			}
			j = openLog(t, snap, "/log")
			recs, _ := loadLog(t, j)
			defer j.Close()
			t.Logf("acked %d, loaded %d records", acked, len(recs))
			var ids []uint64
			for _, r := range recs {
				ids = append(ids, r.ids...)
			}
			if uint64(len(ids)) < acked {
				t.Fatalf("loaded %d records, %d were acknowledged", len(ids), acked)
			}
			for i, id := range ids {
				if id != uint64(i+1) || !bytes.Equal(recs[i].data[0], logBody(id)) {
					t.Fatalf("record %d is id %d", i, id)
				}
			}
			// Appends continue after the loaded ones, readable in order.
			if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: 1000, Type: 1, Data: []byte("after")}); err != nil {
				t.Fatal(err)
			}
			r := j.NewLogReader(journal.Position{})
			defer r.Close()
			n := 0
			for {
				_, _, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != len(ids)+1 {
				t.Fatalf("read %d records after the restart, want %d", n, len(ids)+1)
			}
		})
	}
}
