package journal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

const dmgSeg = 64 << 10

func openDir(t *testing.T, dir string, epoch uint64) *journal.FileJournal {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: dmgSeg, Epoch: epoch, Logger: quiet,
		FS: aio.OS(aio.NIO, aio.DefaultOptions())})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// writeJournal writes n 1 KiB records, one synced append each, and closes.
func writeJournal(t *testing.T, dir string, n int) {
	t.Helper()
	j := openDir(t, dir, 1)
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: uint64(i + 1), Type: 1, Data: bytes.Repeat([]byte{byte(i)}, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// segments returns the segment files of dir in order (used ones first;
// the pool files follow).
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, journal.DefaultPrefix+"-*."+journal.DefaultExt))
	sort.Strings(m)
	return m
}

// recordOffsets returns the offsets of the batch records of a segment.
func recordOffsets(t *testing.T, dir, path string) []int64 {
	t.Helper()
	var offs []int64
	_, err := journal.Scan(aio.OS(aio.NIO, aio.DefaultOptions()), dir, journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt},
		func(p string, _ uint64, off int64, _ []byte) error {
			if p == path {
				offs = append(offs, off)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return offs
}

func load(t *testing.T, dir string) (*journal.LoadResult, error) {
	t.Helper()
	j := openDir(t, dir, 1)
	res, err := j.Load(context.Background())
	j.Close()
	return res, err
}

func mutate(t *testing.T, path string, f func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantCorruption(t *testing.T, err error, file string, off int64, reason string) {
	t.Helper()
	var ce *journal.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *CorruptionError", err)
	}
	if filepath.Base(ce.File) != filepath.Base(file) || (off >= 0 && ce.Offset != off) || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("got %s:%d: %s; want %s:%d: ...%s...", ce.File, ce.Offset, ce.Reason, filepath.Base(file), off, reason)
	}
}

func TestDamage(t *testing.T) {
	const n = 200 // about 4 segments of 64 KiB
	tests := []struct {
		name string
		// damage returns the expected corruption (file, offset, reason) or
		// file "" for a load that must succeed with want records and a
		// warning containing reason.
		damage func(t *testing.T, dir string, segs []string) (file string, off int64, reason string, want int)
	}{
		{"clean", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			return "", 0, "", n
		}},
		{"bit flip in a sealed segment", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			offs := recordOffsets(t, dir, segs[1])
			mid := offs[len(offs)/2]
			mutate(t, segs[1], func(b []byte) []byte { b[mid+500] ^= 0x10; return b })
			return segs[1], mid, "in a sealed segment", 0
		}},
		{"bit flip in a sealed segment's header", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			mutate(t, segs[0], func(b []byte) []byte { b[20] ^= 1; return b })
			return segs[0], 0, "bad segment header", 0
		}},
		{"unknown header flag (a newer format) in a sealed segment", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			mutate(t, segs[0], func(b []byte) []byte {
				b[44] |= 0x80 // flags, with a valid header checksum
				binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], crc32.MakeTable(crc32.Castagnoli)))
				return b
			})
			return segs[0], 0, "unknown flags", 0
		}},
		{"bit flip vouched for by a later record", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			last := lastUsed(t, dir, segs)
			offs := recordOffsets(t, dir, last)
			victim := offs[len(offs)-3]
			// Remove the seal so the last segment is open, as after a crash.
			unseal(t, last)
			mutate(t, last, func(b []byte) []byte { b[victim+100] ^= 4; return b })
			return last, victim, "says the segment was durable up to", 0
		}},
		{"torn tail", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			last := lastUsed(t, dir, segs)
			offs := recordOffsets(t, dir, last)
			victim := offs[len(offs)-1]
			unseal(t, last)
			mutate(t, last, func(b []byte) []byte { clear(b[victim+512 : victim+1100]); return b })
			// The warning says what replay knows: a torn tail, or damage
			// to the last synced batch, which cannot be told apart.
			return "", victim, "unless the damage hit the last synced batch", n - 1
		}},
		{"torn tail with a lost sector before a later record", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			last := lastUsed(t, dir, segs)
			offs := recordOffsets(t, dir, last)
			victim := offs[len(offs)-2]
			unseal(t, last)
			// The last two records were not synced (watermark below both):
			// rewrite the last one's watermark by losing the record before it.
			mutate(t, last, func(b []byte) []byte { clear(b[victim : victim+16]); return b })
			// The last record says the segment was durable up to its own
			// start (synced appends), so this is corruption, not a torn tail.
			return last, victim, "says the segment was durable", 0
		}},
		{"missing segment", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			os.Remove(segs[1])
			return segs[2], 0, "gap in the segment sequence", 0
		}},
		{"short segment", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			os.Truncate(segs[1], 30000)
			return segs[1], 30000, "short segment", 0
		}},
		{"sealed segment lost its seal and tail", func(t *testing.T, dir string, segs []string) (string, int64, string, int) {
			offs := recordOffsets(t, dir, segs[1])
			last := offs[len(offs)-1]
			mutate(t, segs[1], func(b []byte) []byte { clear(b[last:]); return b })
			return segs[1], last, "sealed segment ends without a seal record", 0
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeJournal(t, dir, n)
			segs := segments(t, dir)
			if len(segs) < 4 {
				t.Fatalf("only %d segments", len(segs))
			}
			file, off, reason, want := tc.damage(t, dir, segs)
			res, err := load(t, dir)
			if file != "" {
				wantCorruption(t, err, file, off, reason)
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if len(res.Records) != want {
				t.Fatalf("loaded %d records, want %d", len(res.Records), want)
			}
			if reason != "" && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], reason)) {
				t.Fatalf("warnings %q, want one about %q", res.Warnings, reason)
			}
			// Loading sealed the damage: a second load is clean and equal.
			res2, err := load(t, dir)
			if err != nil || len(res2.Records) != want || len(res2.Warnings) != 0 {
				t.Fatalf("second load: %d records, warnings %q, err %v", len(res2.Records), res2.Warnings, err)
			}
		})
	}
}

// lastUsed returns the last segment holding records.
func lastUsed(t *testing.T, dir string, segs []string) string {
	t.Helper()
	for i := len(segs) - 1; i >= 0; i-- {
		if len(recordOffsets(t, dir, segs[i])) > 0 {
			return segs[i]
		}
	}
	t.Fatal("no segment has records")
	return ""
}

// unseal zeroes the seal record that Close wrote after the last record.
func unseal(t *testing.T, path string) {
	t.Helper()
	dir := filepath.Dir(path)
	res, err := journal.Scan(aio.OS(aio.NIO, aio.DefaultOptions()), dir, journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.LastSealed || res.Segments[len(res.Segments)-1].Path != path {
		t.Fatalf("%s is not the sealed last segment", path)
	}
	mutate(t, path, func(b []byte) []byte { clear(b[res.LastEnd : res.LastEnd+16]); return b })
}

// TestRecycledBytesNeverPass puts an old segment's bytes into the next
// (unused) segment file, header zeroed: none of them may come back.
//
// With keepHeader the old header stays too, as after a crash between the
// recycling rename and the zeroing of the header: the file is an unused
// leftover (a warning), not a damaged segment.
func TestRecycledBytesNeverPass(t *testing.T) {
	for _, keepHeader := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepHeader=%v", keepHeader), func(t *testing.T) { testRecycledBytes(t, keepHeader) })
	}
}

func testRecycledBytes(t *testing.T, keepHeader bool) {
	dir := t.TempDir()
	writeJournal(t, dir, 200)
	segs := segments(t, dir)
	old, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	res, err := journal.Scan(aio.OS(aio.NIO, aio.DefaultOptions()), dir, journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}, nil)
	if err != nil || len(res.Unused) == 0 {
		t.Fatalf("scan: %v, %d unused files", err, len(res.Unused))
	}
	if !keepHeader {
		clear(old[:journal.SegmentHeaderSize])
	}
	if err := os.WriteFile(res.Unused[0].Path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	j := openDir(t, dir, 1)
	lr0, err := j.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if keepHeader && (len(lr0.Warnings) != 1 || !strings.Contains(lr0.Warnings[0], "never acknowledged")) {
		t.Fatalf("warnings %q, want one about the leftover header", lr0.Warnings)
	}
	if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: 1000, Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	lr, err := load(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Records) != 201 {
		t.Fatalf("loaded %d records, want 201: stale bytes passed as records", len(lr.Records))
	}
}

func TestEpoch(t *testing.T) {
	dir := t.TempDir()
	for _, e := range []uint64{3, 7, 5} {
		j := openDir(t, dir, e)
		if _, err := j.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: e, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		j.Close()
	}
	res, err := load(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Epoch != 7 {
		t.Fatalf("Epoch %d, want 7 (the largest in a segment header)", res.Epoch)
	}
}

func TestTooLarge(t *testing.T) {
	j := openDir(t, t.TempDir(), 1)
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 1, Data: make([]byte, dmgSeg)}}, true, func(error) { t.Error("done called") })
	if !errors.Is(err, journal.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	// The refused add left no trace; an add that fills most of a segment works.
	if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: 1, Data: make([]byte, dmgSeg-1024)}); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedHeaderOfLastSegment: a bit flip in the header of the last
// used segment (or of the only one) is corruption, never "a segment that
// was never written": its records were acknowledged, and taking it for an
// unused file would drop them and recycle the file over them.
func TestDamagedHeaderOfLastSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		at   int // header byte flipped
	}{
		{"only segment, epoch byte", 5, 20},
		{"only segment, checksum byte", 5, 61},
		{"last of several, sequence byte", 200, 9},
		{"last of several, magic byte", 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeJournal(t, dir, tc.n)
			last := lastUsed(t, dir, segments(t, dir))
			mutate(t, last, func(b []byte) []byte { b[tc.at] ^= 0x40; return b })
			_, err := load(t, dir)
			wantCorruption(t, err, last, 0, "header")
			// Nothing was recycled over it: the bytes are still there.
			if _, err := load(t, dir); err == nil {
				t.Fatal("second load succeeded: the damaged segment was reused")
			}
		})
	}
}
