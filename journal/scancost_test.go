package journal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// Issue 22, item 5: replay and `tandem data verify` must take linear time
// and bounded memory on any input. A bad record followed by fake record
// headers every 16 bytes, each claiming a payload to the end of the file,
// took 26 s to verify at 4 MiB (every candidate's checksum covered the
// rest of the file); a sparse 2 GiB segment made verify allocate 2.1 GB
// (segments were read whole). These tests count the scan's work (bytes
// read, bytes checksummed) and its allocations instead of timing it.

var castagnoliTab = crc32.MakeTable(crc32.Castagnoli)

// segHeaderBytes returns a valid segment header (sequence seq, epoch 1,
// alignment 1) of a segment of size bytes.
func segHeaderBytes(seq, salt uint64, size int64) []byte {
	b := make([]byte, journal.SegmentHeaderSize)
	copy(b, "TNDJ")
	binary.LittleEndian.PutUint16(b[4:], 1)
	binary.LittleEndian.PutUint16(b[6:], journal.SegmentHeaderSize)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], 1)
	binary.LittleEndian.PutUint64(b[24:], salt)
	binary.LittleEndian.PutUint64(b[32:], uint64(size))
	binary.LittleEndian.PutUint32(b[40:], 1)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoliTab))
	return b
}

// seedOf is the record checksum seed of segment seq with salt.
func seedOf(seq, salt uint64) uint32 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:], seq)
	binary.LittleEndian.PutUint64(b[8:], salt)
	return crc32.Update(0, castagnoliTab, b[:])
}

// putBatch writes at b[off:] a valid batch record holding one add of id
// with data, carrying the synced watermark, and returns its size.
func putBatch(b []byte, off int, seed uint32, synced uint32, id uint64, data []byte) int {
	p := b[off+journal.RecordHeaderSize:]
	p[0], p[1] = byte(journal.KindAdd), 1
	n := 2
	n += binary.PutUvarint(p[n:], id)
	n += binary.PutUvarint(p[n:], 0)
	n += binary.PutUvarint(p[n:], uint64(len(data)))
	n += copy(p[n:], data)
	h := b[off:]
	binary.LittleEndian.PutUint32(h[4:], uint32(n))
	binary.LittleEndian.PutUint32(h[8:], synced)
	h[12], h[13], h[14], h[15] = 1, 0, 0, 0
	binary.LittleEndian.PutUint32(h[0:], crc32.Update(seed, castagnoliTab, h[4:journal.RecordHeaderSize+n]))
	return journal.RecordHeaderSize + n
}

const (
	craftSeq  = 1
	craftSalt = 0x5eed
)

// craftedSegment returns a segment of size bytes: a valid record, a bad
// one at the returned offset, then fake batch headers every spacing bytes
// (wrong checksums), each claiming a payload to the end of the segment.
// after, if not nil, writes more at the end.
func craftedSegment(size int64, spacing int, after func(b []byte, bad int)) ([]byte, int) {
	b := make([]byte, size)
	copy(b, segHeaderBytes(craftSeq, craftSalt, size))
	seed := seedOf(craftSeq, craftSalt)
	bad := journal.SegmentHeaderSize + putBatch(b, journal.SegmentHeaderSize, seed, 0, 1, []byte("acknowledged"))
	copy(b[bad:], "garbage, not a record header...")
	for off := bad + 32; off+journal.RecordHeaderSize <= int(size); off += spacing {
		binary.LittleEndian.PutUint32(b[off:], 0xdeadbeef)
		binary.LittleEndian.PutUint32(b[off+4:], uint32(int(size)-off-journal.RecordHeaderSize))
		b[off+12] = 1
	}
	if after != nil {
		after(b, bad)
	}
	return b, bad
}

func writeSegment(t *testing.T, dir string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, craftSeq))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var defaultNaming = journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}

// scanDir scans dir as `tandem data verify` does (every entry decoded).
func scanDir(t *testing.T, dir string) (*journal.ScanResult, error) {
	t.Helper()
	return journal.Scan(aio.OS(aio.NIO, aio.DefaultOptions()), dir, defaultNaming, func(_ string, _ uint64, _ int64, payload []byte) error {
		it := journal.NewEntryIter(payload)
		var e journal.Entry
		for {
			ok, err := it.Next(&e)
			if err != nil || !ok {
				return err
			}
		}
	})
}

// linearBudget fails t when a scan of n bytes did more than linear work.
func linearBudget(t *testing.T, what string, w journal.ScanWork, n int64) {
	t.Helper()
	t.Logf("%s: %d bytes: read %d, checksummed %d, %d candidates, %d waiting at most", what, n, w.BytesRead, w.CRCBytes, w.Candidates, w.MaxPending)
	if w.BytesRead > 6*n || w.CRCBytes > 24*n || w.Candidates > n/4+1 || w.Shifts > w.Candidates {
		t.Fatalf("%s: a scan of %d bytes did more than linear work: %+v", what, n, w)
	}
}

// TestScanFakeHeadersLinear: the crafted segment of the issue (a bad
// record, then a fake header every 16 bytes claiming the rest of the
// file), at two sizes: the work is within a linear budget and grows in
// proportion to the size (it grew with its square), and the tail is a
// torn tail (no fake passes), loaded the same way.
func TestScanFakeHeadersLinear(t *testing.T) {
	var work []journal.ScanWork
	sizes := []int64{1 << 20, 2 << 20}
	for _, size := range sizes {
		dir := t.TempDir()
		seg, bad := craftedSegment(size, 16, nil)
		writeSegment(t, dir, seg)
		res, err := scanDir(t, dir)
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		if !res.Torn || res.TornOffset != int64(bad) || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "cannot be told apart") {
			t.Fatalf("scan: torn %v at %d (bad record at %d), warnings %q", res.Torn, res.TornOffset, bad, res.Warnings)
		}
		linearBudget(t, "verify", res.Work, size)
		work = append(work, res.Work)
		// Load goes through the same scan.
		j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: size, Logger: quiet, CompactMinFiles: -1, FS: aio.OS(aio.NIO, aio.DefaultOptions())})
		if err != nil {
			t.Fatal(err)
		}
		lr, err := j.Load(context.Background())
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if len(lr.Records) != 1 || lr.Records[0].ID != 1 {
			t.Fatalf("load: %d records", len(lr.Records))
		}
		j.Close()
	}
	// Twice the size, about twice the work (quadratic: four times).
	if r := float64(work[1].CRCBytes) / float64(work[0].CRCBytes); r > 2.5 {
		t.Fatalf("checksummed bytes grew %.1f times for twice the size", r)
	}
	if r := float64(work[1].BytesRead) / float64(work[0].BytesRead); r > 2.5 {
		t.Fatalf("bytes read grew %.1f times for twice the size", r)
	}
}

// TestScanFindsValidRecordAfterFakes: the search past a bad record never
// drops a valid record that follows it silently, however many fake
// candidates cover it: one saying the segment was durable past the bad
// record makes the scan report corruption; one that does not is named in
// the torn tail's warning. Candidates that claim shorter payloads (checked
// at once) and distinct ends are covered too.
func TestScanFindsValidRecordAfterFakes(t *testing.T) {
	const size = 256 << 10
	seed := seedOf(craftSeq, craftSalt)
	for _, tc := range []struct {
		name    string
		synced  func(bad int) uint32
		short   bool // fakes claiming short payloads (checked at once), distinct ends
		corrupt bool
	}{
		{"durable past the bad record", func(bad int) uint32 { return uint32(bad + 100) }, false, true},
		{"not durable past it", func(bad int) uint32 { return uint32(bad) }, false, false},
		{"short fakes, durable past", func(bad int) uint32 { return uint32(bad + 100) }, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var at int
			seg, bad := craftedSegment(size, 16, func(b []byte, bad int) {
				if tc.short {
					for off := bad + 32; off+16 <= len(b); off += 16 {
						binary.LittleEndian.PutUint32(b[off+4:], uint32(off%40)) // ends everywhere
					}
				}
				// A valid record two thirds in, inside every long fake.
				at = len(b) * 2 / 3 &^ 15
				putBatch(b, at, seed, tc.synced(bad), 2, []byte("after the fakes"))
			})
			dir := t.TempDir()
			path := writeSegment(t, dir, seg)
			res, err := scanDir(t, dir)
			linearBudget(t, tc.name, res.Work, size)
			if tc.corrupt {
				wantCorruption(t, err, path, int64(bad), "says the segment was durable")
				return
			}
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			if !res.Torn || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "torn tail") {
				t.Fatalf("torn %v, warnings %q", res.Torn, res.Warnings)
			}
		})
	}
}

// TestScanTooManyCandidatesRefuses: when more overlapping candidates wait
// than the scan keeps (a crafted segment), one of those it could not check
// may be a record saying the segment was durable past the bad one: the
// scan reports corruption, never a torn tail.
func TestScanTooManyCandidatesRefuses(t *testing.T) {
	defer journal.SetMaxPending(100)()
	dir := t.TempDir()
	seg, bad := craftedSegment(64<<10, 16, nil)
	path := writeSegment(t, dir, seg)
	res, err := scanDir(t, dir)
	wantCorruption(t, err, path, int64(bad), "cannot tell a torn tail from damage")
	if res.Work.Unchecked == 0 || res.Work.MaxPending > 100 {
		t.Fatalf("work %+v: want unchecked candidates and at most 100 waiting", res.Work)
	}
	// Repair cuts there and says its count of the records after the cut
	// is a lower bound.
	actions, err := journal.Repair(aio.OS(aio.NIO, aio.DefaultOptions()), dir, defaultNaming)
	if err != nil || len(actions) != 1 || !strings.Contains(actions[0].What, "at least 0") {
		t.Fatalf("repair: %v, %+v", err, actions)
	}
}

// TestScanSparseSegmentBoundedMemory: a sparse 256 MiB segment (a header,
// one record, holes) is scanned, by verify and by load, with memory
// bounded by the scan's windows, not its size.
func TestScanSparseSegmentBoundedMemory(t *testing.T) {
	const size = 256 << 20
	dir := t.TempDir()
	path := filepath.Join(dir, journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, craftSeq))
	head := make([]byte, 4096)
	copy(head, segHeaderBytes(craftSeq, craftSalt, size))
	putBatch(head, journal.SegmentHeaderSize, seedOf(craftSeq, craftSalt), 0, 1, []byte("one record"))
	if err := os.WriteFile(path, head, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	var res *journal.ScanResult
	var err error
	allocs := heapAllocated(func() { res, err = scanDir(t, dir) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify of a sparse %d MiB segment allocated %d KiB, read %d MiB", size>>20, allocs>>10, res.Work.BytesRead>>20)
	if allocs > 8<<20 {
		t.Fatalf("verify of a sparse %d MiB segment allocated %d MiB", size>>20, allocs>>20)
	}
	linearBudget(t, "sparse", res.Work, size)
	allocs = heapAllocated(func() {
		j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet, CompactMinFiles: -1, FS: aio.OS(aio.NIO, aio.DefaultOptions())})
		if err != nil {
			t.Fatal(err)
		}
		lr, err := j.Load(context.Background())
		if err != nil || len(lr.Records) != 1 {
			t.Fatalf("load: %v", err)
		}
		j.Close()
	})
	if allocs > 16<<20 {
		t.Fatalf("load of a sparse %d MiB segment allocated %d MiB", size>>20, allocs>>20)
	}
}

// heapAllocated returns the bytes f allocated on the heap.
func heapAllocated(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// TestScanVerifyCraftedNoCorruptionMisread: the fakes' checksums are
// wrong; scanning with them cannot turn into a CorruptionError unless a
// valid record vouches for durability (guards the helpers above).
func TestScanCraftedHelpers(t *testing.T) {
	seg, bad := craftedSegment(8<<10, 16, nil)
	if bytes.Equal(seg[bad:bad+4], []byte{0, 0, 0, 0}) {
		t.Fatal("the bad record is zero: the crafted segment must start its tail with damage")
	}
	dir := t.TempDir()
	writeSegment(t, dir, seg)
	if _, err := scanDir(t, dir); err != nil {
		var ce *journal.CorruptionError
		if errors.As(err, &ce) {
			t.Fatalf("crafted segment reported corrupt: %v", err)
		}
		t.Fatal(err)
	}
}
