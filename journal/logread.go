package journal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/tandemmq/tandem/aio"
)

// logWindow is how much a LogReader reads ahead at once (more when one
// record is larger).
const logWindow = 256 << 10

// LogReader reads a journal's batch records in order from a position up
// to the durable end (log mode; see log.go). It holds one segment file
// open and a window of it in memory. Not safe for concurrent use.
type LogReader struct {
	j   *FileJournal
	pos Position // the next record (or the segment to open, at offset 0)

	f    aio.PlainFile
	fSeq uint64
	hdr  segHeader
	seed uint32
	size int64

	buf  []byte
	base int64 // file offset of buf[0]
}

// NewLogReader returns a reader positioned at from: a position a
// LogVisitor or the reader itself gave out, or offset 0 of a segment (its
// first record). The zero Position means the oldest segment kept.
func (j *FileJournal) NewLogReader(from Position) *LogReader {
	if from.Seq == 0 {
		from = Position{Seq: j.Oldest()}
	}
	return &LogReader{j: j, pos: from}
}

// Position returns the position of the next record the reader returns.
func (r *LogReader) Position() Position { return r.pos }

// Next returns the next batch record: its position and its payload (the
// encoded entries, valid until the next call). It returns io.EOF at the
// durable end (call it again once more is durable), ErrResyncNeeded when
// the segment to read was reclaimed, and a *CorruptionError for a record
// that does not check.
func (r *LogReader) Next() (Position, []byte, error) {
	for {
		end := r.j.DurableEnd()
		if r.pos.Seq > end.Seq || r.pos.Seq == end.Seq && r.pos.Offset >= end.Offset {
			return r.pos, nil, io.EOF
		}
		if r.f == nil || r.fSeq != r.pos.Seq {
			if err := r.open(r.pos.Seq); err != nil {
				return r.pos, nil, err
			}
		}
		if r.pos.Offset < SegmentHeaderSize {
			r.pos.Offset = SegmentHeaderSize
			continue
		}
		limit := r.size
		if r.pos.Seq == end.Seq {
			limit = end.Offset
		}
		off := r.pos.Offset
		if off+RecordHeaderSize > limit {
			return r.pos, nil, r.corrupt(off, fmt.Errorf("position not at a record boundary before the durable end %d", limit))
		}
		hb, err := r.at(off, RecordHeaderSize, limit)
		if err != nil {
			return r.pos, nil, err
		}
		h, crc, err := decodeRecHeader(hb, off, r.size-off)
		if err != nil {
			return r.pos, nil, r.corrupt(off, err)
		}
		next := off + RecordHeaderSize + int64(h.length)
		if next > limit {
			return r.pos, nil, r.corrupt(off, fmt.Errorf("record of %d bytes runs past the durable end %d", h.length, limit))
		}
		rec, err := r.at(off, RecordHeaderSize+int(h.length), limit)
		if err != nil {
			return r.pos, nil, err
		}
		if got := crcUpdate(r.seed, rec[4:RecordHeaderSize+h.crcLen()]); got != crc {
			return r.pos, nil, r.corrupt(off, fmt.Errorf("%w (stored %08x, computed %08x)", errRecChecksum, crc, got))
		}
		switch h.kind {
		case recSeal:
			r.pos = Position{Seq: r.pos.Seq + 1}
		case recPad:
			r.pos.Offset = next
		default:
			at := r.pos
			r.pos.Offset = next
			return at, rec[RecordHeaderSize:], nil
		}
	}
}

// ReadRecord returns the payload of the batch record at pos (a position a
// LogVisitor or a LogReader gave out), checked, in a new buffer.
func (j *FileJournal) ReadRecord(pos Position) ([]byte, error) {
	r := &LogReader{j: j, pos: pos}
	defer r.Close()
	at, p, err := r.Next()
	switch {
	case err != nil:
		return nil, err
	case at != pos:
		return nil, &CorruptionError{File: j.segPath(pos.Seq), Offset: pos.Offset, Reason: fmt.Sprintf("no batch record at %v (the next one is at %v)", pos, at)}
	}
	return append([]byte(nil), p...), nil
}

// Close releases the reader's file.
func (r *LogReader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.buf = nil
}

func (r *LogReader) corrupt(off int64, err error) error {
	return &CorruptionError{File: r.j.segPath(r.pos.Seq), Offset: off, Reason: err.Error()}
}

// open opens segment seq and reads its header.
func (r *LogReader) open(seq uint64) error {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.buf, r.base = r.buf[:0], 0
	if seq < r.j.Oldest() {
		return fmt.Errorf("%w: segment %d was reclaimed", ErrResyncNeeded, seq)
	}
	path := r.j.segPath(seq)
	f, err := r.j.fs.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || seq < r.j.Oldest() {
			return fmt.Errorf("%w: segment %d: %v", ErrResyncNeeded, seq, err)
		}
		return fmt.Errorf("journal: open %s: %w", path, err)
	}
	var hb [SegmentHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		f.Close()
		return fmt.Errorf("journal: read header of %s: %w", path, err)
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		f.Close()
		return &CorruptionError{File: path, Offset: 0, Reason: err.Error()}
	}
	if h.seq != seq {
		f.Close()
		return &CorruptionError{File: path, Offset: 0, Reason: fmt.Sprintf("header of segment %d in the file of segment %d", h.seq, seq)}
	}
	r.f, r.fSeq, r.hdr, r.seed, r.size = f, seq, h, h.seed(), int64(h.size)
	return nil
}

// at returns the n bytes at off of the open segment, through the
// window, which never holds bytes at or past limit (the durable end:
// bytes there may still change).
func (r *LogReader) at(off int64, n int, limit int64) ([]byte, error) {
	if off >= r.base && off+int64(n) <= r.base+int64(len(r.buf)) {
		return r.buf[off-r.base : off-r.base+int64(n)], nil
	}
	want := max(n, logWindow)
	if rest := limit - off; int64(want) > rest {
		want = int(rest)
	}
	if want < n {
		return nil, r.corrupt(off, fmt.Errorf("%d bytes past the segment's end", n))
	}
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	got, err := r.f.ReadAt(r.buf, off)
	if got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.buf = r.buf[:0]
		return nil, fmt.Errorf("journal: read %s at %d: %w", r.j.segPath(r.fSeq), off, err)
	}
	r.buf, r.base = r.buf[:got], off
	return r.buf[:n], nil
}
