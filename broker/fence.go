package broker

import (
	"errors"
	"fmt"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
)

// errFenced fails a write to the shared file store by a broker that may
// no longer write: its lock verification is older than the lease (it was
// paused, or lost its lock). The journal treats it as fatal and the broker
// halts.
var errFenced = errors.New("write to the shared store refused: the HA lease is no longer valid")

// fencedFS gates every write of the shared file journal on may(): a
// database store is fenced by its epoch in each transaction, a shared
// directory has no such check, so a live that was paused (SIGSTOP, a VM
// freeze) and resumes after its backup took over could otherwise write
// batches it had queued into segments the new live already sealed (found
// by TestHAZombieLostLock: the seal was overwritten and the next load
// refused the store), or seal and flush them when it is then stopped
// (TestStopAfterLostLockLeavesStore).
//
// The gate checks when a write starts, not when the storage applies it.
// What remains (docs/ha-shared-store.md, "The in-flight window"): a write
// that passed the check while the proof was valid can still land later,
// (1) when the process is paused between the check and the system call
// (the same hole as an acknowledgement checked with CanAck and sent after
// a pause), and (2) for as long as the kernel and the storage hold a
// submitted request: an io_uring request in the device queue, a pwrite or
// fdatasync retrying on an NFS mount (soft: at most about timeo x
// (retrans+1)(retrans+2)/2 with the linear backoff; hard: without a
// bound). The fence is safe when that time stays below its margin
// (hasm.FenceMargin); a shared directory cannot do better, as it has no
// write fencing of its own (an NFSv4 server does refuse WRITEs under a
// state it revoked, but nothing here depends on that).
type fencedFS struct {
	aio.FS
	may func() bool
}

func (f *fencedFS) check(op, name string) error {
	if f.may() {
		return nil
	}
	return fmt.Errorf("%s %s: %w", op, name, errFenced)
}

func (f *fencedFS) OpenAppend(name string) (aio.File, error) {
	if err := f.check("open", name); err != nil {
		return nil, err
	}
	fl, err := f.FS.OpenAppend(name)
	if err != nil {
		return nil, err
	}
	return &fencedFile{File: fl, fs: f}, nil
}

func (f *fencedFS) Create(name string) (aio.PlainFile, error) {
	if err := f.check("create", name); err != nil {
		return nil, err
	}
	p, err := f.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &fencedPlain{PlainFile: p, fs: f}, nil
}

func (f *fencedFS) Open(name string) (aio.PlainFile, error) {
	p, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return &fencedPlain{PlainFile: p, fs: f}, nil
}

func (f *fencedFS) Rename(oldname, newname string) error {
	if err := f.check("rename", oldname); err != nil {
		return err
	}
	return f.FS.Rename(oldname, newname)
}

func (f *fencedFS) Remove(name string) error {
	if err := f.check("remove", name); err != nil {
		return err
	}
	return f.FS.Remove(name)
}

// fencedFile checks before every submitted write.
type fencedFile struct {
	aio.File
	fs *fencedFS
}

func (f *fencedFile) Submit(p []byte, off int64, sync bool, done func(error)) {
	if err := f.fs.check("write", f.Name()); err != nil {
		f.refuse(p, off, err, done)
		return
	}
	f.File.Submit(p, off, sync, done)
}

// refuse reports err for a request the fence stopped, in submission
// order: earlier requests may still wait for their fdatasync (the
// pwrite backends sync on a goroutine, io_uring completes later), and an
// aio.File completes in order. A zero-length write goes through the
// backend's queue instead of the refused bytes; nothing reaches the file.
func (f *fencedFile) refuse(p []byte, off int64, err error, done func(error)) {
	f.File.Submit(p[:0], off, false, func(e error) {
		if e == nil {
			e = err
		}
		done(e)
	})
}

// SubmitSync keeps the backend's synchronous fast path (the journal
// asserts aio.SyncSubmitter), gated like Submit.
func (f *fencedFile) SubmitSync(p []byte, off int64, sync bool, done func(error)) {
	if err := f.fs.check("write", f.Name()); err != nil {
		f.refuse(p, off, err, done)
		return
	}
	if ss, ok := f.File.(aio.SyncSubmitter); ok {
		ss.SubmitSync(p, off, sync, done)
		return
	}
	f.File.Submit(p, off, sync, done)
}

// fencedPlain checks before writes and truncations.
type fencedPlain struct {
	aio.PlainFile
	fs *fencedFS
}

func (f *fencedPlain) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check("write", f.Name()); err != nil {
		return 0, err
	}
	return f.PlainFile.WriteAt(p, off)
}

func (f *fencedPlain) Truncate(size int64) error {
	if err := f.fs.check("truncate", f.Name()); err != nil {
		return err
	}
	return f.PlainFile.Truncate(size)
}

// openFencedFileStore is server's file store with every write gated on
// may (same options as server.OpenStore's file journal).
func openFencedFileStore(cfg *config.Config, so server.StoreOptions, may func() bool) (*server.Store, error) {
	return openFileStoreOn(cfg, so, fencedOS(cfg, so, may))
}

// fencedOS is the configured journal backend with every write gated on
// may.
func fencedOS(cfg *config.Config, so server.StoreOptions, may func() bool) aio.FS {
	aopts := aio.DefaultOptions()
	aopts.Logger = so.Logger
	if cfg.Journal.MaxIO > 0 {
		aopts.MaxIO = cfg.Journal.MaxIO
	}
	aopts.Datasync = cfg.Journal.Datasync
	return &fencedFS{FS: aio.OS(cfg.Journal.Backend, aopts), may: may}
}

// openFileStoreOn opens the messages and bindings journals on fs.
func openFileStoreOn(cfg *config.Config, so server.StoreOptions, fs aio.FS) (*server.Store, error) {
	open := func(dir string, size int64) (*journal.FileJournal, error) {
		return journal.Open(server.FileJournalOptions(cfg, so, fs, dir, size))
	}
	m, err := open(cfg.Dirs.Journal, cfg.Journal.FileSize)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", cfg.Dirs.Journal, err)
	}
	b, err := open(cfg.Dirs.Bindings, server.BindingsSegmentSize)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open bindings journal %s: %w", cfg.Dirs.Bindings, err)
	}
	p, err := server.OpenPageLog(cfg, fs, so) // fenced like the others
	if err != nil {
		m.Close()
		b.Close()
		return nil, err
	}
	l, err := server.OpenLargeLog(cfg, fs, so)
	if err != nil {
		m.Close()
		b.Close()
		p.Close()
		return nil, err
	}
	return &server.Store{Kind: "file", Messages: m, Bindings: b, Pages: p, Large: l,
		Where: fmt.Sprintf("journal %s, bindings %s, paging %s, large messages %s", cfg.Dirs.Journal, cfg.Dirs.Bindings, cfg.Dirs.Paging, cfg.Dirs.LargeMessages)}, nil
}
