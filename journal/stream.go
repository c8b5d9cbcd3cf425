package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tandemmq/tandem/aio"
	"golang.org/x/sys/unix"
)

// The record stream (issue 4, item 3). A subscriber attaches at a
// position and receives every durable byte of the journal from there on,
// in order, as it was written: segment headers, records, seal and padding
// records, each range with its position and the segment's epoch. It reads
// the segment files (through the page cache), so a subscriber that falls
// behind simply reads older segments until it catches up; the live end is
// the durable watermark the flusher advances after each fdatasync.
//
// A backup that writes every StreamBatch at its position into a segment
// file of the same name and size (ApplyBatch does) holds byte-identical
// segments, which load to the same state. Reclaim keeps every segment a
// subscriber still needs; a subscription asking for a segment already
// reclaimed fails with ErrResyncNeeded.

// Position is a place in the journal: a segment sequence and a byte
// offset in that segment.
type Position struct {
	Seq    uint64
	Offset int64
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Seq, p.Offset) }

// StreamBatch is a range of durable journal bytes. It always ends at a
// record boundary; it may hold several flusher batches. A batch at offset
// 0 starts with the segment header.
type StreamBatch struct {
	Pos         Position
	Data        []byte // valid until the next call to Next
	Epoch       uint64 // the segment's epoch
	SegmentSize int64
	// Sealed is true when Data ends with the segment's seal record: the
	// next batch is in the next segment.
	Sealed bool
}

// End is the position after the batch.
func (b *StreamBatch) End() Position {
	return Position{Seq: b.Pos.Seq, Offset: b.Pos.Offset + int64(len(b.Data))}
}

// ErrResyncNeeded is returned when a subscriber's position is no longer in
// the journal (its segment was reclaimed): it must resynchronise from a
// full copy.
var ErrResyncNeeded = errors.New("journal: stream position no longer in the journal: resync needed")

// streamState is the durable watermark as subscribers see it.
type streamState struct {
	mu     sync.Mutex
	seq    uint64
	off    int64
	notify chan struct{}
	closed bool
}

func (s *streamState) advance(seq uint64, off int64) {
	s.mu.Lock()
	s.seq, s.off = seq, off
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	s.mu.Unlock()
}

func (s *streamState) close() {
	s.mu.Lock()
	s.closed = true
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	s.mu.Unlock()
}

// snapshot returns the durable end and a channel closed when it moves.
func (s *streamState) snapshot() (uint64, int64, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify == nil {
		s.notify = make(chan struct{})
	}
	return s.seq, s.off, s.closed, s.notify
}

// Subscription is one record stream subscriber. Next is not safe for
// concurrent use; Close may be called from any goroutine.
type Subscription struct {
	j   *FileJournal
	pos Position

	buf    []byte // the whole current segment when it is sealed
	bufSeq uint64
	hdr    segHeader
	f      aio.PlainFile
	fSeq   uint64

	mu     sync.Mutex
	closed bool
	inNext bool // Next is running: it closes f if Close came meanwhile

	replica bool // SubscribeReplica: compaction waits while it is attached
}

// SubscribeReplica is Subscribe for a replica that keeps byte copies of
// the segments and removes those this journal reclaims (package
// replication): while it is attached, compaction does not run (see
// Compact).
func (j *FileJournal) SubscribeReplica(from Position) (*Subscription, error) {
	s, err := j.Subscribe(from)
	if err == nil {
		j.mu.Lock()
		s.replica = true
		j.mu.Unlock()
	}
	return s, err
}

func (j *FileJournal) replicaSubscribedLocked() bool {
	if j.tap != nil {
		return true
	}
	for s := range j.subs {
		if s.replica {
			return true
		}
	}
	return false
}

// Oldest returns the oldest segment the journal keeps: a replica may
// remove its copies of older ones.
func (j *FileJournal) Oldest() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.oldest
}

// DurableEnd returns the end of the durable bytes: what a subscriber that
// caught up has received (a position in a new, still empty segment after
// a seal).
func (j *FileJournal) DurableEnd() Position {
	seq, off, _, _ := j.stream.snapshot()
	return Position{Seq: seq, Offset: off}
}

// SetEpoch sets the epoch written into the segments the journal starts
// from now on (a replication live's activation sequence moved on after
// it lost its replica).
func (j *FileJournal) SetEpoch(e uint64) {
	j.mu.Lock()
	j.opts.Epoch = e
	j.mu.Unlock()
}

// SegmentSize returns the size of new segments (journal-file-size).
func (j *FileJournal) SegmentSize() int64 { return j.opts.SegmentSize }

// Subscribe attaches a subscriber at from (the zero Position means the
// oldest segment kept). from must be a record boundary the journal gave
// out (a StreamBatch end, or offset 0).
func (j *FileJournal) Subscribe(from Position) (*Subscription, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usableLocked(); err != nil {
		return nil, err
	}
	resume := from.Seq != 0
	if !resume {
		from = Position{Seq: j.oldest}
	}
	if from.Seq < j.oldest {
		return nil, fmt.Errorf("%w: segment %d was reclaimed (oldest kept: %d)", ErrResyncNeeded, from.Seq, j.oldest)
	}
	if j.compacting && from.Seq < j.compactS1 {
		return nil, fmt.Errorf("journal: subscribe at %v: %w (retry)", from, ErrCompactBusy)
	}
	// Segments below compactS1 were rewritten by compaction (compact.go):
	// a position in them is in bytes the resuming subscriber never had.
	// A restarted journal knows compactS1 from the compacted segments'
	// header flag (Load).
	if resume && from.Seq < j.compactS1 {
		return nil, fmt.Errorf("%w: segment %d was rewritten by compaction", ErrResyncNeeded, from.Seq)
	}
	if from.Seq > j.seg.hdr.seq {
		return nil, fmt.Errorf("journal: subscribe at %v: beyond the current segment %d", from, j.seg.hdr.seq)
	}
	s := &Subscription{j: j, pos: from}
	if j.subs == nil {
		j.subs = map[*Subscription]struct{}{}
	}
	j.subs[s] = struct{}{}
	return s, nil
}

// Position is where the next batch starts.
func (s *Subscription) Position() Position { return s.pos }

// Next returns the next durable range, waiting for one. After the journal
// closes it returns what remains, then ErrClosed; after it fails, its
// fatal error.
func (s *Subscription) Next(ctx context.Context) (StreamBatch, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return StreamBatch{}, ErrClosed
	}
	s.inNext = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inNext = false
		closeFile := s.closed
		s.mu.Unlock()
		if closeFile {
			s.closeFile()
		}
	}()
	return s.next(ctx)
}

func (s *Subscription) next(ctx context.Context) (StreamBatch, error) {
	j := s.j
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return StreamBatch{}, ErrClosed
		}
		seq, off, jclosed, ch := j.stream.snapshot()
		switch {
		case s.pos.Seq < seq:
			b, err := s.fromSealed()
			if err != nil || len(b.Data) > 0 {
				return b, err
			}
			continue // moved to the next segment
		case s.pos.Seq == seq && s.pos.Offset < off:
			return s.fromLive(off)
		}
		if jclosed {
			return StreamBatch{}, ErrClosed
		}
		select {
		case <-ch:
		case <-j.failed:
			return StreamBatch{}, j.Err()
		case <-ctx.Done():
			return StreamBatch{}, ctx.Err()
		}
	}
}

// fromSealed serves the next range of a segment the journal has moved
// past (durable up to its seal), reading it whole once.
func (s *Subscription) fromSealed() (StreamBatch, error) {
	if s.bufSeq != s.pos.Seq {
		path := s.j.segPath(s.pos.Seq)
		f, err := s.j.fs.Open(path)
		if err != nil {
			return StreamBatch{}, fmt.Errorf("journal: stream: %w", err)
		}
		size, err := f.Size()
		if err == nil {
			s.buf = growTo(s.buf, int(size))
			_, err = f.ReadAt(s.buf, 0)
		}
		f.Close()
		if err != nil {
			return StreamBatch{}, fmt.Errorf("journal: stream: read %s: %w", path, err)
		}
		if s.hdr, err = decodeSegHeader(s.buf); err != nil {
			return StreamBatch{}, fmt.Errorf("journal: stream: %s: %w", path, err)
		}
		s.bufSeq = s.pos.Seq
		s.prefetch(s.pos.Seq + 1)
	}
	// Walk records from pos to the seal, about 1 MiB at a time.
	start := int(s.pos.Offset)
	p, sealed, err := walkRecords(s.buf, start, len(s.buf), chunkSize, s.hdr.seed())
	if err != nil {
		return StreamBatch{}, fmt.Errorf("journal: stream: %s: %w", s.j.segPath(s.pos.Seq), err)
	}
	if p == start && !sealed {
		return StreamBatch{}, fmt.Errorf("journal: stream: %s:%d: sealed segment without a seal record", s.j.segPath(s.pos.Seq), p)
	}
	b := StreamBatch{Pos: s.pos, Data: s.buf[start:p], Epoch: s.hdr.epoch, SegmentSize: int64(s.hdr.size), Sealed: sealed}
	s.advance(sealed, p)
	return b, nil
}

// prefetch asks the kernel to read segment seq ahead (a replica's initial
// sync reads sealed segments one after the other, from a cold cache).
func (s *Subscription) prefetch(seq uint64) {
	f, err := s.j.fs.Open(s.j.segPath(seq))
	if err != nil {
		return
	}
	defer f.Close()
	if fd, ok := f.(interface{ Fd() uintptr }); ok {
		_ = unix.Fadvise(int(fd.Fd()), 0, 0, unix.FADV_WILLNEED)
	}
}

// walkRecords walks the records of seg (a whole segment, or a buffer
// whose index 0 is the segment's offset 0) from start, stopping at end, at
// a seal record (included), or once more than limit bytes were passed. It
// returns where it stopped.
func walkRecords(seg []byte, start, end, limit int, seed uint32) (int, bool, error) {
	p := max(start, SegmentHeaderSize)
	for p < end && (p-start < limit || p == start) {
		h, err := decodeRecord(seg[p:end], p, seed)
		if err != nil {
			return p, false, fmt.Errorf("offset %d: %w", p, err)
		}
		p += RecordHeaderSize + int(h.length)
		if h.kind == recSeal {
			return p, true, nil
		}
	}
	return p, false, nil
}

// fromLive serves [pos, off) of the segment being written.
func (s *Subscription) fromLive(off int64) (StreamBatch, error) {
	if s.f == nil || s.fSeq != s.pos.Seq {
		if s.f != nil {
			s.f.Close()
		}
		f, err := s.j.fs.Open(s.j.segPath(s.pos.Seq))
		if err != nil {
			return StreamBatch{}, fmt.Errorf("journal: stream: %w", err)
		}
		s.f, s.fSeq = f, s.pos.Seq
		var hb [SegmentHeaderSize]byte
		if _, err := f.ReadAt(hb[:], 0); err != nil {
			return StreamBatch{}, fmt.Errorf("journal: stream: %w", err)
		}
		if s.hdr, err = decodeSegHeader(hb[:]); err != nil {
			return StreamBatch{}, fmt.Errorf("journal: stream: %s: %w", s.j.segPath(s.pos.Seq), err)
		}
	}
	// Read [0, off) into the buffer's matching place so record offsets are
	// the segment's: only [pos, off) is read.
	buf := growTo(s.buf, int(off))
	s.bufSeq = 0 // buf no longer holds a whole sealed segment
	if _, err := s.f.ReadAt(buf[s.pos.Offset:off], s.pos.Offset); err != nil {
		return StreamBatch{}, fmt.Errorf("journal: stream: read %s at %d: %w", s.j.segPath(s.pos.Seq), s.pos.Offset, err)
	}
	s.buf = buf
	start := int(s.pos.Offset)
	p, sealed, err := walkRecords(buf, start, int(off), int(off), s.hdr.seed())
	if err != nil {
		return StreamBatch{}, fmt.Errorf("journal: stream: %s: %w", s.j.segPath(s.pos.Seq), err)
	}
	if !sealed {
		p = int(off)
	}
	b := StreamBatch{Pos: s.pos, Data: buf[start:p], Epoch: s.hdr.epoch, SegmentSize: int64(s.hdr.size), Sealed: sealed}
	s.advance(sealed, p)
	return b, nil
}

// advance moves pos to end, or to the next segment after a seal.
func (s *Subscription) advance(sealed bool, end int) {
	s.j.mu.Lock() // reclaim and metrics read pos under it
	if sealed {
		s.pos = Position{Seq: s.pos.Seq + 1}
	} else {
		s.pos.Offset = int64(end)
	}
	s.j.mu.Unlock()
}

// growTo returns b resized to n, reallocating at least twice its
// capacity when it is too small: the live segment's end grows a batch at
// a time, and a reallocation per batch made a subscriber's cost quadratic
// in the segment's size (measured: a replica stream spent 28% of the
// live's CPU zeroing new buffers).
func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, max(n, 2*cap(b)))
	}
	return b[:n]
}

// Close detaches the subscriber: its segments may be reclaimed again.
func (s *Subscription) Close() {
	s.mu.Lock()
	s.closed = true
	busy := s.inNext
	s.mu.Unlock()
	s.j.mu.Lock()
	delete(s.j.subs, s)
	s.j.mu.Unlock()
	if !busy { // else Next closes it when it returns
		s.closeFile()
	}
}

// closeFile closes the open segment file; called by Close or by the Next
// that was running when Close came, never while Next uses the file.
func (s *Subscription) closeFile() {
	s.mu.Lock()
	f := s.f
	s.f = nil
	s.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// streamFloorLocked is the oldest segment a subscriber still needs.
func (j *FileJournal) streamFloorLocked() uint64 {
	floor := ^uint64(0)
	if j.tap != nil {
		floor = j.tap.floorLocked()
	}
	for s := range j.subs {
		floor = min(floor, s.pos.Seq)
	}
	return floor
}

// streamMetricsLocked returns the subscriber count and the largest lag in
// bytes behind the durable end (approximate across segments).
func (j *FileJournal) streamMetricsLocked() (int, int64) {
	seq, off, _, _ := j.stream.snapshot()
	var lag int64
	for s := range j.subs {
		l := off - s.pos.Offset
		if s.pos.Seq < seq {
			l = int64(seq-s.pos.Seq)*j.opts.SegmentSize + off - s.pos.Offset
		}
		lag = max(lag, l)
	}
	return len(j.subs), lag
}

// ApplyBatch writes a stream batch into the journal directory dir (named
// nm) at its position, creating the segment file (zero-filled, fsynced,
// renamed, directory fsynced) when it is new, and syncs it: what a backup
// does with the stream. The files it writes are byte-identical to the
// primary's, so they load to the same state.
func ApplyBatch(fs aio.FS, dir string, nm Naming, b StreamBatch) error {
	path := dirJoin(dir, SegmentName(nm.Prefix, nm.Ext, b.Pos.Seq))
	f, err := fs.Open(path)
	if err != nil {
		if err := writeZeroFile(fs, path+".tmp", b.SegmentSize, nil); err != nil {
			return fmt.Errorf("journal: apply batch at %v: %w", b.Pos, err)
		}
		if err := fs.Rename(path+".tmp", path); err != nil {
			return fmt.Errorf("journal: apply batch at %v: %w", b.Pos, err)
		}
		if err := fs.SyncDir(dir); err != nil {
			return fmt.Errorf("journal: apply batch at %v: %w", b.Pos, err)
		}
		if f, err = fs.Open(path); err != nil {
			return fmt.Errorf("journal: apply batch at %v: %w", b.Pos, err)
		}
	}
	defer f.Close()
	if _, err := f.WriteAt(b.Data, b.Pos.Offset); err != nil {
		return fmt.Errorf("journal: apply batch at %v: %w", b.Pos, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: apply batch at %v: %w", b.Pos, err)
	}
	return nil
}

func dirJoin(dir, name string) string {
	if dir == "" || dir[len(dir)-1] == '/' {
		return dir + name
	}
	return dir + "/" + name
}
