package aio

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// pwriteFile is the pwrite backend (buffered or O_DIRECT). Submit writes on
// the caller's goroutine; a synced Submit then hands its fdatasync to a
// goroutine and returns, so the caller can write the next batch while the
// previous one syncs. Up to Options.MaxSyncs fdatasyncs run at once (the
// device overlaps them: on this VM's virtio disk two concurrent 64 KiB
// write + fdatasync streams take no longer each than one). Completions are
// delivered in submission order.
//
// Each concurrent fdatasync runs on a descriptor of its own: Linux reports a
// writeback error once per open file description (errseq), so two
// fdatasyncs sharing one could each see only half of the errors, and a
// batch could be reported durable although its pages failed. With one
// description per sync, every fdatasync reports every error since that
// description's previous fdatasync.
type pwriteFile struct {
	name     string
	align    int
	datasync bool
	reader   *os.File // ordinary descriptor for ReadAt

	mu      sync.Mutex // serialises writes; Submit holds it until its sync has a descriptor
	wfd     int        // write descriptor (O_DIRECT for the Direct backend)
	closed  bool
	syncFDs chan int // idle fdatasync descriptors, one per sync allowed in flight
	allFDs  []int
	syncs   sync.WaitGroup // fdatasync goroutines

	dmu          sync.Mutex
	dcond        sync.Cond // Close and SubmitSync wait for everything to be delivered
	err          error     // first I/O error, sticky (under dmu)
	seq          uint64    // next sequence number to assign
	next         uint64    // sequence number of pending[head]
	pending      []pwriteReq
	head         int
	delivering   bool  // a goroutine is calling dones
	deliveredErr error // first error delivered (only the delivering goroutine touches it)
}

// pwriteReq is a Submit until its done is called.
type pwriteReq struct {
	done     func(error)
	err      error
	finished bool
}

func openPwrite(name string, direct bool, opts Options) (*pwriteFile, error) {
	flags := unix.O_WRONLY | unix.O_CLOEXEC
	if direct {
		flags |= unix.O_DIRECT
	}
	wfd, err := openNoIntr(name, flags)
	if err != nil {
		if direct && errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("aio: open %s with O_DIRECT: %w", name, ErrDirectUnsupported)
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	align := 1
	if direct {
		align = dioAlignment(wfd)
	}
	f := &pwriteFile{name: name, align: align, datasync: opts.Datasync, wfd: wfd}
	f.dcond.L = &f.dmu
	if f.datasync {
		n := opts.maxSyncs()
		f.syncFDs = make(chan int, n)
		for range n {
			fd, err := openNoIntr(name, unix.O_WRONLY|unix.O_CLOEXEC)
			if err != nil {
				f.closeFDs()
				return nil, &os.PathError{Op: "open", Path: name, Err: err}
			}
			f.allFDs = append(f.allFDs, fd)
			f.syncFDs <- fd
		}
	}
	if f.reader, err = os.Open(name); err != nil {
		f.closeFDs()
		return nil, err
	}
	return f, nil
}

func (f *pwriteFile) closeFDs() error {
	err := unix.Close(f.wfd)
	for _, fd := range f.allFDs {
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
	}
	f.allFDs = nil
	return err
}

func openNoIntr(name string, flags int) (int, error) {
	for {
		fd, err := unix.Open(name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func (f *pwriteFile) Name() string   { return f.name }
func (f *pwriteFile) Alignment() int { return f.align }

// Submit writes p at off on the calling goroutine. Without sync (or with
// Options.Datasync false) it completes then; with sync it starts an
// fdatasync on a goroutine of the File and returns, blocking first while
// Options.MaxSyncs fdatasyncs are running. done runs in submission order,
// on the caller's goroutine or a sync goroutine; it must not call Submit or
// Close on the same File. p is not used after Submit returns.
func (f *pwriteFile) Submit(p []byte, off int64, sync bool, done func(error)) {
	f.mu.Lock()
	seq, err := f.enter(done)
	if err == nil {
		err = f.write(p, off)
		f.noteErr(err) // before another Submit can write
	}
	if err != nil || !sync || !f.datasync {
		f.mu.Unlock()
		f.finish(seq, err)
		return
	}
	fd := <-f.syncFDs
	f.syncs.Add(1)
	f.mu.Unlock()
	go f.sync(seq, fd, off)
}

// enter assigns the next sequence number and returns the error that
// refuses the request (closed, or the sticky error). Called with mu held.
func (f *pwriteFile) enter(done func(error)) (uint64, error) {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	seq := f.seq
	f.seq++
	f.pending = append(f.pending, pwriteReq{done: done})
	switch {
	case f.closed:
		return seq, ErrClosed
	case f.err != nil:
		return seq, &stickyError{file: f.name, err: f.err}
	}
	return seq, nil
}

// write checks alignment and writes all of p at off. Called with mu held.
func (f *pwriteFile) write(p []byte, off int64) error {
	if err := checkAligned(f.name, p, off, f.align); err != nil {
		return err
	}
	if err := pwriteFull(f.wfd, p, off); err != nil {
		return fmt.Errorf("aio: %s: write of %d bytes at offset %d: %w", f.name, len(p), off, err)
	}
	return nil
}

// sync is the fdatasync of request seq, on a goroutine: it covers the
// request's write and every write completed before it started.
func (f *pwriteFile) sync(seq uint64, fd int, off int64) {
	defer f.syncs.Done()
	err := fdatasync(fd)
	if err != nil {
		err = fmt.Errorf("aio: %s: fdatasync after write at offset %d: %w", f.name, off, err)
		f.noteErr(err) // before the descriptor serves another sync
	}
	f.syncFDs <- fd
	f.finish(seq, err)
}

// noteErr makes err the sticky error unless there is one already.
func (f *pwriteFile) noteErr(err error) {
	if err != nil && !errors.Is(err, ErrClosed) {
		f.dmu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.dmu.Unlock()
	}
}

// finish records the outcome of request seq and delivers every finished
// request at the head of the queue, in order, unless another goroutine is
// delivering already (it will find this one).
func (f *pwriteFile) finish(seq uint64, err error) {
	f.noteErr(err)
	f.dmu.Lock()
	r := &f.pending[f.head+int(seq-f.next)]
	r.err, r.finished = err, true
	if f.delivering {
		f.dmu.Unlock()
		return
	}
	f.delivering = true
	for f.head < len(f.pending) && f.pending[f.head].finished {
		r := f.pending[f.head]
		f.pending[f.head] = pwriteReq{}
		f.head++
		f.next++
		if f.head == len(f.pending) {
			f.pending, f.head = f.pending[:0], 0
		}
		f.dmu.Unlock()
		err := r.err
		if err == nil && f.deliveredErr != nil {
			// A request ahead of this one failed: this one is not durable
			// in the sense the caller needs.
			err = &stickyError{file: f.name, err: f.deliveredErr}
		}
		if err != nil && f.deliveredErr == nil && !errors.Is(err, ErrClosed) {
			f.deliveredErr = err
		}
		r.done(err)
		f.dmu.Lock()
	}
	f.delivering = false
	if f.next == f.seq {
		f.dcond.Broadcast()
	}
	f.dmu.Unlock()
}

// waitDelivered waits until every request submitted so far has been
// delivered. Called with mu held, so none is added meanwhile.
func (f *pwriteFile) waitDelivered() {
	f.dmu.Lock()
	for f.next != f.seq || f.delivering {
		f.dcond.Wait()
	}
	f.dmu.Unlock()
}

// SubmitSync waits until every request submitted before it has been
// delivered, then writes p at off and fdatasyncs (when sync) on the calling
// goroutine, and calls done before returning: no goroutine hand-off, the
// cheapest path for a lone request.
func (f *pwriteFile) SubmitSync(p []byte, off int64, sync bool, done func(error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waitDelivered()
	f.dmu.Lock()
	var err error
	switch {
	case f.closed:
		err = ErrClosed
	case f.err != nil:
		err = &stickyError{file: f.name, err: f.err}
	}
	f.dmu.Unlock()
	if err == nil {
		err = f.write(p, off)
	}
	if err == nil && sync && f.datasync {
		if err = fdatasync(f.wfd); err != nil {
			err = fmt.Errorf("aio: %s: fdatasync after write at offset %d: %w", f.name, off, err)
		}
	}
	f.noteErr(err)
	done(err)
}

// pwriteFull writes all of p at off. A short write is continued from where
// it stopped (the kernel reports the reason, ENOSPC or EFBIG, on the next
// call); a write that makes no progress without an error is an error.
func pwriteFull(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return fmt.Errorf("pwrite wrote %d of %d bytes: %w", n, len(p), errShortWrite)
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

// pwriteSync writes all of p at off on fd, then fdatasyncs when datasync.
func pwriteSync(name string, fd int, p []byte, off int64, datasync bool) error {
	if err := pwriteFull(fd, p, off); err != nil {
		return fmt.Errorf("aio: %s: write of %d bytes at offset %d: %w", name, len(p), off, err)
	}
	if datasync {
		if err := fdatasync(fd); err != nil {
			return fmt.Errorf("aio: %s: fdatasync after write at offset %d: %w", name, off, err)
		}
	}
	return nil
}

var errShortWrite = errors.New("short write")

func fdatasync(fd int) error {
	for {
		err := unix.Fdatasync(fd)
		if err != unix.EINTR {
			return err
		}
	}
}

func (f *pwriteFile) ReadAt(p []byte, off int64) (int, error) { return f.reader.ReadAt(p, off) }

// Close waits for every submitted request to be delivered, then closes the
// descriptors.
func (f *pwriteFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dmu.Lock()
	if f.closed {
		f.dmu.Unlock()
		return ErrClosed
	}
	f.closed = true
	f.dmu.Unlock()
	f.waitDelivered()
	f.syncs.Wait()
	err := f.closeFDs()
	if rerr := f.reader.Close(); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("aio: close %s: %w", f.name, err)
	}
	return nil
}
