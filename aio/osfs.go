package aio

import (
	"fmt"
	"os"
	"slices"
)

// osFS is the real file system: appends through the chosen backend, plain
// files as *os.File.
type osFS struct {
	kind Kind
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
	fs := &osFS{kind: kind, opts: opts}
	switch kind {
	case NIO, Direct:
	case IOUring:
		if err := probeIOUring(opts); err != nil {
			opts.logger().Warn("io_uring unavailable, journal appends use O_DIRECT pwrite + fdatasync instead",
				"err", err)
			fs.kind = Direct
		}
	default:
		opts.logger().Warn("unknown aio backend, using NIO", "kind", kind.String())
		fs.kind = NIO
	}
	return fs
}

func (fs *osFS) Kind() Kind { return fs.kind }

func (fs *osFS) OpenAppend(name string) (File, error) {
	switch fs.kind {
	case Direct:
		return openPwrite(name, true, fs.opts)
	case IOUring:
		return openURing(name, fs.opts)
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

func (f plainFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
