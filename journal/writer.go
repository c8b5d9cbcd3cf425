package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/tandemmq/tandem/aio"
)

// segment is a segment the writer appends to.
type segment struct {
	hdr   segHeader
	seed  uint32
	path  string
	limit int64    // batch records end at or before this offset
	file  aio.File // opened by Load or the flusher; the flusher owns it
}

// chunk is an aligned buffer holding a contiguous range of one segment.
// Appenders encode records at written (under FileJournal.mu); the flusher
// takes [flushed, written) and writes it. Appenders never touch bytes the
// flusher has taken, so no copy is needed and no one waits for I/O.
type chunk struct {
	seg     *segment
	buf     []byte
	usable  int // appenders stop here; the rest is room for padding
	base    int64
	written int
	flushed int
	full    bool // no more appends
	seals   bool // holds the segment's seal record
	pooled  bool // default size: goes back to the free list after use
}

// waiter is an append waiting for its completion.
type waiter struct {
	done func(error)
	sync bool
}

// FileJournal is the file journal: a directory of fixed-size segments,
// appended to by group commit and replayed by Load. See the package
// documentation and format.go for the format.
type FileJournal struct {
	opts Options
	fs   aio.FS
	nm   Naming
	log  *slog.Logger

	mu           sync.Mutex
	space        sync.Cond // appenders waiting for pendingBytes to fall
	loaded       bool
	closing      bool
	closed       bool
	err          error
	failed       chan struct{}
	v            *validator
	align        int
	seg          *segment // segment appended to
	cur          *chunk   // chunk appended to (last of pending)
	pending      []*chunk // chunks with bytes the flusher has not finished, in order
	waiters      []waiter
	spareWaiters []waiter
	// pendingBytes counts the bytes of appends the flusher has not taken
	// (not segment headers and seals: they have no waiter, and the flusher
	// only wakes for waiters, so counting them let an Append wait for a
	// flush that never came).
	pendingBytes int
	free         []*chunk

	oldest        uint64 // oldest segment not reclaimed
	floor         uint64 // log mode: segments below it may be reclaimed (SetFloor)
	compacting    bool   // a compaction owns the prefix below compactS1
	compactS1     uint64
	compactions   int
	compactRetry  uint64 // automatic compaction waits for this segment
	bg            sync.WaitGroup
	bgCtx         context.Context
	bgCancel      context.CancelFunc
	subs          map[*Subscription]struct{}
	gate          *Gate // holds completions for a replica (gate.go)
	tap           *Tap  // gets every range the flusher takes (tap.go)
	takenEnd      Position
	stream        streamState
	durable       atomic.Uint64 // low 32 bits of the segment sequence << 32 | synced offset
	wake          chan struct{}
	inflight      chan struct{}
	prep          *preparer
	cq            *completer
	flusherExited chan struct{}
	stats         stats
	// testCompactWait, set by tests only, is called when a compaction
	// starts waiting for the preparer to remove or recycle the segments
	// reclaimed before its prefix.
	testCompactWait func()
}

// maxBatchLocked is the largest encoded batch a segment holds.
func (j *FileJournal) maxBatch() int64 {
	return segLimit(j.opts.SegmentSize, j.align) - SegmentHeaderSize
}

// segLimit is where batch records must end in a segment of size written
// with alignment align: room is left for the seal record and the padding
// of the last flush.
func segLimit(size int64, align int) int64 {
	if align <= 1 {
		return size - RecordHeaderSize
	}
	return size - 2*int64(align) - 4*RecordHeaderSize
}

// padEnd is where the padding of a flush ending at off ends: the next
// aligned offset, at least a record header away.
func padEnd(off int64, align int) int64 {
	if align <= 1 {
		return off
	}
	a := int64(align)
	end := (off + a - 1) / a * a
	if end > off && end-off < RecordHeaderSize {
		end += a
	}
	return end
}

// Append appends entries as one atomic batch. See Journal.
func (j *FileJournal) Append(entries []Entry, sync bool, done func(error)) error {
	size := int64(batchSize(entries))
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usableLocked(); err != nil {
		return err
	}
	if size > j.maxBatch() {
		return fmt.Errorf("%w: %d bytes, a segment of %d bytes holds at most %d", ErrTooLarge, size, j.opts.SegmentSize, j.maxBatch())
	}
	// Wait only while the flusher has appends to take (it wakes for
	// nothing else), and never inside a callback run inline by the flusher:
	// it would wait for the flusher it blocks.
	for j.pendingBytes > j.opts.MaxPending && len(j.waiters) > 0 && j.usableLocked() == nil && !j.cq.inline.Load() {
		j.space.Wait()
	}
	if err := j.usableLocked(); err != nil {
		return err
	}
	return j.appendLocked(entries, int(size), sync, done)
}

// AppendPos is Append that also returns where the batch record goes: a
// position a LogReader and ReadRecord find it at (log mode).
func (j *FileJournal) AppendPos(entries []Entry, sync bool, done func(error)) (Position, error) {
	size := int64(batchSize(entries))
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usableLocked(); err != nil {
		return Position{}, err
	}
	if size > j.maxBatch() {
		return Position{}, fmt.Errorf("%w: %d bytes, a segment of %d bytes holds at most %d", ErrTooLarge, size, j.opts.SegmentSize, j.maxBatch())
	}
	for j.pendingBytes > j.opts.MaxPending && len(j.waiters) > 0 && j.usableLocked() == nil && !j.cq.inline.Load() {
		j.space.Wait()
	}
	if err := j.usableLocked(); err != nil {
		return Position{}, err
	}
	if err := j.appendLocked(entries, int(size), sync, done); err != nil {
		return Position{}, err
	}
	return Position{Seq: j.seg.hdr.seq, Offset: j.cur.base + int64(j.cur.written) - size}, nil
}

func (j *FileJournal) usableLocked() error {
	switch {
	case j.closed || j.closing:
		return ErrClosed
	case j.err != nil:
		return j.err
	case !j.loaded:
		return ErrNotLoaded
	}
	return nil
}

func (j *FileJournal) appendLocked(entries []Entry, size int, sync bool, done func(error)) error {
	rotate := j.pos()+int64(size) > j.seg.limit
	seq := j.seg.hdr.seq
	if rotate {
		seq++
	}
	if j.opts.Log {
		if err := j.v.applyLog(entries); err != nil {
			return err
		}
	} else if err := j.v.apply(entries, seq); err != nil {
		return err
	}
	if rotate {
		j.rotateLocked()
	}
	b := j.reserveLocked(size)
	encodeBatch(b, entries, j.syncedFor(j.seg.hdr.seq), j.seg.seed)
	j.waiters = append(j.waiters, waiter{done: done, sync: sync})
	j.pendingBytes += size
	j.stats.appends.Add(1)
	j.signal()
	return nil
}

func (j *FileJournal) signal() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

func (j *FileJournal) pos() int64 { return j.cur.base + int64(j.cur.written) }

// syncedFor is the synced watermark a record of segment seq carries.
func (j *FileJournal) syncedFor(seq uint64) uint32 {
	d := j.durable.Load()
	if d>>32 == seq&0xffffffff {
		return uint32(d)
	}
	return 0
}

func (j *FileJournal) setDurable(seq uint64, off int64) {
	j.durable.Store(seq<<32 | uint64(off)&0xffffffff)
	j.stream.advance(seq, off)
}

// reserveLocked returns n bytes at the append position, moving to a new
// chunk when the current one cannot hold them.
func (j *FileJournal) reserveLocked(n int) []byte {
	c := j.cur
	if c.full || c.usable-c.written < n {
		c.full = true
		base := padEnd(c.base+int64(c.written), j.align)
		// j.seg, not c.seg: a full current chunk may already be recycled.
		c = j.newChunkLocked(j.seg, base, n)
	}
	b := c.buf[c.written : c.written+n : c.written+n]
	c.written += n
	return b
}

// newChunkLocked starts a chunk of seg at file offset base (aligned) that
// holds at least n bytes, and makes it current.
func (j *FileJournal) newChunkLocked(seg *segment, base int64, n int) *chunk {
	var c *chunk
	if n <= chunkSize && len(j.free) > 0 {
		c = j.free[len(j.free)-1]
		j.free = j.free[:len(j.free)-1]
		*c = chunk{buf: c.buf, usable: c.usable, pooled: true}
	} else {
		usable := max(chunkSize, alignUp(n, j.align))
		slack := 0
		if j.align > 1 {
			slack = 2 * j.align
		}
		c = &chunk{buf: aio.AlignedBuffer(usable+slack, j.align), usable: usable, pooled: usable == chunkSize}
	}
	c.seg, c.base = seg, base
	j.cur = c
	j.pending = append(j.pending, c)
	return c
}

func alignUp(n, align int) int {
	if align <= 1 {
		return n
	}
	return (n + align - 1) / align * align
}

// sealLocked appends the seal record that ends the current segment.
func (j *FileJournal) sealLocked() {
	b := j.reserveLocked(RecordHeaderSize)
	encodeSeal(b, j.syncedFor(j.seg.hdr.seq), j.seg.seed)
	j.cur.full = true
	j.cur.seals = true
}

// rotateLocked seals the current segment and starts the next one. The
// file of the next segment is prepared in the background; the flusher
// waits for it only if preparation has fallen behind.
func (j *FileJournal) rotateLocked() {
	j.sealLocked()
	j.startSegmentLocked(j.seg.hdr.seq + 1)
	j.stats.rotations.Add(1)
}

// startSegmentLocked makes seq the segment appended to; its header is the
// first bytes of its first chunk.
func (j *FileJournal) startSegmentLocked(seq uint64) {
	seg := &segment{
		hdr: segHeader{
			seq: seq, epoch: j.opts.Epoch, salt: rand.Uint64(),
			size: uint64(j.opts.SegmentSize), align: uint32(j.align), version: formatVersion,
			maxID: j.v.maxID,
		},
		path:  j.segPath(seq),
		limit: segLimit(j.opts.SegmentSize, j.align),
	}
	seg.seed = seg.hdr.seed()
	j.seg = seg
	c := j.newChunkLocked(seg, 0, SegmentHeaderSize)
	seg.hdr.encode(c.buf[:SegmentHeaderSize])
	c.written = SegmentHeaderSize
	if j.prep != nil {
		j.prep.request(seq + 1)
	}
}

// fail makes err the journal's sticky fatal error.
func (j *FileJournal) fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.failLocked(err)
}

func (j *FileJournal) failLocked(err error) {
	if j.err != nil {
		return
	}
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		err = fmt.Errorf("journal %s: fatal storage error, nothing more is acknowledged: %w", j.opts.Dir, err)
	}
	j.err = err
	close(j.failed)
	j.space.Broadcast()
	j.signal()
	j.log.Error("journal failed", "dir", j.opts.Dir, "err", err)
}

// Failed is closed once the journal has met a fatal error.
func (j *FileJournal) Failed() <-chan struct{} { return j.failed }

// Err returns the fatal error, or nil.
func (j *FileJournal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}
