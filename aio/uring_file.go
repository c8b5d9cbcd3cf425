package aio

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxURingWrite is the largest write one SQE carries: Linux transfers at
// most MAX_RW_COUNT (2 GiB - 4 KiB) per call; larger would come back short.
const maxURingWrite = 1 << 30

// maxRingEntries bounds the SQ ring; a File keeps at most half of it in
// flight (a write and its fdatasync take two SQEs), so MaxIO above 2048 is
// clamped.
const maxRingEntries = 4096

// uringFile appends through io_uring with O_DIRECT. Submitters fill SQEs and
// call io_uring_enter under sqMu; one reaper goroutine, started by
// openURing and stopped by Close, owns the CQ ring and calls every done in
// submission order.
type uringFile struct {
	name     string
	align    int
	datasync bool
	reader   *os.File
	wfd      int
	ring     *ring
	log      *slog.Logger

	sem     chan struct{} // one token per request not yet delivered
	syncSem chan struct{} // one token per synced request not yet delivered

	sqMu sync.Mutex // the SQ ring: SQE filling, tail, io_uring_enter(submit)

	mu          sync.Mutex
	cond        *sync.Cond // reaper waits for work; Close waits for the drain
	seq         uint64     // next sequence number to assign
	next        uint64     // next sequence number to deliver
	delivered   uint64     // requests whose done has returned
	syncWaiting bool       // SubmitSync waits for delivered to reach seq
	slots       []uringReq // indexed by seq % len(slots)
	pendingCQE  int        // CQEs submitted and not yet reaped
	unsynced    int        // writes without their own fdatasync not yet reaped
	err         error      // first I/O error observed, sticky
	closing     bool
	reaperGone  bool
	reordered   atomic.Int64 // requests fully completed while an earlier one was pending
	onCQE       func(c cqe)  // test hook, called with mu held
	exited      chan struct{}
}

// uringReq is one Submit until its done is called. p keeps the buffer
// referenced while the kernel may still read it.
type uringReq struct {
	used      bool
	p         []byte
	off       int64
	sync      bool
	holdsSync bool // holds a syncSem token
	done      func(error)
	cqes      int   // CQEs still expected
	err       error // rejected before submission
	writeErr  error
	syncErr   error
}

// setupRing creates a File's ring; tests replace it to make setup fail.
var setupRing = newRing

// ringSetupError is an io_uring_setup (or mmap) failure for one File; the
// OS file system falls back to Direct on it.
type ringSetupError struct {
	file string
	err  error
}

func (e *ringSetupError) Error() string { return fmt.Sprintf("aio: %s: %v", e.file, e.err) }
func (e *ringSetupError) Unwrap() error { return e.err }

func openURing(name string, opts Options) (File, error) {
	maxIO := opts.maxIO()
	entries := uint32(maxRingEntries)
	if 2*maxIO < maxRingEntries {
		entries = 1 << bits.Len32(uint32(2*maxIO-1))
	}
	if maxIO > int(entries/2) {
		maxIO = int(entries / 2)
	}
	wfd, err := openNoIntr(name, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_DIRECT)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("aio: open %s with O_DIRECT: %w", name, ErrDirectUnsupported)
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	r, err := os.Open(name)
	if err != nil {
		unix.Close(wfd)
		return nil, err
	}
	rg, err := setupRing(entries)
	if err != nil {
		unix.Close(wfd)
		r.Close()
		return nil, &ringSetupError{file: name, err: err}
	}
	f := &uringFile{
		name:     name,
		align:    dioAlignment(wfd),
		datasync: opts.Datasync,
		reader:   r,
		wfd:      wfd,
		ring:     rg,
		log:      opts.logger(),
		sem:      make(chan struct{}, maxIO),
		syncSem:  make(chan struct{}, opts.maxSyncs()),
		slots:    make([]uringReq, maxIO),
		exited:   make(chan struct{}),
	}
	f.cond = sync.NewCond(&f.mu)
	go f.reaper()
	return f, nil
}

func (f *uringFile) Name() string   { return f.name }
func (f *uringFile) Alignment() int { return f.align }

func (f *uringFile) ReadAt(p []byte, off int64) (int, error) { return f.reader.ReadAt(p, off) }

// Submit queues a write (and, when sync and Options.Datasync, a linked
// fdatasync) and returns once the kernel has it; done runs later on the
// reaper goroutine. It blocks while MaxIO requests, or MaxSyncs synced
// ones, are undelivered. done must not block on this File (no Submit or
// Close from inside it).
func (f *uringFile) Submit(p []byte, off int64, sync bool, done func(error)) {
	holdsSync := sync && f.datasync
	if holdsSync {
		f.syncSem <- struct{}{}
	}
	f.sem <- struct{}{}
	f.sqMu.Lock()
	defer f.sqMu.Unlock()

	f.mu.Lock()
	if f.reaperGone {
		f.mu.Unlock()
		<-f.sem
		if holdsSync {
			<-f.syncSem
		}
		done(ErrClosed)
		return
	}
	seq := f.seq
	f.seq++
	r := &f.slots[seq%uint64(len(f.slots))]
	*r = uringReq{used: true, p: p, off: off, sync: sync, holdsSync: holdsSync, done: done}
	switch {
	case f.closing:
		r.err = ErrClosed
	case f.err != nil:
		r.err = &stickyError{file: f.name, err: f.err}
	case len(p) > maxURingWrite:
		r.err = fmt.Errorf("aio: %s: write of %d bytes at offset %d: larger than one io_uring write (%d bytes)", f.name, len(p), off, maxURingWrite)
		f.err = r.err
	default:
		if err := checkAligned(f.name, p, off, f.align); err != nil {
			r.err = err
			f.err = err
		}
	}
	if r.err != nil {
		f.cond.Signal()
		f.mu.Unlock()
		return
	}
	withSync := sync && f.datasync
	// A fdatasync covers only writes that completed before it started. When
	// writes submitted without sync are still in flight, drain them first.
	drain := withSync && f.unsynced > 0
	n := 1
	if withSync {
		n = 2
	} else {
		f.unsynced++
	}
	r.cqes = n
	f.mu.Unlock()

	consumed, err := f.enqueue(seq, p, off, withSync, drain)

	f.mu.Lock()
	f.pendingCQE += consumed
	if err != nil {
		r.cqes -= n - consumed
		if consumed == 0 && !withSync {
			f.unsynced--
		}
		r.writeErr = fmt.Errorf("aio: %s: io_uring submit of write at offset %d: %w", f.name, off, err)
		if f.err == nil {
			f.err = r.writeErr
		}
	}
	f.cond.Signal()
	f.mu.Unlock()
}

// SubmitSync waits until every request submitted before it has been
// delivered, then writes p at off with pwrite on the O_DIRECT descriptor
// (and fdatasync when sync and Options.Datasync ask for it), and calls done
// before returning. With nothing in flight this is cheaper than a round trip
// through the ring. Errors are sticky across both paths.
func (f *uringFile) SubmitSync(p []byte, off int64, sync bool, done func(error)) {
	f.sqMu.Lock()
	defer f.sqMu.Unlock()
	f.mu.Lock()
	for f.delivered != f.seq && !f.reaperGone {
		f.syncWaiting = true
		f.cond.Wait()
	}
	f.syncWaiting = false
	var err error
	switch {
	case f.closing || f.reaperGone:
		err = ErrClosed
	case f.err != nil:
		err = &stickyError{file: f.name, err: f.err}
	default:
		err = checkAligned(f.name, p, off, f.align)
	}
	f.mu.Unlock()
	if err == nil {
		err = pwriteSync(f.name, f.wfd, p, off, sync && f.datasync)
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
	done(err)
}

// enqueue fills the SQEs of one request and submits them; it returns how
// many the kernel took. Called with sqMu held.
func (f *uringFile) enqueue(seq uint64, p []byte, off int64, withSync, drain bool) (int, error) {
	rg := f.ring
	want := uint32(1)
	if withSync {
		want = 2
	}
	if rg.sqFree() < want {
		return 0, errors.New("submission queue full")
	}
	tail := *rg.sqTail
	w := rg.nextSQE(tail)
	w.opcode = opWrite
	w.fd = int32(f.wfd)
	w.off = uint64(off)
	w.addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p))))
	w.len = uint32(len(p))
	w.userData = seq << 1
	if drain {
		w.flags |= sqeIODrain
	}

	if withSync {
		w.flags |= sqeIOLink
		s := rg.nextSQE(tail + 1)
		s.opcode = opFsync
		s.fd = int32(f.wfd)
		s.opFlags = fsyncDatasync
		s.userData = seq<<1 | 1
	}
	rg.publish(tail + want)

	var done uint32
	for tries := 0; done < want; {
		n, err := uringEnter(rg.fd, want-done, 0, 0)
		if n > 0 {
			done += uint32(n)
		}
		switch {
		case err == nil || err == unix.EINTR:
		case (err == unix.EAGAIN || err == unix.EBUSY) && tries < 100:
			tries++
			time.Sleep(100 * time.Microsecond)
		default:
			// Take back what the kernel did not consume.
			rg.publish(tail + done)
			return int(done), err
		}
	}
	return int(done), nil
}

// reaper reaps CQEs and delivers completions in sequence order until Close
// has been called and everything submitted has been delivered.
func (f *uringFile) reaper() {
	defer close(f.exited)
	var ready []uringReq
	var deliveredErr error
	for {
		f.mu.Lock()
		for f.pendingCQE <= 0 && !f.headReady() && !(f.closing && f.next == f.seq) {
			f.cond.Wait()
		}
		if f.closing && f.next == f.seq && f.pendingCQE <= 0 {
			f.reaperGone = true
			f.cond.Broadcast()
			f.mu.Unlock()
			return
		}
		wait := f.pendingCQE > 0 && !f.headReady()
		f.mu.Unlock()

		if wait {
			if _, err := uringEnter(f.ring.fd, 0, 1, enterGetEvents); err != nil &&
				err != unix.EINTR && err != unix.EAGAIN && err != unix.EBUSY {
				f.log.Error("io_uring_enter(GETEVENTS) failed; retrying", "file", f.name, "err", err)
				time.Sleep(time.Millisecond)
			}
		}

		f.mu.Lock()
		f.pendingCQE -= f.ring.reap(f.complete)
		for f.headReady() {
			i := f.next % uint64(len(f.slots))
			ready = append(ready, f.slots[i])
			f.slots[i] = uringReq{}
			f.next++
		}
		f.mu.Unlock()

		for i := range ready {
			r := &ready[i]
			err := r.result()
			if err == nil && deliveredErr != nil {
				// A write ahead of this one failed, so this one is not
				// durable in the sense the journal needs.
				err = &stickyError{file: f.name, err: deliveredErr}
			}
			if err != nil && deliveredErr == nil && !errors.Is(err, ErrClosed) {
				deliveredErr = err
			}
			<-f.sem
			if r.holdsSync {
				<-f.syncSem
			}
			r.done(err)
			ready[i] = uringReq{}
		}
		if len(ready) > 0 {
			f.mu.Lock()
			f.delivered += uint64(len(ready))
			if f.syncWaiting {
				f.cond.Broadcast()
			}
			f.mu.Unlock()
		}
		ready = ready[:0]
	}
}

// headReady reports whether the next request to deliver has all its CQEs.
// Called with mu held.
func (f *uringFile) headReady() bool {
	if f.next == f.seq {
		return false
	}
	r := &f.slots[f.next%uint64(len(f.slots))]
	return r.used && r.cqes == 0
}

// complete records one CQE. Called with mu held.
func (f *uringFile) complete(c cqe) {
	if f.onCQE != nil {
		f.onCQE(c)
	}
	seq := c.userData >> 1
	r := &f.slots[seq%uint64(len(f.slots))]
	if !r.used || r.cqes <= 0 {
		f.log.Error("io_uring completion for an unknown request", "file", f.name, "user_data", c.userData, "res", c.res)
		return
	}
	r.cqes--
	if r.cqes == 0 && seq != f.next {
		f.reordered.Add(1)
	}
	if c.userData&1 == 1 {
		if c.res < 0 {
			r.syncErr = fmt.Errorf("aio: %s: fdatasync after write at offset %d: %w", f.name, r.off, unix.Errno(-c.res))
			// A cancelled fdatasync follows a failed write, whose CQE
			// carries the real error.
			if f.err == nil && unix.Errno(-c.res) != unix.ECANCELED {
				f.err = r.syncErr
			}
		}
		return
	}
	if !r.sync || !f.datasync {
		f.unsynced--
	}
	switch {
	case c.res < 0:
		r.writeErr = fmt.Errorf("aio: %s: write of %d bytes at offset %d: %w", f.name, len(r.p), r.off, unix.Errno(-c.res))
	case int(c.res) != len(r.p):
		// Short writes are not resubmitted: the linked fdatasync has been
		// cancelled already, and O_DIRECT only writes short on errors.
		r.writeErr = fmt.Errorf("aio: %s: write of %d bytes at offset %d wrote %d: %w", f.name, len(r.p), r.off, c.res, errShortWrite)
	}
	if r.writeErr != nil {
		f.err = r.writeErr
	}
}

func (r *uringReq) result() error {
	switch {
	case r.err != nil:
		return r.err
	case r.writeErr != nil:
		return r.writeErr
	}
	return r.syncErr
}

// Close waits until every submitted request has been delivered, stops the
// reaper, unmaps and closes the ring and the file.
func (f *uringFile) Close() error {
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		return ErrClosed
	}
	f.closing = true
	f.cond.Broadcast()
	f.mu.Unlock()
	<-f.exited

	err := f.ring.close()
	if cerr := unix.Close(f.wfd); err == nil {
		err = cerr
	}
	if rerr := f.reader.Close(); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("aio: close %s: %w", f.name, err)
	}
	return nil
}
