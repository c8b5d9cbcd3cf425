package journal

import (
	"context"
	"errors"
	"sync"
)

// The tap (issue 13): a replica at the live end of the stream gets the
// bytes of every batch as the flusher submits them, before they are
// durable, so the replica writes and syncs its copy while the primary
// syncs its own, instead of after. A Subscription only hands out durable
// bytes and reads them back from the segment files (from the device, with
// O_DIRECT); the tap costs one copy of each batch and no read.
//
// What the tap gives is exactly what the files will hold at those offsets
// (segment headers, records, padding and seals, as a Subscription gives
// them), in order, each range once. Sending bytes before they are durable
// here is safe for a replica because a completion still needs both: the
// primary's fdatasync (the batch completes only after it) and the
// replica's acknowledgement (the Gate). A replica may therefore hold
// records this journal never made durable (it crashed first, or its
// write failed and it halted): their appends were never confirmed, and
// their outcome is unknown to the client.
//
// A consumer that falls more than its limit behind loses the tap
// (ErrTapOverflow): it goes back to a Subscription at the position it
// reached and may attach a new tap once it caught up. While attached, a
// tap keeps the segments from its consumer's position (reclaim waits for
// it, as for a subscriber) and, like SubscribeReplica, keeps compaction
// from running.

// ErrTapOverflow is returned by Tap.Next when the consumer fell further
// behind than the tap's limit: the bytes since are dropped.
var ErrTapOverflow = errors.New("journal: tap consumer fell behind: read the rest from the segments")

// Tap streams the bytes the flusher submits. Next and Position are for
// one consumer goroutine; Close may be called from any goroutine.
type Tap struct {
	j     *FileJournal
	limit int

	mu       sync.Mutex
	queue    []StreamBatch // owned copies
	bytes    int
	pos      Position // where the consumer is: the next byte it takes
	overflow bool
	ended    bool // the journal closed: what is queued, then ErrClosed
	closed   bool
	notify   chan struct{}
}

// AttachTap installs a tap (at most one; a second attach returns nil):
// it gets every range the flusher takes from now on. Its Position is
// where those start: everything before it is, or will become, durable in
// the segments, and a Subscription reaches it. limit bounds the bytes
// queued for a consumer that does not keep up.
func (j *FileJournal) AttachTap(limit int) *Tap {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.tap != nil || j.usableLocked() != nil {
		return nil
	}
	t := &Tap{j: j, limit: limit, pos: j.takenEnd, notify: make(chan struct{})}
	j.tap = t
	return t
}

// Position returns where the consumer is: the start of the next range.
func (t *Tap) Position() Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// takeOpsLocked is the flusher's part under j.mu: it advances the taken
// end past the batch's ranges and returns the tap to push them to.
func (j *FileJournal) takeOpsLocked(ops []op) *Tap {
	for _, o := range ops {
		if o.seal {
			j.takenEnd = Position{Seq: o.c.seg.hdr.seq + 1}
		} else {
			j.takenEnd = Position{Seq: o.c.seg.hdr.seq, Offset: o.c.base + int64(o.to)}
		}
	}
	return j.tap
}

// push copies the batch's ranges into the tap (flusher goroutine, in take
// order, outside j.mu: the chunks are not recycled before the batch
// completes).
func (t *Tap) push(ops []op) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.overflow {
		return
	}
	for _, o := range ops {
		if t.bytes+(o.to-o.from) > t.limit && t.bytes > 0 {
			t.overflow = true
			t.queue, t.bytes = nil, 0
			break
		}
		hdr := &o.c.seg.hdr
		t.queue = append(t.queue, StreamBatch{
			Pos:  Position{Seq: hdr.seq, Offset: o.c.base + int64(o.from)},
			Data: append([]byte(nil), o.c.buf[o.from:o.to]...), Epoch: hdr.epoch,
			SegmentSize: int64(hdr.size), Sealed: o.seal,
		})
		t.bytes += o.to - o.from
	}
	close(t.notify)
	t.notify = make(chan struct{})
}

// Next returns the next range the flusher submitted (not necessarily
// durable yet), waiting for one. Its Data is the consumer's to keep. It
// returns ErrTapOverflow once the consumer fell behind, ErrClosed after
// Close or the journal's close, and the journal's fatal error after it
// failed.
func (t *Tap) Next(ctx context.Context) (StreamBatch, error) {
	for {
		t.mu.Lock()
		switch {
		case t.closed:
			t.mu.Unlock()
			return StreamBatch{}, ErrClosed
		case t.overflow:
			t.mu.Unlock()
			return StreamBatch{}, ErrTapOverflow
		case len(t.queue) == 0 && t.ended:
			t.mu.Unlock()
			return StreamBatch{}, ErrClosed
		case len(t.queue) > 0:
			b := t.queue[0]
			t.queue[0] = StreamBatch{}
			t.queue = t.queue[1:]
			t.bytes -= len(b.Data)
			t.mu.Unlock()
			t.j.mu.Lock() // reclaim reads pos under j.mu
			t.mu.Lock()
			t.pos = b.End()
			if b.Sealed {
				t.pos = Position{Seq: b.Pos.Seq + 1}
			}
			t.mu.Unlock()
			t.j.mu.Unlock()
			return b, nil
		}
		ch := t.notify
		t.mu.Unlock()
		select {
		case <-ch:
		case <-t.j.failed:
			return StreamBatch{}, t.j.Err()
		case <-ctx.Done():
			return StreamBatch{}, ctx.Err()
		}
	}
}

// Close detaches the tap.
func (t *Tap) Close() {
	t.j.mu.Lock()
	if t.j.tap == t {
		t.j.tap = nil
	}
	t.j.mu.Unlock()
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		t.queue, t.bytes = nil, 0
		close(t.notify)
		t.notify = make(chan struct{})
	}
	t.mu.Unlock()
}

// end marks the journal closed: the consumer gets what is queued, then
// ErrClosed.
func (t *Tap) end() {
	t.mu.Lock()
	t.ended = true
	close(t.notify)
	t.notify = make(chan struct{})
	t.mu.Unlock()
}

// floorLocked is the oldest segment the tap's consumer still needs (under
// j.mu).
func (t *Tap) floorLocked() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos.Seq
}
