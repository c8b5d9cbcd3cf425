package aio

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// osFS is the real file system: appends through the chosen backend, plain
// files as *os.File.
type osFS struct {
	kind atomic.Int32 // a Kind; IOUring may become Direct, never back
	opts Options
}

// OS returns the real file system with appends through kind's backend.
//
// NIO and Direct are always available (Direct's OpenAppend fails with
// ErrDirectUnsupported on a file system that refuses O_DIRECT; it never
// falls back to buffered I/O by itself). IOUring is probed once here: when
// the kernel refuses io_uring_setup (EPERM, ENOSYS, EINVAL: sandboxes, old
// kernels, io_uring_disabled) or Options.DisableIOUring or the environment
// variable TANDEM_DISABLE_IO_URING=1 is set, OS logs a warning once and the
// returned FS uses Direct, which Kind then reports.
func OS(kind Kind, opts Options) FS {
	fs := &osFS{opts: opts}
	fs.kind.Store(int32(kind))
	switch kind {
	case NIO, Direct:
	case IOUring:
		if err := probeIOUring(opts); err != nil {
			opts.logger().Warn("io_uring unavailable, journal appends use O_DIRECT pwrite + fdatasync instead",
				"err", err)
			fs.kind.Store(int32(Direct))
		}
	default:
		opts.logger().Warn("unknown aio backend, using NIO", "kind", kind.String())
		fs.kind.Store(int32(NIO))
	}
	return fs
}

func (fs *osFS) Kind() Kind { return Kind(fs.kind.Load()) }

// OpenAppend opens name through the backend. If io_uring worked when OS
// probed it but a File's ring cannot be set up (ENOMEM, a lowered limit),
// the file system logs it and switches to Direct for this and later files.
func (fs *osFS) OpenAppend(name string) (File, error) {
	switch fs.Kind() {
	case Direct:
		return openPwrite(name, true, fs.opts)
	case IOUring:
		f, err := openURing(name, fs.opts)
		var rse *ringSetupError
		if errors.As(err, &rse) {
			if fs.kind.CompareAndSwap(int32(IOUring), int32(Direct)) {
				fs.opts.logger().Warn("io_uring ring setup failed, journal appends use O_DIRECT pwrite + fdatasync from now on",
					"file", name, "err", rse.err)
			}
			return openPwrite(name, true, fs.opts)
		}
		return f, err
	default:
		return openPwrite(name, false, fs.opts)
	}
}

func (fs *osFS) Create(name string) (PlainFile, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return plainFile{f}, nil
}

func (fs *osFS) Open(name string) (PlainFile, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return plainFile{f}, nil
}

func (fs *osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (fs *osFS) Remove(name string) error             { return os.Remove(name) }
func (fs *osFS) MkdirAll(dir string) error            { return os.MkdirAll(dir, 0o755) }

func (fs *osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (fs *osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("aio: fsync directory %s: %w", dir, err)
	}
	return d.Close()
}

// plainFile adds Size to *os.File.
type plainFile struct{ *os.File }

// StartWriteback starts writing [off, off+n) back (see WritebackStarter).
func (f plainFile) StartWriteback(off, n int64) error {
	for {
		err := unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "sync_file_range", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

func (f plainFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
