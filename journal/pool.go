package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/aio"
)

// preparer creates segment files ahead of the writer, off the hot path:
// a temporary file is filled with zeros (written extents: fdatasync then
// has no metadata to journal), fsynced, renamed to the segment's name and
// the directory fsynced. A prepared file has an all-zero header, which
// replay reads as "unused"; the writer's first flush into it writes the
// header. One goroutine, owned by the journal, started by start and ended
// by stop.
//
// It also keeps the rest of a rotation off the flusher: it opens each
// prepared segment for appends ahead of the writer (take hands the open
// file over) and closes the segments the flusher sealed (closeLater).
//
// Latency (issue 20): the zeros go out in chunks of zeroChunk, each handed
// to the disk at once (aio.WritebackStarter) so that the final fsync has
// little left and a journal fdatasync never queues behind megabytes of
// zeros; between chunks, and after each file it recycles, removes, opens
// or closes, the preparer yields the processor, and between chunks it
// pauses (prepPause) unless the writer is waiting for the file. With one
// Go processor (the broker on two CPUs or fewer) a goroutine keeps the
// processor through a run of short system calls until it blocks or the
// runtime's monitor takes the processor back, which can take up to 10 ms:
// a 10 MiB zero-fill in one go held every connection and the flusher for
// its whole duration.
type preparer struct {
	fs   aio.FS
	dir  string
	nm   Naming
	size int64

	mu      sync.Mutex
	cond    sync.Cond
	ready   uint64 // every sequence up to ready has a prepared or used file
	want    uint64
	cur     uint64        // the segment the writer appends to
	poolMax int           // journal-pool-files (-1: no limit)
	minFile int           // journal-min-files: reclaim never removes below it
	inUse   int           // segments in use, as of the last reclaim
	reclaim []reclaimItem // reclaimed segment files to recycle or remove, oldest first
	// gone: no segment below it has a file under its segment name any
	// more, durably (removed or renamed, and the directory synced). A
	// compaction waits for it to reach its prefix (see compactSwitch).
	gone    uint64
	err     error
	stopped bool
	exited  chan struct{}
	// onErr receives the preparer's storage error (called once, without
	// p.mu held): the journal fails at once, as for any storage error.
	onErr func(error)
	// open, when set, opens a prepared segment for appends (the journal's
	// FS.OpenAppend); the file waits in opened until the flusher takes it.
	open     func(path string) (aio.File, error)
	opened   map[uint64]aio.File
	toClose  []aio.File   // sealed segments the flusher handed over
	closeErr error        // first error closing one (reported by stop)
	waiting  atomic.Int32 // flushers blocked in wait: preparation is urgent

	created  int   // files created (metrics, tests)
	recycled int   // reclaimed files turned into prepared ones
	removed  int   // reclaimed files removed (pool full)
	rbytes   int64 // bytes of reclaimed files
}

// reclaimItem is a file queued for recycling or removal: a reclaimed
// segment (seq > 0) or a compaction's removed segment renamed to .free
// (seq 0: its segment name is already gone).
type reclaimItem struct {
	path string
	seq  uint64
}

func newPreparer(fs aio.FS, dir string, nm Naming, size int64, ready uint64, poolMax int) *preparer {
	p := &preparer{fs: fs, dir: dir, nm: nm, size: size, ready: ready, want: ready, poolMax: poolMax}
	p.cond.L = &p.mu
	return p
}

func (p *preparer) start() {
	p.exited = make(chan struct{})
	go p.loop()
}

// request asks for files up to sequence upTo; the writer appends to
// upTo-1.
func (p *preparer) request(upTo uint64) {
	p.mu.Lock()
	p.cur = max(p.cur, upTo-1)
	if upTo > p.want {
		p.want = upTo
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

// wait blocks until the file of seq is ready, or preparation failed. It
// returns how long it waited (0 when the file was ready).
func (p *preparer) wait(seq uint64) (time.Duration, error) {
	p.request(seq)
	p.mu.Lock()
	defer p.mu.Unlock()
	var t0 time.Time
	if p.ready < seq && p.err == nil && !p.stopped {
		t0 = time.Now()
		p.waiting.Add(1)
		defer p.waiting.Add(-1)
	}
	for p.ready < seq && p.err == nil && !p.stopped {
		p.cond.Wait()
	}
	var waited time.Duration
	if !t0.IsZero() {
		waited = max(time.Since(t0), 1)
	}
	switch {
	case p.ready >= seq:
		return waited, nil
	case p.err != nil:
		return waited, p.err
	}
	return waited, ErrClosed
}

func (p *preparer) loop() {
	defer close(p.exited)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for !p.stopped && p.err == nil && p.ready >= p.want && len(p.reclaim) == 0 && len(p.toClose) == 0 && !p.toOpenLocked() {
			p.cond.Wait()
		}
		if p.err != nil && p.onErr != nil {
			err := p.err
			p.mu.Unlock()
			p.onErr(err)
			p.mu.Lock()
		}
		if p.stopped || p.err != nil {
			return
		}
		if len(p.toClose) > 0 {
			f := p.toClose[0]
			p.toClose = p.toClose[1:]
			p.mu.Unlock()
			err := f.Close()
			runtime.Gosched()
			p.mu.Lock()
			if err != nil && p.closeErr == nil {
				p.closeErr = fmt.Errorf("journal: close sealed segment %s: %w", f.Name(), err)
			}
			continue
		}
		if p.toOpenLocked() {
			seq := p.cur + 1
			path := filepath.Join(p.dir, SegmentName(p.nm.Prefix, p.nm.Ext, seq))
			p.mu.Unlock()
			f, err := p.open(path)
			runtime.Gosched()
			p.mu.Lock()
			if p.opened == nil {
				p.opened = map[uint64]aio.File{}
			}
			switch {
			case err != nil:
				// The flusher opens it itself and reports the error.
				p.opened[seq] = nil
			case p.cur+1 != seq || p.stopped:
				f.Close()
			default:
				p.opened[seq] = f
			}
			p.cond.Broadcast()
			continue
		}
		if len(p.reclaim) > 0 {
			item := p.reclaim[0]
			p.reclaim = p.reclaim[1:]
			// The next segment is always prepared; journal-pool-files
			// more are kept from reclaim.
			pool := int(p.ready - p.cur)
			recycle := p.poolMax < 0 || pool <= p.poolMax || p.inUse+pool < p.minFile
			seq := p.ready + 1
			p.mu.Unlock()
			recycled, err := p.recycleOrRemove(item.path, recycle, seq)
			p.mu.Lock()
			switch {
			case err != nil:
				p.err = err
			case recycled:
				p.ready = seq
				p.recycled++
			default:
				p.removed++
			}
			if err == nil && item.seq > 0 {
				p.gone = max(p.gone, item.seq+1)
			}
			p.rbytes += p.size
			p.cond.Broadcast()
			p.mu.Unlock()
			runtime.Gosched()
			p.mu.Lock()
			continue
		}
		seq := p.ready + 1
		p.mu.Unlock()
		err := p.create(seq, p.pace)
		p.mu.Lock()
		if err != nil {
			p.err = err
		} else {
			p.ready = seq
			p.created++
		}
		p.cond.Broadcast()
	}
}

// prepareNow creates files up to upTo on the caller's goroutine (at load,
// before the loop starts).
func (p *preparer) prepareNow(upTo uint64) error {
	for p.ready < upTo {
		if err := p.create(p.ready+1, nil); err != nil { // nothing to yield to at load
			return err
		}
		p.ready++
		p.created++
	}
	p.want = max(p.want, p.ready)
	return nil
}

// reclaimFiles queues reclaimed segment files (all their records are
// deleted and durable), oldest first, for recycling or removal.
func (p *preparer) reclaimFiles(items []reclaimItem, inUse int) {
	p.mu.Lock()
	p.inUse = inUse
	p.reclaim = append(p.reclaim, items...)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// waitGone blocks until no segment below seq has a file under its
// segment name (durably), the preparer fails or stops, or ctx ends.
func (p *preparer) waitGone(ctx context.Context, seq uint64) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.gone < seq && p.err == nil && !p.stopped && ctx.Err() == nil {
		p.cond.Wait()
	}
	switch {
	case p.gone >= seq:
		return nil
	case p.err != nil:
		return p.err
	case p.stopped:
		return ErrClosed
	}
	return ctx.Err()
}

// noteGone records that no segment below seq has a file under its
// segment name any more (a compaction's switch renamed its prefix's).
func (p *preparer) noteGone(seq uint64) {
	p.mu.Lock()
	p.gone = max(p.gone, seq)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// recycleOrRemove turns a reclaimed segment into the prepared file of seq
// (rename, directory fsync, then its header zeroed and synced: a crash in
// between leaves a file whose header names another sequence, which load
// treats as an unused file after the last segment), or removes it.
// A file of another size (journal-file-size changed) is removed.
func (p *preparer) recycleOrRemove(path string, recycle bool, seq uint64) (bool, error) {
	if recycle {
		f, err := p.fs.Open(path)
		if err != nil {
			return false, fmt.Errorf("journal: recycle segment: %w", err)
		}
		size, err := f.Size()
		f.Close()
		if err != nil {
			return false, fmt.Errorf("journal: recycle segment: %w", err)
		}
		recycle = size == p.size
	}
	if !recycle {
		if err := p.fs.Remove(path); err != nil {
			return false, fmt.Errorf("journal: remove reclaimed segment: %w", err)
		}
		if err := p.fs.SyncDir(p.dir); err != nil {
			return false, fmt.Errorf("journal: remove reclaimed segment: %w", err)
		}
		return false, nil
	}
	final := filepath.Join(p.dir, SegmentName(p.nm.Prefix, p.nm.Ext, seq))
	if err := p.fs.Rename(path, final); err != nil {
		return false, fmt.Errorf("journal: recycle segment: %w", err)
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		return false, fmt.Errorf("journal: recycle segment: %w", err)
	}
	f, err := p.fs.Open(final)
	if err != nil {
		return false, fmt.Errorf("journal: recycle segment: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteAt(zeroBlock[:SegmentHeaderSize], 0); err != nil {
		return false, fmt.Errorf("journal: recycle segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("journal: recycle segment: %w", err)
	}
	return true, nil
}

// toOpenLocked reports whether the segment after the writer's is prepared
// and not yet opened ahead.
func (p *preparer) toOpenLocked() bool {
	if p.open == nil || p.ready <= p.cur || p.cur == 0 {
		return false
	}
	_, done := p.opened[p.cur+1]
	return !done
}

// take returns the segment file seq opened ahead for appends, or nil. The
// caller owns it.
func (p *preparer) take(seq uint64) aio.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.opened[seq]
	delete(p.opened, seq)
	return f
}

// closeLater hands over a sealed segment's file (its seal is durable) to
// be closed off the flusher.
func (p *preparer) closeLater(f aio.File) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		p.noteCloseErr(f.Close(), f)
		return
	}
	p.toClose = append(p.toClose, f)
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *preparer) noteCloseErr(err error, f aio.File) {
	if err == nil {
		return
	}
	p.mu.Lock()
	if p.closeErr == nil {
		p.closeErr = fmt.Errorf("journal: close sealed segment %s: %w", f.Name(), err)
	}
	p.mu.Unlock()
}

// stop ends the goroutine, closes the files it holds and returns the first
// error closing a sealed segment.
func (p *preparer) stop() error {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
	if p.exited != nil {
		<-p.exited
	}
	p.mu.Lock()
	toClose, opened := p.toClose, p.opened
	p.toClose, p.opened = nil, nil
	p.mu.Unlock()
	var errs []error
	for _, f := range toClose {
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("journal: close sealed segment %s: %w", f.Name(), err))
		}
	}
	for _, f := range opened {
		if f != nil {
			f.Close() // never written to
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closeErr != nil {
		errs = append([]error{p.closeErr}, errs...)
	}
	return errors.Join(errs...)
}

// pace runs between two chunks of a zero-fill: it lets the goroutines
// that are ready run first (a sleep alone does not: when the thread was
// descheduled longer than the pause, the timer has fired by the time the
// processor looks for work), and unless the writer is waiting for the
// file, pauses, so that the disk sees the zeros in small steps between
// the journal's own writes.
func (p *preparer) pace() {
	runtime.Gosched()
	if p.waiting.Load() == 0 {
		time.Sleep(prepPause)
	}
}

// create prepares the file of seq, calling pace (if not nil) between the
// chunks of its zero-fill.
func (p *preparer) create(seq uint64, pace func()) error {
	final := filepath.Join(p.dir, SegmentName(p.nm.Prefix, p.nm.Ext, seq))
	tmp := final + ".tmp"
	if err := writeZeroFile(p.fs, tmp, p.size, pace); err != nil {
		return fmt.Errorf("journal: prepare segment %d: %w", seq, err)
	}
	if err := p.fs.Rename(tmp, final); err != nil {
		return fmt.Errorf("journal: prepare segment %d: %w", seq, err)
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		return fmt.Errorf("journal: prepare segment %d: %w", seq, err)
	}
	return nil
}

const (
	// zeroChunk is how much of a zero-fill is written (and handed to the
	// disk) at once: at a few hundred MB/s, about a millisecond of the
	// disk's time, the most a journal fdatasync waits behind it.
	zeroChunk = 256 << 10
	// prepPause is the preparer's pause between two chunks when the writer
	// is not waiting for the file: a 10 MiB segment takes at least 40 ms to
	// prepare, which a segment's worth of appends leaves by far at any
	// rate this journal reaches (one segment ahead is always prepared).
	prepPause = time.Millisecond
)

var zeroBlock = make([]byte, zeroChunk)

// writeZeroFile creates path holding size zero bytes, durably. It writes
// zeroChunk at a time, starts each chunk's writeback at once when the file
// can (aio.WritebackStarter) and calls pace, when not nil, between chunks.
func writeZeroFile(fs aio.FS, path string, size int64, pace func()) error {
	f, err := fs.Create(path)
	if err != nil {
		return err
	}
	wb, _ := f.(aio.WritebackStarter)
	for off := int64(0); off < size; {
		n := min(int64(len(zeroBlock)), size-off)
		if _, err := f.WriteAt(zeroBlock[:n], off); err != nil {
			f.Close()
			return err
		}
		if wb != nil {
			if err := wb.StartWriteback(off, n); err != nil {
				f.Close()
				return err
			}
		}
		off += n
		if pace != nil && off < size {
			pace()
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
