package journal

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/internal/lathist"
)

// op is one write of a batch: a range of a chunk.
type op struct {
	c        *chunk
	from, to int
	seal     bool
}

// batch is what the flusher took in one pass: the waiters whose records
// it covers, and the chunks to recycle once its writes are complete.
type batch struct {
	waiters []waiter
	release []*chunk
	reclaim []reclaimItem // segments to reclaim once this batch is durable
	inUse   int           // segments in use after that reclaim
	end     Position      // durable end of a synced batch (set by execute)
	hasEnd  bool
	sync    bool

	mu  sync.Mutex
	err error // first error of a write that did not complete the batch
}

func (b *batch) noteErr(err error) {
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
}

func (b *batch) firstErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// stats are counters perf-journal and metrics read.
type stats struct {
	appends   atomic.Int64
	batches   atomic.Int64
	syncs     atomic.Int64
	bytes     atomic.Int64
	rotations atomic.Int64
	busyNanos atomic.Int64 // from a batch's last Submit to its completion
	syncLat   lathist.Histogram
	prepWaits atomic.Int64 // times the flusher waited for the preparer
	prepNanos atomic.Int64 // and how long in all
}

// Stats is a snapshot of a file journal's counters.
type Stats struct {
	Appends   int64 // Append calls accepted
	Batches   int64 // flusher batches written
	Syncs     int64 // batches written with fdatasync
	Bytes     int64 // bytes written, padding included
	Rotations int64 // segments sealed by rotation
	// WriteSyncTime is the total time from a batch's last write being
	// submitted to its completion (write + fdatasync): divided by Batches,
	// the mean I/O latency per batch.
	WriteSyncTime time.Duration
	// SyncLatency is the distribution of the write + fdatasync time of
	// every synced write (a batch's last write, a seal): the disk's
	// latency as the journal sees it.
	SyncLatency lathist.Snapshot
	// PrepareWaits counts the times the flusher had to wait for the
	// preparer to finish the next segment's file (it is prepared ahead,
	// so this stays 0 unless the disk cannot keep up with both), and
	// PrepareWaitTime is how long those waits took in all.
	PrepareWaits    int64
	PrepareWaitTime time.Duration
}

// Stats returns the journal's counters.
func (j *FileJournal) Stats() Stats {
	return Stats{
		Appends: j.stats.appends.Load(), Batches: j.stats.batches.Load(), Syncs: j.stats.syncs.Load(),
		Bytes: j.stats.bytes.Load(), Rotations: j.stats.rotations.Load(),
		WriteSyncTime: time.Duration(j.stats.busyNanos.Load()),
		SyncLatency:   j.stats.syncLat.Snapshot(),
		PrepareWaits:  j.stats.prepWaits.Load(), PrepareWaitTime: time.Duration(j.stats.prepNanos.Load()),
	}
}

// flushLoop is the one flusher: it takes everything pending, writes it
// with one Submit per contiguous range (one fdatasync per batch, on the
// last write), and completes the batch's waiters in order from the write's
// completion. While a write and its fdatasync are in progress, appenders
// keep filling chunks: the next batch covers all of them, so batches grow
// with fsync latency without any timer.
func (j *FileJournal) flushLoop() {
	defer close(j.flusherExited)
	var ops []op
	lastTaken, prevTaken := 0, 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		j.mu.Lock()
		for len(j.waiters) == 0 && !j.closing {
			j.mu.Unlock()
			<-j.wake
			j.mu.Lock()
		}
		if len(j.waiters) == 0 { // closing, nothing left
			j.mu.Unlock()
			j.drainInflight()
			return
		}
		// Take an in-flight slot before taking the batch: while every slot
		// is busy (one, with a synchronous backend), appends keep gathering
		// into the next batch.
		j.mu.Unlock()
		j.inflight <- struct{}{}
		if g := j.gateNow(); g != nil {
			// Replicated: the previous batch's answers wait for the
			// replica; let appends gather until it acknowledged (or for
			// a bounded while), so that one local and one replica fdatasync
			// cover them all instead of the flusher running ahead with
			// batches of one or two (measured: 3 appends per write with 8
			// synchronous producers, and twice the broker's CPU per message).
			g.waitIdle(replicaGatherMax)
		}
		j.mu.Lock()
		if t := j.opts.BufferTimeout; t > 0 {
			j.gatherLocked(t, lastTaken, timer)
		} else {
			j.gatherArrivingLocked(lastTaken + prevTaken)
		}
		waiters := j.waiters
		prevTaken, lastTaken = lastTaken, len(waiters)
		j.waiters = j.spareWaiters[:0]
		j.spareWaiters = nil
		if err := j.err; err != nil {
			// Failed: nothing more is written. Earlier batches complete
			// first, so callbacks stay in order.
			j.mu.Unlock()
			<-j.inflight
			j.drainInflight()
			j.completeBatch(waiters, err, Position{}, false)
			continue
		}
		b := &batch{waiters: waiters}
		for _, w := range waiters {
			b.sync = b.sync || w.sync
		}
		if b.sync {
			// Everything appended so far is in this batch: once it is
			// durable, so are the deletes that emptied these segments.
			b.reclaim = j.reclaimableLocked()
			b.inUse = int(j.seg.hdr.seq - j.oldest + 1)
		}
		ops = ops[:0]
		keep := j.pending[:0]
		for _, c := range j.pending {
			if c.flushed < c.written {
				if end := int(padEnd(c.base+int64(c.written), j.align) - c.base); end > c.written {
					encodePad(c.buf[c.written:end], c.seg.seed)
					c.written = end
				}
				if c.written >= c.usable {
					c.full = true
				}
				ops = append(ops, op{c: c, from: c.flushed, to: c.written, seal: c.seals})
				c.flushed = c.written
			}
			if c.full && c.flushed == c.written {
				b.release = append(b.release, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(j.pending[len(keep):])
		j.pending = keep
		j.pendingBytes = 0
		tap := j.takeOpsLocked(ops)
		j.space.Broadcast()
		j.mu.Unlock()

		if tap != nil {
			tap.push(ops)
		}
		j.execute(b, ops)
	}
}

// gatherLocked is journal-buffer-timeout > 0: when fewer appends are
// waiting than the last batch released, wait up to t for the released
// appenders to come back, so that closed-loop writers share one fdatasync
// instead of splitting into alternating cohorts. Without it (t = 0), the
// flusher writes whatever is pending at once, as pebble's LogWriter does.
func (j *FileJournal) gatherLocked(t time.Duration, want int, timer *time.Timer) {
	deadline := time.Now().Add(t)
	for len(j.waiters) < want && !j.closing && j.err == nil && j.pendingBytes < chunkSize {
		rem := time.Until(deadline)
		if rem <= 0 {
			return
		}
		j.mu.Unlock()
		timer.Reset(rem)
		select {
		case <-j.wake:
		case <-timer.C:
		}
		timer.Stop()
		j.mu.Lock()
	}
}

// gatherArrivingLocked is the adaptive part of journal-buffer-timeout 0:
// appenders that are arriving join the batch. While fewer are pending
// than the last two batches held (the writers just released by the
// previous completion are coming back) and each yield of the processor
// brings more, keep yielding. No timer: it stops as soon as arrivals
// stall, so a lone writer pays one yield. Without it, closed-loop writers
// split into two cohorts that alternate, each fdatasync covering half of
// them (measured: 8 writers, 3.9 records per fdatasync without, 7.6 with,
// twice the throughput).
func (j *FileJournal) gatherArrivingLocked(want int) {
	for n := len(j.waiters); n < want && !j.closing && j.err == nil; n = len(j.waiters) {
		j.mu.Unlock()
		runtime.Gosched()
		j.mu.Lock()
		if len(j.waiters) == n {
			return
		}
	}
}

func (j *FileJournal) drainInflight() {
	for range cap(j.inflight) {
		j.inflight <- struct{}{}
	}
	for range cap(j.inflight) {
		<-j.inflight
	}
}

// execute submits a batch's writes. Only the last write carries the
// batch's fdatasync and completes it; a write that seals a segment is
// synced and waited for, so that nothing is written to the next segment
// before the previous one is durable (which lets replay treat any damage
// in a sealed segment as corruption).
func (j *FileJournal) execute(b *batch, ops []op) {
	for i, o := range ops {
		last := i == len(ops)-1
		f, err := j.openFile(o.c.seg)
		if err != nil {
			j.finishBatch(b, err)
			return
		}
		p := o.c.buf[o.from:o.to]
		off := o.c.base + int64(o.from)
		seq, end := o.c.seg.hdr.seq, off+int64(len(p))
		j.stats.bytes.Add(int64(len(p)))
		switch {
		case o.seal:
			errc := make(chan error, 1)
			t0 := time.Now()
			f.Submit(p, off, true, func(err error) { errc <- err })
			err := <-errc
			j.stats.syncLat.Observe(time.Since(t0))
			if err == nil {
				err = b.firstErr()
			}
			if err == nil {
				j.setDurable(seq, end)
				b.end, b.hasEnd = Position{Seq: seq, Offset: end}, true
				j.sealed(o.c.seg)
			}
			if err != nil || last {
				j.finishBatch(b, err)
				return
			}
		case !last:
			f.Submit(p, off, false, b.noteErr)
		default:
			sync := b.sync
			t0 := time.Now()
			complete := func(err error) {
				d := time.Since(t0)
				j.stats.busyNanos.Add(int64(d))
				if sync {
					j.stats.syncLat.Observe(d)
				}
				if err == nil {
					err = b.firstErr()
				}
				if err == nil && sync {
					j.setDurable(seq, end)
					b.end, b.hasEnd = Position{Seq: seq, Offset: end}, true
				}
				j.finishBatch(b, err)
			}
			// With no earlier batch in flight, write (and fdatasync) on
			// this goroutine: for io_uring that saves the reaper's wake-up
			// and the io-wq punt of the linked fdatasync, which cost more
			// CPU and latency than pwrite + fdatasync. Only this flusher
			// adds inflight tokens, so len 1 is this batch's own. While it
			// syncs, appends gather for the next batch.
			if ss, ok := f.(aio.SyncSubmitter); ok && len(j.inflight) == 1 && (cap(j.inflight) == 1 || len(b.waiters) <= inlineMax) {
				ss.SubmitSync(p, off, sync, complete)
			} else {
				f.Submit(p, off, sync, complete)
			}
		}
	}
	if len(ops) == 0 {
		j.finishBatch(b, nil)
	}
}

// openFile returns the open file of seg, opening it once its file is
// prepared.
func (j *FileJournal) openFile(seg *segment) (aio.File, error) {
	if seg.file != nil {
		return seg.file, nil
	}
	if waited, err := j.prep.wait(seg.hdr.seq); err != nil {
		return nil, err
	} else if waited > 0 {
		j.stats.prepWaits.Add(1)
		j.stats.prepNanos.Add(int64(waited))
	}
	f := j.prep.take(seg.hdr.seq) // opened ahead by the preparer
	if f == nil {
		var err error
		if f, err = j.fs.OpenAppend(seg.path); err != nil {
			return nil, fmt.Errorf("journal: open segment %s: %w", seg.path, err)
		}
	}
	if f.Alignment() != j.align {
		f.Close()
		return nil, fmt.Errorf("journal: segment %s has alignment %d, the journal uses %d", seg.path, f.Alignment(), j.align)
	}
	seg.file = f
	return f, nil
}

// sealed finishes a segment whose seal record is durable: its file goes to
// the preparer to be closed, off the flusher (a close error fails the
// journal from there). No directory fsync is needed: the segment's name
// was durable before its first write (the preparer syncs the directory
// after every rename into a segment name, and the load syncs it before
// appending).
func (j *FileJournal) sealed(seg *segment) {
	f := seg.file
	seg.file = nil
	j.prep.closeLater(f)
}

// finishBatch completes a batch: its waiters get err (or the journal's
// fatal error, if an earlier batch failed), its chunks are recycled.
// It runs on the flusher or on the backend's completion goroutine, in
// batch order.
func (j *FileJournal) finishBatch(b *batch, err error) {
	j.mu.Lock()
	if err != nil {
		j.failLocked(err)
	}
	if j.err != nil {
		err = j.err
	}
	for _, c := range b.release {
		if c.pooled && len(j.free) < 8 {
			c.seg = nil
			j.free = append(j.free, c)
		}
	}
	j.mu.Unlock()
	j.stats.batches.Add(1)
	if b.sync && err == nil {
		j.stats.syncs.Add(1)
	}
	kept := j.completeBatch(b.waiters, err, b.end, b.hasEnd && b.sync)
	if err == nil && len(b.reclaim) > 0 {
		j.prep.reclaimFiles(b.reclaim, b.inUse)
	}
	if !kept {
		clear(b.waiters)
		j.mu.Lock()
		if j.spareWaiters == nil {
			j.spareWaiters = b.waiters[:0]
		}
		j.mu.Unlock()
	}
	<-j.inflight
}
