package journal

import (
	"errors"
	"sync"
	"time"
)

// The completion gate (issue 13): with a replica attached, a durable
// append is confirmed only when the primary's own fdatasync is done and
// the replica has written and synced the same bytes. The flusher still
// writes and syncs batch after batch at its own pace; only the done
// callbacks wait. A batch's callbacks are held until the replica
// acknowledges a stream position at or past the batch's durable end
// (Ack), in batch order: a batch with no durable end of its own (written
// without sync) waits behind the batches before it.
//
// Release detaches the gate and completes everything held with success:
// the caller (package replication, told by package ha) does it only once
// it is safe to confirm what the replica never confirmed, e.g. after the
// activation sequence was bumped so that the replica can never become
// live with its copy. Fail completes everything held with an error
// (outcome unknown for the clients): what a halting primary does. A
// journal closed with callbacks still held fails them with
// ErrNotReplicated.

// ErrNotReplicated is the outcome of appends whose completion was held for
// a replica that never confirmed them, when the journal closed or the gate
// failed first: they are durable on this broker but were never confirmed,
// so their outcome is unknown to the client.
var ErrNotReplicated = errors.New("journal: closed before the replica confirmed the append")

// Gate holds the completions of a journal's batches until a replica
// confirms them. Its methods are safe for concurrent use.
type Gate struct {
	j *FileJournal

	mu       sync.Mutex
	acked    Position
	held     []heldBatch
	detached bool
	failed   error         // Fail: every later batch completes with it too
	idle     chan struct{} // closed when nothing is held (nil: nothing held)
}

// replicaGatherMax bounds how long the flusher waits for the replica to
// acknowledge the previous batch before it writes the next (waitIdle).
const replicaGatherMax = 5 * time.Millisecond

// gateNow returns the attached gate, if any.
func (j *FileJournal) gateNow() *Gate {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.gate
}

// waitIdle waits until no batch is held for the replica, or for d.
func (g *Gate) waitIdle(d time.Duration) {
	g.mu.Lock()
	ch := g.idle
	g.mu.Unlock()
	if ch == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

type heldBatch struct {
	end     Position
	hasEnd  bool // a synced batch: end is its durable end
	waiters []waiter
	since   time.Time
	err     error
}

// AttachGate installs a gate (replacing none: at most one at a time; a
// second attach returns the existing one). From now on every batch's
// callbacks wait for Ack, Release or Fail. acked is what the replica
// already holds durably.
func (j *FileJournal) AttachGate(acked Position) *Gate {
	j.mu.Lock()
	defer j.mu.Unlock()
	if g := j.gate; g != nil {
		return g
	}
	g := &Gate{j: j, acked: acked}
	j.gate = g
	return g
}

// completeBatch completes waiters of a batch ending at end (hasEnd false:
// no durable end of its own) with err: through the gate when one is
// attached, else straight to the completer. Called in batch order.
func (j *FileJournal) completeBatch(ws []waiter, err error, end Position, hasEnd bool) (kept bool) {
	j.mu.Lock()
	g := j.gate
	j.mu.Unlock()
	if g == nil {
		j.cq.pushWaiters(ws, err)
		return false
	}
	return g.add(ws, err, end, hasEnd)
}

// add queues or completes one batch. It returns whether it kept ws (the
// caller must then not reuse the slice).
func (g *Gate) add(ws []waiter, err error, end Position, hasEnd bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failed != nil {
		if err == nil {
			err = g.failed
		}
		g.j.cq.queueWaiters(ws, err)
		return false
	}
	if g.detached {
		g.j.cq.queueWaiters(ws, err)
		return false
	}
	if len(g.held) == 0 && (err != nil || !hasEnd || !g.acked.Less(end)) {
		// Nothing before it waits, and it is covered, or was written
		// without sync (not in the stream yet, and not promised durable),
		// or failed (its outcome does not depend on the replica).
		g.j.cq.queueWaiters(ws, err)
		return false
	}
	g.held = append(g.held, heldBatch{end: end, hasEnd: hasEnd, waiters: ws, since: time.Now(), err: err})
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	return true
}

// Ack records that the replica holds everything before p durably and
// completes the batches it covers, in order.
func (g *Gate) Ack(p Position) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.acked.Less(p) {
		g.acked = p
	}
	n := 0
	for n < len(g.held) {
		h := &g.held[n]
		if h.err == nil && h.hasEnd && g.acked.Less(h.end) {
			break
		}
		n++
	}
	g.completeLocked(n, nil, false)
}

// completeLocked completes the first n held batches (with their own error,
// or err when force is set and theirs is nil).
func (g *Gate) completeLocked(n int, err error, force bool) {
	for i := range n {
		h := &g.held[i]
		e := h.err
		if e == nil && force {
			e = err
		}
		g.j.cq.queueWaiters(h.waiters, e)
		g.held[i] = heldBatch{}
	}
	g.held = append(g.held[:0], g.held[n:]...)
	if len(g.held) == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// Acked returns the last position the replica acknowledged.
func (g *Gate) Acked() Position {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.acked
}

// Held returns how many batches wait and since when the oldest waits
// (zero time when none).
func (g *Gate) Held() (int, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.held) == 0 {
		return 0, time.Time{}
	}
	return len(g.held), g.held[0].since
}

// Release detaches the gate and completes everything held with success.
// Call it only when confirming appends the replica did not confirm is
// safe (see the type's documentation).
func (g *Gate) Release() { g.detach(nil) }

// Fail completes everything held with err (nil means ErrNotReplicated)
// and every batch that finishes later too: the gate stays attached, so a
// batch that was already durable here when Fail came is not confirmed
// without the replica either.
func (g *Gate) Fail(err error) {
	if err == nil {
		err = ErrNotReplicated
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failed != nil || g.detached {
		return
	}
	g.failed = err
	g.completeLocked(len(g.held), err, true)
}

func (g *Gate) detach(err error) {
	g.j.mu.Lock()
	if g.j.gate == g {
		g.j.gate = nil
	}
	g.j.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.detached {
		return
	}
	g.detached = true
	g.completeLocked(len(g.held), err, true)
}

// Less orders positions.
func (p Position) Less(q Position) bool {
	return p.Seq < q.Seq || (p.Seq == q.Seq && p.Offset < q.Offset)
}
