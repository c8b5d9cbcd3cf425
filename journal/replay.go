package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/tandemmq/tandem/aio"
)

// RecordVisitor receives each valid batch record during a scan: the
// segment's path and sequence, the record's offset and its payload (the
// encoded entries; see EntryIter). The payload is valid only during the
// call: the scan reuses its read buffers. A visitor error stops the scan.
type RecordVisitor func(path string, seq uint64, off int64, payload []byte) error

// ScanResult describes a journal directory after a scan.
type ScanResult struct {
	// Segments are the used segments in order (path, sequence, epoch).
	Segments []SegmentInfo
	// Epoch is the largest epoch in a used segment's header.
	Epoch uint64
	// MaxID is the largest max ID in a used segment's header: IDs used
	// before reclaimed segments.
	MaxID uint64
	// Warnings are repaired or harmless conditions (a torn tail).
	Warnings []string
	// Bytes is the number of bytes of the used segments' record chains
	// read (Work.BytesRead counts every read).
	Bytes int64
	// Work counts what the scan did (reads, checksums): linear in the
	// journal's size on any input.
	Work ScanWork
	// Torn is set when the last segment ends with a torn tail at TornOffset.
	Torn       bool
	TornOffset int64
	// LastEnd is the end of the last valid record of the last segment,
	// LastSealed whether a seal record follows it.
	LastEnd    int64
	LastSealed bool
	// Unused are the segment files after the last used one (prepared,
	// never written, or whose first write was torn), in sequence order.
	Unused []SegmentInfo

	// Corruption is the first damage found (nil when clean). Scan stops at
	// it unless the caller asked to continue.
	Corruption *CorruptionError
}

// SegmentInfo is a segment file found by a scan.
type SegmentInfo struct {
	Path  string
	Seq   uint64
	Epoch uint64
	Size  int64 // file size
	Align int
	// Compacted is set for a segment written by compaction: the rewritten
	// prefix ended right after the last such segment.
	Compacted bool
}

// Scan reads the journal named nm in dir in sequence order, calls visit
// for each valid batch record, and tells a torn tail (Warnings, Torn) from
// corruption (returned as *CorruptionError). It never writes. A nil fs
// means the real file system. It reads each segment through bounded
// windows, and its time is linear in the journal's size on any input.
func Scan(fs aio.FS, dir string, nm Naming, visit RecordVisitor) (*ScanResult, error) {
	return newScanner(false).scan(fs, dir, nm, visit)
}

// scanner holds a scan's readers and counters. With retain (the loader)
// the payloads given to the visitor stay valid after the call: each read
// of the record chain goes into a new buffer.
type scanner struct {
	work ScanWork
	main segReader // the record chain
	// The search after a bad record: the candidates' headers, and the
	// running checksum (see crcshift.go).
	find, sum segReader
}

func newScanner(retain bool) *scanner {
	sc := &scanner{}
	sc.main = segReader{window: mainWindow, retain: retain, work: &sc.work}
	sc.find = segReader{window: aheadWindow, work: &sc.work}
	sc.sum = segReader{window: aheadWindow, work: &sc.work}
	return sc
}

func (sc *scanner) scan(fs aio.FS, dir string, nm Naming, visit RecordVisitor) (*ScanResult, error) {
	if fs == nil {
		fs = aio.OS(aio.NIO, aio.DefaultOptions())
	}
	segs, _, err := listSegments(fs, dir, nm)
	if err != nil {
		return nil, err
	}
	res := &ScanResult{}
	defer func() { res.Work = sc.work }()
	if names, err := fs.List(dir); err == nil && slices.Contains(names, nm.Prefix+".compact") {
		have := map[string]bool{}
		for _, n := range names {
			have[n] = true
		}
		if _, _, err := readControl(fs, dir, nm, have); err != nil {
			return res, err // what the next load would refuse
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: an interrupted compaction is pending; the next load finishes it (until then the segments mix old and rewritten records)",
			filepath.Join(dir, nm.Prefix+".compact")))
	}
	last := -1
	for i := range segs {
		if segs[i].used() {
			last = i
		}
	}
	for i := last + 1; i < len(segs); i++ {
		s := &segs[i]
		if !errors.Is(s.hdrErr, errHeaderZero) {
			ah, err := sc.recordsUnderBadHeader(fs, s)
			if err != nil {
				return res, err
			}
			switch {
			case ah.found:
				return res, &CorruptionError{File: s.path, Offset: 0, Reason: fmt.Sprintf(
					"damaged segment header (%v) of a written segment: it holds a valid record at offset %d", s.hdrErr, ah.first)}
			case ah.unchecked > 0:
				return res, &CorruptionError{File: s.path, Offset: 0, Reason: fmt.Sprintf(
					"damaged segment header (%v): %d candidate records after it could not be checked (more than %d overlap), so it cannot be told from a written segment",
					s.hdrErr, ah.unchecked, maxPending)}
			}
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s:0: segment header torn (%v): the segment was never acknowledged, ignored", s.path, s.hdrErr))
		}
		res.Unused = append(res.Unused, SegmentInfo{Path: s.path, Seq: s.seq, Size: s.size})
	}
	for i := 0; i <= last; i++ {
		s := &segs[i]
		if !s.used() {
			return res, &CorruptionError{File: s.path, Offset: 0, Reason: fmt.Sprintf("segment before the last one is not usable: %v", s.hdrErr)}
		}
		if i > 0 && s.seq != segs[i-1].seq+1 {
			return res, &CorruptionError{File: s.path, Offset: 0,
				Reason: fmt.Sprintf("gap in the segment sequence: segment %d follows %d", s.seq, segs[i-1].seq)}
		}
		if s.size < int64(s.hdr.size) {
			return res, &CorruptionError{File: s.path, Offset: s.size,
				Reason: fmt.Sprintf("short segment: %d bytes, its header says %d", s.size, s.hdr.size)}
		}
		res.Segments = append(res.Segments, SegmentInfo{Path: s.path, Seq: s.seq, Epoch: s.hdr.epoch, Size: s.size, Align: int(s.hdr.align),
			Compacted: s.hdr.flags&segFlagCompacted != 0})
		res.Epoch = max(res.Epoch, s.hdr.epoch)
		res.MaxID = max(res.MaxID, s.hdr.maxID)
		f, err := fs.Open(s.path)
		if err != nil {
			return res, fmt.Errorf("journal: open %s: %w", s.path, err)
		}
		read := sc.main.read
		out, err := sc.segment(f, s, i < last, visit)
		f.Close()
		res.Bytes += sc.main.read - read
		if err != nil {
			return res, err
		}
		if i == last {
			res.LastEnd, res.LastSealed = out.end, out.sealed
			if out.torn != "" {
				res.Torn, res.TornOffset = true, out.end
				res.Warnings = append(res.Warnings, out.torn)
			}
		}
	}
	return res, nil
}

// recordsUnderBadHeader looks for a valid record of segment s (sequence
// from its name, salt as stored in its bad header). A file after the last
// used segment whose header is not zero but bad is either left from an
// interrupted recycling (its header, valid, names the file's previous
// sequence; its records carry that sequence) or a written segment whose
// header was damaged later: its records, seeded with this sequence and
// the salt, are still valid. A torn first write leaves the header zero
// (the header and the first record share a sector, written at once), so
// it never gets here.
func (sc *scanner) recordsUnderBadHeader(fs aio.FS, s *segFile) (aheadResult, error) {
	end := min(s.size, MaxSegmentSize)
	if end <= SegmentHeaderSize {
		return aheadResult{}, nil
	}
	f, err := fs.Open(s.path)
	if err != nil {
		return aheadResult{}, fmt.Errorf("journal: open %s: %w", s.path, err)
	}
	defer f.Close()
	return sc.ahead(f, s.path, SegmentHeaderSize, end, recordSeed(s.seq, s.rawSalt), func(int64, recHeader) bool { return true })
}

type segScan struct {
	end    int64 // offset after the last valid record (of the seal when sealed)
	sealed bool
	torn   string // warning text when the segment ends with a torn tail
}

// segment decodes the records of one segment, read from src through
// bounded windows. closed means a later segment exists: the segment was
// made durable before it, so it must end with a seal record and any
// damage is corruption. In the last segment, a bad or zeroed record is a
// torn tail unless a later valid record says the segment was durable past
// it.
func (sc *scanner) segment(src io.ReaderAt, s *segFile, closed bool, visit RecordVisitor) (segScan, error) {
	seed := s.hdr.seed()
	end := int64(s.hdr.size)
	rd := &sc.main
	rd.reset(src, s.path, end)
	p := int64(SegmentHeaderSize)
	for {
		var (
			h   recHeader
			err error
		)
		if p+RecordHeaderSize > end {
			err = fmt.Errorf("%w: segment ends without a seal record", errRecBad)
		} else {
			var ioErr error
			h, err, ioErr = sc.checkRecord(src, s.path, p, end, seed)
			if ioErr != nil {
				return segScan{}, ioErr
			}
		}
		if err == nil {
			switch h.kind {
			case recSeal:
				return segScan{end: p, sealed: true}, nil
			case recBatch:
				if visit != nil {
					payload, rerr := rd.at(p+RecordHeaderSize, int(h.length))
					if rerr != nil {
						return segScan{}, rerr
					}
					if verr := visit(s.path, s.seq, p, payload); verr != nil {
						var ce *CorruptionError
						if errors.As(verr, &ce) {
							return segScan{}, verr
						}
						return segScan{}, &CorruptionError{File: s.path, Offset: p, Reason: verr.Error()}
					}
				}
			}
			p += RecordHeaderSize + int64(h.length)
			continue
		}
		zero := errors.Is(err, errRecZero)
		// Stop at the first valid record that decides: any, in a sealed
		// segment (damage there is corruption); one that says the segment
		// was durable past p, in the last one.
		ah, aerr := sc.ahead(src, s.path, p+1, end, seed, func(_ int64, rh recHeader) bool {
			return closed || int64(rh.synced) > p
		})
		if aerr != nil {
			return segScan{}, aerr
		}
		unchecked := ""
		if ah.unchecked > 0 {
			unchecked = fmt.Sprintf("; %d candidate records after it could not be checked (more than %d overlap: a crafted segment?)", ah.unchecked, maxPending)
		}
		switch {
		case closed && zero && !ah.found:
			return segScan{}, &CorruptionError{File: s.path, Offset: p,
				Reason: "sealed segment ends without a seal record: its last writes were lost" + unchecked}
		case closed && zero:
			return segScan{}, &CorruptionError{File: s.path, Offset: p,
				Reason: fmt.Sprintf("zeroed bytes in a sealed segment before a valid record at offset %d", ah.at)}
		case closed:
			return segScan{}, &CorruptionError{File: s.path, Offset: p, Reason: fmt.Sprintf("%v in a sealed segment", err)}
		case ah.found && int64(ah.maxW) > p:
			return segScan{}, &CorruptionError{File: s.path, Offset: p,
				Reason: fmt.Sprintf("%v; the record at offset %d says the segment was durable up to offset %d", err, ah.at, ah.maxW)}
		case ah.unchecked > 0:
			// A record among those not checked may say the segment was
			// durable past p: never call this a torn tail.
			what := err.Error()
			if zero {
				what = "zeroed record header"
			}
			return segScan{}, &CorruptionError{File: s.path, Offset: p,
				Reason: fmt.Sprintf("%s: cannot tell a torn tail from damage%s", what, unchecked)}
		case zero && !ah.found:
			return segScan{end: p}, nil
		}
		reason := err.Error()
		if zero {
			reason = fmt.Sprintf("zeroed bytes before a record at offset %d", ah.at)
		}
		// No later record says how far the segment was durable beyond p:
		// the tail was torn by a crash (never acknowledged) or damaged
		// later, and damage to the last synced batch looks the same.
		return segScan{end: p, torn: fmt.Sprintf(
			"%s:%d: torn tail (%s): truncated there; the records from there on were never acknowledged, unless the damage hit the last synced batch: no later record says how far the segment was durable, so the two cannot be told apart",
			s.path, p, reason)}, nil
	}
}

// checkRecord checks the record at p of a segment ending at end: its
// header, then its checksum (through the chain's window when it fits,
// else streamed through the search's reader, so that a bad record
// claiming a huge length costs reads, never memory). recErr is a bad or
// zeroed record, ioErr a read error.
func (sc *scanner) checkRecord(src io.ReaderAt, path string, p, end int64, seed uint32) (h recHeader, recErr, ioErr error) {
	hb, err := sc.main.at(p, RecordHeaderSize)
	if err != nil {
		return h, nil, err
	}
	h, crc, recErr := decodeRecHeader(hb, p, end-p)
	if recErr != nil {
		return h, recErr, nil
	}
	n := RecordHeaderSize - 4 + h.crcLen()
	var got uint32
	if n+4 <= mainWindow {
		b, err := sc.main.at(p+4, n)
		if err != nil {
			return h, nil, err
		}
		got = sc.work.crc(seed, b)
	} else {
		rd := &sc.sum
		rd.reset(src, path, end)
		got = seed
		for off, stop := p+4, p+4+int64(n); off < stop; {
			b, err := rd.at(off, int(min(int64(rd.window), stop-off)))
			if err != nil {
				return h, nil, err
			}
			got = sc.work.crc(got, b)
			off += int64(len(b))
		}
	}
	if got != crc {
		return h, fmt.Errorf("%w (stored %08x, computed %08x)", errRecChecksum, crc, got), nil
	}
	return h, nil, nil
}

// aheadResult is what ahead found after a bad or zeroed record.
type aheadResult struct {
	found bool
	first int64  // offset of the first valid record found
	maxW  uint32 // the largest synced watermark among the valid records found
	at    int64  // offset of the record carrying it
	// batches counts the valid batch records found.
	batches int
	// unchecked counts candidates that could not be checked: valid
	// records may have been missed.
	unchecked int64
}

// maxPending bounds the candidates that wait for their end at once (16
// bytes each). Only overlapping candidates wait together, and at most one
// of them can be a record the writer wrote; so many overlap only in a
// crafted segment. A variable for tests.
var maxPending = 1 << 20

// directMax is the longest payload whose checksum the search computes at
// once: a longer candidate waits for the running checksum to reach its
// end (one shift), so overlapping candidates never make it checksum the
// same bytes again and again.
const directMax = 64

// pendingRec is a candidate batch record waiting for the running
// checksum to reach its end (see crcshift.go); offsets fit in 32 bits
// (MaxSegmentSize).
type pendingRec struct {
	end    uint32
	want   uint32 // the running checksum at end when the record is valid
	off    uint32
	synced uint32
}

// ahead looks for valid records of seed in [from, end) of src (after a
// bad or zeroed record) and calls stop for each, in the order of their
// ends; stop returning true ends the search. It finds the same records
// as trying every offset in turn, in linear time: a candidate whose
// header is plausible and whose payload is short is checked at once;
// a longer one waits, with the checksum it must have, until the running
// checksum of the bytes from a common origin reaches its end, so each
// byte is checksummed once however many candidates cover it. Candidates
// overlapping a valid record are dropped (the writer's records never
// overlap). Memory is the readers' windows and the waiting candidates
// (at most maxPending; more are counted as unchecked).
func (sc *scanner) ahead(src io.ReaderAt, path string, from, end int64, seed uint32, stop func(off int64, h recHeader) bool) (aheadResult, error) {
	var res aheadResult
	rd, sum := &sc.find, &sc.sum
	rd.reset(src, path, end)
	sum.reset(src, path, end)
	var (
		heap    []pendingRec
		origin  = int64(-1) // the running checksum's origin; -1: none (nothing waits)
		qpos    int64
		q       uint32
		stopped bool
	)
	advance := func(to int64) error {
		for qpos < to {
			b, err := sum.next(qpos, int(min(int64(sum.window), to-qpos)))
			if err != nil {
				return err
			}
			sc.work.CRCBytes += int64(len(b))
			q = crcRaw(q, b)
			qpos += int64(len(b))
		}
		return nil
	}
	valid := func(off int64, h recHeader) {
		if !res.found || h.synced >= res.maxW {
			res.maxW, res.at = h.synced, off
		}
		if !res.found {
			res.first = off
		}
		res.found = true
		if h.kind == recBatch {
			res.batches++
		}
		heap, origin = heap[:0], -1 // every waiting candidate overlaps it
		stopped = stop(off, h)
	}
	// drain checks the waiting candidates that end at or before limit,
	// and returns the end of a valid one (0 if none).
	drain := func(limit int64) (int64, error) {
		for len(heap) > 0 && int64(heap[0].end) <= limit {
			c := heapPop(&heap)
			if err := advance(int64(c.end)); err != nil {
				return 0, err
			}
			if q == c.want {
				valid(int64(c.off), recHeader{kind: recBatch, synced: c.synced})
				return int64(c.end), nil
			}
		}
		if len(heap) == 0 {
			origin = -1
		}
		return 0, nil
	}
	c := from
	for c+RecordHeaderSize <= end && !stopped {
		// A header holding a non-zero byte at nz starts at most 15 bytes
		// before it; all-zero headers are not records.
		nz, err := rd.nextNonZero(c)
		if err != nil {
			return res, err
		}
		if nz < 0 {
			break
		}
		c = max(c, nz-RecordHeaderSize+1)
		if c+RecordHeaderSize > end {
			break
		}
		e, err := drain(c + 4)
		if err != nil {
			return res, err
		}
		if stopped {
			break
		}
		if e > c {
			c = e // c starts inside the valid record
			continue
		}
		hb, err := rd.at(c, RecordHeaderSize)
		if err != nil {
			return res, err
		}
		if !plausibleHeader(hb, c, end-c) {
			c++
			continue
		}
		h, crc, herr := decodeRecHeader(hb, c, end-c)
		if herr != nil {
			c++ // cannot happen: plausibleHeader checked the same
			continue
		}
		sc.work.Candidates++
		if n := h.crcLen(); n <= directMax { // every seal and padding record
			b, err := rd.at(c+4, RecordHeaderSize-4+n)
			if err != nil {
				return res, err
			}
			if sc.work.crc(seed, b) == crc {
				valid(c, h)
				c += RecordHeaderSize + int64(n) // a padding record's zeros are searched too
				continue
			}
			c++
			continue
		}
		if len(heap) >= maxPending {
			res.unchecked++
			c++
			continue
		}
		if origin < 0 {
			origin, qpos, q = c+4, c+4, 0
		}
		if err := advance(c + 4); err != nil {
			return res, err
		}
		recEnd := c + RecordHeaderSize + int64(h.length)
		sc.work.Shifts++
		heapPush(&heap, pendingRec{end: uint32(recEnd), want: ^crc ^ crcShift(^seed^q, recEnd-c-4), off: uint32(c), synced: h.synced})
		sc.work.MaxPending = max(sc.work.MaxPending, len(heap))
		c++
	}
	if !stopped {
		if _, err := drain(end); err != nil {
			return res, err
		}
	}
	sc.work.Unchecked += res.unchecked
	return res, nil
}

// heapPush and heapPop keep h a min-heap by end.
func heapPush(h *[]pendingRec, x pendingRec) {
	*h = append(*h, x)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].end <= a[i].end {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func heapPop(h *[]pendingRec) pendingRec {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && a[l].end < a[m].end {
			m = l
		}
		if r := l + 1; r < n && a[r].end < a[m].end {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// nextNonZero returns the index of the first non-zero byte at or after i,
// or -1.
func nextNonZero(b []byte, i int) int {
	for i < len(b) && i&7 != 0 {
		if b[i] != 0 {
			return i
		}
		i++
	}
	for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == 0 {
		i += 8
	}
	for ; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// EntryIter iterates over the entries of a batch payload given to a
// RecordVisitor. Entry data aliases the payload.
type EntryIter struct{ r entryReader }

// NewEntryIter returns an iterator over payload's entries.
func NewEntryIter(payload []byte) EntryIter { return EntryIter{r: entryReader{p: payload}} }

// Next decodes the next entry into e; false at the end. An error means the
// payload is malformed.
func (it *EntryIter) Next(e *Entry) (bool, error) { return it.r.next(e) }
