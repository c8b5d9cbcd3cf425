package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"strings"
	"testing"
)

func encodeForTest(entries []Entry, synced uint32, seed uint32) []byte {
	b := make([]byte, batchSize(entries))
	encodeBatch(b, entries, synced, seed)
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	seed := recordSeed(7, 99)
	tests := [][]Entry{
		nil,
		{{Kind: KindAdd, ID: 1, Type: 2, Data: []byte("hello")}},
		{{Kind: KindAddTx, ID: 1 << 63, TxID: 1<<64 - 1, Type: 255, Data: bytes.Repeat([]byte{0}, 300)},
			{Kind: KindDelete, ID: 5}, {Kind: KindPrepare, TxID: 3, Data: []byte("xid")}, {Kind: KindCommit, TxID: 3}},
	}
	for i, entries := range tests {
		b := encodeForTest(entries, 40, seed)
		h, err := decodeRecord(b, 100, seed)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if h.kind != recBatch || h.synced != 40 || int(h.length) != len(b)-RecordHeaderSize {
			t.Fatalf("case %d: header %+v", i, h)
		}
		r := entryReader{p: b[RecordHeaderSize:]}
		for k := 0; ; k++ {
			var e Entry
			ok, err := r.next(&e)
			if err != nil {
				t.Fatalf("case %d entry %d: %v", i, k, err)
			}
			if !ok {
				if k != len(entries) {
					t.Fatalf("case %d: %d entries decoded, want %d", i, k, len(entries))
				}
				break
			}
			w := entries[k]
			if e.Kind != w.Kind || e.ID != w.ID || e.TxID != w.TxID || e.Type != w.Type || !bytes.Equal(e.Data, w.Data) {
				t.Fatalf("case %d entry %d: %+v, want %+v", i, k, e, w)
			}
		}
		// Another segment's seed, a flipped bit, a watermark beyond the
		// record's offset: all refused.
		if _, err := decodeRecord(b, 100, recordSeed(8, 99)); !errors.Is(err, errRecChecksum) {
			t.Fatalf("case %d: other seed: %v", i, err)
		}
		b[len(b)-1] ^= 1
		if _, err := decodeRecord(b, 100, seed); err == nil {
			t.Fatalf("case %d: flipped bit accepted", i)
		}
		if _, err := decodeRecord(b, 39, seed); err == nil {
			t.Fatalf("case %d: watermark beyond offset accepted", i)
		}
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to the record and entry
// decoders: they must never panic, and whatever they accept must decode
// to entries within the record.
func FuzzDecodeRecord(f *testing.F) {
	seed := recordSeed(1, 2)
	f.Add(encodeForTest([]Entry{{Kind: KindAdd, ID: 1, Data: []byte("x")}}, 0, seed), 16)
	f.Add(encodeForTest([]Entry{{Kind: KindAddTx, ID: 300, TxID: 9, Data: make([]byte, 200)}, {Kind: KindCommit, TxID: 9}}, 64, seed), 128)
	f.Add(make([]byte, 16), 0)
	f.Add([]byte{1, 2, 3}, 5)
	f.Fuzz(func(t *testing.T, b []byte, off int) {
		if off < 0 {
			off = -off
		}
		h, err := decodeRecord(b, off, seed)
		// Also decode the payload as entries even when the CRC fails, so
		// the entry decoder sees arbitrary bytes.
		payload := b
		if err == nil {
			if int(h.length)+RecordHeaderSize > len(b) {
				t.Fatalf("accepted a record longer than its buffer")
			}
			payload = b[RecordHeaderSize : RecordHeaderSize+int(h.length)]
		}
		r := entryReader{p: payload}
		for range len(payload) + 1 {
			var e Entry
			ok, err := r.next(&e)
			if err != nil || !ok {
				return
			}
			if !e.Kind.Valid() || len(e.Data) > len(payload) {
				t.Fatalf("decoded an invalid entry %+v", e)
			}
		}
		t.Fatalf("entry decoder did not advance")
	})
}

// FuzzScanSegment replays arbitrary segment bytes after a valid header,
// as the last and as a sealed segment: no panic, any error is a
// *CorruptionError naming the file, and the scan stays within its time
// and memory budget for the input's size (checkScanBudget).
func FuzzScanSegment(f *testing.F) {
	h := segHeader{seq: 3, epoch: 1, salt: 42, size: 4096, align: 1, version: formatVersion}
	seed := h.seed()
	valid := encodeForTest([]Entry{{Kind: KindAdd, ID: 1, Data: []byte("a")}}, 0, seed)
	two := append(bytes.Clone(valid), encodeForTest([]Entry{{Kind: KindDelete, ID: 1}}, 64, seed)...)
	f.Add(valid)
	f.Add(two)
	f.Add(append(bytes.Clone(two), make([]byte, 16)...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0})
	// A bad record, then candidates every 16 bytes claiming the rest of
	// the segment (once quadratic), and then a valid record.
	f.Add(fakeHeaders(8<<10, 16, seed, encodeForTest([]Entry{{Kind: KindAdd, ID: 2, Data: []byte("b")}}, 64, seed)))
	shiftTables() // built once per process: not the input's cost
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1<<16 {
			return
		}
		h.size = uint64(SegmentHeaderSize + len(body))
		buf := make([]byte, h.size)
		h.encode(buf)
		copy(buf[SegmentHeaderSize:], body)
		sf := &segFile{path: "seg", seq: h.seq, hdr: h}
		for _, closed := range []bool{false, true} {
			l := newLoader()
			sc := newScanner(true)
			out, err := sc.segment(bytes.NewReader(buf), sf, closed, func(_ string, seq uint64, _ int64, payload []byte) error {
				r := entryReader{p: payload}
				for {
					var e Entry
					ok, err := r.next(&e)
					if err != nil || !ok {
						return err
					}
					l.apply(&e, seq)
				}
			})
			checkScanBudget(t, sc.work, int64(len(buf)))
			if err != nil {
				var ce *CorruptionError
				if !errors.As(err, &ce) || ce.File != "seg" || ce.Reason == "" {
					t.Fatalf("error %v is not a CorruptionError naming the file", err)
				}
				continue
			}
			if out.end < SegmentHeaderSize || out.end > int64(len(buf)) {
				t.Fatalf("end %d outside the segment", out.end)
			}
			l.finish()
		}
		// Memory: a scan without a visitor allocates its windows (each at
		// most the segment) and the waiting candidates, nothing more.
		allocs := allocated(func() {
			_, _ = newScanner(false).segment(bytes.NewReader(buf), sf, false, nil)
		})
		if limit := scanMemBudget(int64(len(buf))); allocs > limit {
			t.Fatalf("a scan of %d bytes allocated %d bytes, over its budget %d", len(buf), allocs, limit)
		}
	})
}

// fakeHeaders returns a segment body of n bytes: a bad record, then fake
// batch record headers every spacing bytes, each claiming a payload to
// the end of the body and carrying a wrong checksum, then tail.
func fakeHeaders(n, spacing int, seed uint32, tail []byte) []byte {
	b := make([]byte, n)
	copy(b, "not a record header")
	for off := 32; off+RecordHeaderSize <= n-len(tail); off += spacing {
		binary.LittleEndian.PutUint32(b[off:], 0xdeadbeef)
		binary.LittleEndian.PutUint32(b[off+4:], uint32(n-off-RecordHeaderSize))
		b[off+12] = recBatch
	}
	copy(b[n-len(tail):], tail)
	return b
}

// checkScanBudget fails t when a scan of n bytes did more work than a
// linear scan may: reads and checksums a bounded number of times each
// byte, a candidate at most every 4 bytes (a plausible header's last
// four bytes exclude the next three offsets), a shift per candidate.
func checkScanBudget(t testing.TB, w ScanWork, n int64) {
	t.Helper()
	switch {
	case w.BytesRead > 6*n+4*mainWindow:
		t.Fatalf("a scan of %d bytes read %d bytes, over 6 times its size", n, w.BytesRead)
	case w.CRCBytes > 24*n:
		t.Fatalf("a scan of %d bytes checksummed %d bytes, over 24 times its size", n, w.CRCBytes)
	case w.Candidates > n/4+1:
		t.Fatalf("a scan of %d bytes tried %d candidates, more than one per 4 bytes", n, w.Candidates)
	case w.Shifts > w.Candidates:
		t.Fatalf("%d shifts for %d candidates", w.Shifts, w.Candidates)
	}
}

// scanMemBudget is what a scan of a segment of n bytes may allocate: its
// three windows (none larger than the segment) and the waiting
// candidates (16 bytes each, one per 4 bytes at most, twice for the
// slice's growth), plus a constant.
func scanMemBudget(n int64) uint64 {
	return uint64(min(n, mainWindow)+2*min(n, aheadWindow)+8*n) + 64<<10
}

// allocated returns the bytes f allocated on the heap.
func allocated(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// FuzzParseControl feeds arbitrary text to the compaction control file
// parser: no panic, and what it accepts has a valid checksum line and
// only remove and rename lines (with a salt each in version 2, none in
// version 1).
func FuzzParseControl(f *testing.F) {
	good := "tandem-compact 1\nremove 3\nrename 4\n"
	f.Add(good + fmt.Sprintf("crc %08x\n", crc32.Checksum([]byte(good), castagnoli)))
	f.Add(encodeControl(3, 5, 7, []uint64{1, 1 << 63}))
	f.Add("tandem-compact 1\ncrc 00000000\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		removes, renames, err := parseControl(text)
		if err != nil {
			return
		}
		version := "1"
		if strings.HasPrefix(text, "tandem-compact 2\n") {
			version = "2"
		}
		var b strings.Builder
		b.WriteString("tandem-compact " + version + "\n")
		for _, s := range removes {
			fmt.Fprintf(&b, "remove %d\n", s)
		}
		for _, r := range renames {
			if r.hasSalt != (version == "2") {
				t.Fatalf("version %s accepted rename %+v", version, r)
			}
			if r.hasSalt {
				fmt.Fprintf(&b, "rename %d %016x\n", r.seq, r.salt)
			} else {
				fmt.Fprintf(&b, "rename %d\n", r.seq)
			}
		}
		body := b.String()
		r2, n2, err := parseControl(body + fmt.Sprintf("crc %08x\n", crc32.Checksum([]byte(body), castagnoli)))
		if err != nil || len(r2) != len(removes) || len(n2) != len(renames) {
			t.Fatalf("accepted %q but not its re-encoding: %v", text, err)
		}
	})
}
