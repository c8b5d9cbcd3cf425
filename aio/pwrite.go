package aio

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// pwriteFile is the synchronous backend: pwrite (buffered or O_DIRECT)
// followed by fdatasync, done called before Submit returns.
type pwriteFile struct {
	name     string
	align    int
	datasync bool
	reader   *os.File // ordinary descriptor for ReadAt

	mu     sync.Mutex // serialises Submit, so done runs in submission order
	wfd    int        // write descriptor (O_DIRECT for the Direct backend)
	err    error      // first I/O error, sticky
	closed bool
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
	r, err := os.Open(name)
	if err != nil {
		unix.Close(wfd)
		return nil, err
	}
	return &pwriteFile{name: name, align: align, datasync: opts.Datasync, reader: r, wfd: wfd}, nil
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

// Submit writes p at off, then fdatasyncs when sync (and Options.Datasync)
// ask for it, and calls done before returning. done must not call Submit or
// Close on the same File.
func (f *pwriteFile) Submit(p []byte, off int64, sync bool, done func(error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	done(f.submitLocked(p, off, sync))
}

func (f *pwriteFile) submitLocked(p []byte, off int64, sync bool) error {
	if f.closed {
		return ErrClosed
	}
	if f.err != nil {
		return &stickyError{file: f.name, err: f.err}
	}
	if err := checkAligned(f.name, p, off, f.align); err != nil {
		f.err = err
		return err
	}
	if err := pwriteSync(f.name, f.wfd, p, off, sync && f.datasync); err != nil {
		f.err = err
		return err
	}
	return nil
}

// SubmitSync is Submit: this backend is synchronous already.
func (f *pwriteFile) SubmitSync(p []byte, off int64, sync bool, done func(error)) {
	f.Submit(p, off, sync, done)
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

// Close closes both descriptors. A synchronous backend has nothing in
// flight once Submit has returned.
func (f *pwriteFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	f.closed = true
	err := unix.Close(f.wfd)
	if rerr := f.reader.Close(); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("aio: close %s: %w", f.name, err)
	}
	return nil
}
