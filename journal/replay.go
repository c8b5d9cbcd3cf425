package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/tandemmq/tandem/aio"
)

// RecordVisitor receives each valid batch record during a scan: the
// segment's path and sequence, the record's offset and its payload (the
// encoded entries; see EntryIter). The payload aliases the scan's read
// buffer of the segment. A visitor error stops the scan.
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
	// Bytes is the number of bytes read.
	Bytes int64
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
// means the real file system.
func Scan(fs aio.FS, dir string, nm Naming, visit RecordVisitor) (*ScanResult, error) {
	if fs == nil {
		fs = aio.OS(aio.NIO, aio.DefaultOptions())
	}
	segs, _, err := listSegments(fs, dir, nm)
	if err != nil {
		return nil, err
	}
	res := &ScanResult{}
	if names, err := fs.List(dir); err == nil && slices.Contains(names, nm.Prefix+".compact") {
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
			at, err := recordsUnderBadHeader(fs, s)
			if err != nil {
				return res, err
			}
			if at > 0 {
				return res, &CorruptionError{File: s.path, Offset: 0, Reason: fmt.Sprintf(
					"damaged segment header (%v) of a written segment: it holds a valid record at offset %d", s.hdrErr, at)}
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
		buf, err := readAll(fs, s.path, int64(s.hdr.size))
		if err != nil {
			return res, err
		}
		res.Bytes += int64(len(buf))
		out, err := scanSegment(buf, s, i < last, visit)
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
// from its name, salt as stored in its bad header) and returns its offset,
// or 0. A file after the last used segment whose header is not zero but
// bad is either left from an interrupted recycling (its header, valid,
// names the file's previous sequence; its records carry that sequence) or
// a written segment whose header was damaged later: its records, seeded
// with this sequence and the salt, are still valid. A torn first write
// leaves the header zero (the header and the first record share a
// sector, written at once), so it never gets here.
func recordsUnderBadHeader(fs aio.FS, s *segFile) (int, error) {
	// The first record of a written segment follows the header; look a
	// little further in case it is damaged too, but never read a huge
	// stray file whole.
	size := min(s.size, badHeaderScan)
	if size <= SegmentHeaderSize {
		return 0, nil
	}
	buf, err := readAll(fs, s.path, size)
	if err != nil {
		return 0, err
	}
	_, at, found := scanAhead(buf, SegmentHeaderSize, recordSeed(s.seq, s.rawSalt))
	if !found {
		return 0, nil
	}
	return at, nil
}

// badHeaderScan bounds how much of a file with a bad header replay reads
// looking for its records.
const badHeaderScan = 16 << 20

type segScan struct {
	end    int64 // offset after the last valid record (of the seal when sealed)
	sealed bool
	torn   string // warning text when the segment ends with a torn tail
}

// scanSegment decodes the records of one segment (buf holds the whole
// segment). closed means a later segment exists: the segment was made
// durable before it, so it must end with a seal record and any damage is
// corruption. In the last segment, a bad or zeroed record is a torn tail
// unless a later valid record says the segment was durable past it.
func scanSegment(buf []byte, s *segFile, closed bool, visit RecordVisitor) (segScan, error) {
	seed := s.hdr.seed()
	p := SegmentHeaderSize
	for {
		var (
			h   recHeader
			err error
		)
		if p+RecordHeaderSize > len(buf) {
			err = fmt.Errorf("%w: segment ends without a seal record", errRecBad)
		} else {
			h, err = decodeRecord(buf[p:], p, seed)
		}
		if err == nil {
			switch h.kind {
			case recSeal:
				return segScan{end: int64(p), sealed: true}, nil
			case recBatch:
				if visit != nil {
					if verr := visit(s.path, s.seq, int64(p), buf[p+RecordHeaderSize:p+RecordHeaderSize+int(h.length)]); verr != nil {
						var ce *CorruptionError
						if errors.As(verr, &ce) {
							return segScan{}, verr
						}
						return segScan{}, &CorruptionError{File: s.path, Offset: int64(p), Reason: verr.Error()}
					}
				}
			}
			p += RecordHeaderSize + int(h.length)
			continue
		}
		zero := errors.Is(err, errRecZero)
		maxW, at, found := scanAhead(buf, p+1, seed)
		switch {
		case closed && zero && !found:
			return segScan{}, &CorruptionError{File: s.path, Offset: int64(p),
				Reason: "sealed segment ends without a seal record: its last writes were lost"}
		case closed && zero:
			return segScan{}, &CorruptionError{File: s.path, Offset: int64(p),
				Reason: fmt.Sprintf("zeroed bytes in a sealed segment before a valid record at offset %d", at)}
		case closed:
			return segScan{}, &CorruptionError{File: s.path, Offset: int64(p), Reason: fmt.Sprintf("%v in a sealed segment", err)}
		case found && int(maxW) > p:
			return segScan{}, &CorruptionError{File: s.path, Offset: int64(p),
				Reason: fmt.Sprintf("%v; the record at offset %d says the segment was durable up to offset %d", err, at, maxW)}
		case zero && !found:
			return segScan{end: int64(p)}, nil
		}
		reason := err.Error()
		if zero {
			reason = fmt.Sprintf("zeroed bytes before an unacknowledged record at offset %d", at)
		}
		return segScan{end: int64(p), torn: fmt.Sprintf("%s:%d: torn tail (%s): truncated there; no acknowledged record was lost", s.path, p, reason)}, nil
	}
}

// scanAhead looks for valid records at or after from (after a bad or
// zeroed one) and returns the largest synced watermark among them and
// the offset of the record carrying it.
func scanAhead(buf []byte, from int, seed uint32) (maxW uint32, at int, found bool) {
	checked := from // candidates below checked were tried
	q := from
	for q+RecordHeaderSize <= len(buf) {
		nz := nextNonZero(buf, q)
		if nz < 0 {
			break
		}
		// A record header holding a non-zero byte at nz starts at most 15
		// bytes before it.
		c := max(checked, nz-RecordHeaderSize+1)
		next := nz + 1
		for ; c <= nz && c+RecordHeaderSize <= len(buf); c++ {
			h, err := decodeRecord(buf[c:], c, seed)
			if err != nil {
				continue
			}
			if !found || h.synced >= maxW {
				maxW, at = h.synced, c
			}
			found = true
			next = c + RecordHeaderSize + int(h.length)
			if h.kind == recPad {
				next = c + RecordHeaderSize
			}
			break
		}
		checked = max(c+1, next)
		q = max(next, checked)
	}
	return maxW, at, found
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
