package crashfs

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"runtime"
	"slices"
	"sync"

	"github.com/tandemmq/tandem/aio"
)

// Options configures an FS.
type Options struct {
	// Kind is what Kind reports (aio.NIO by default).
	Kind aio.Kind
	// Alignment is what Files report and Submit enforces (1 by default;
	// 4096 to behave like O_DIRECT).
	Alignment int
	// SectorSize is the crash granularity: 512 (default) or 4096.
	SectorSize int
	// Async makes File.Submit asynchronous, as the io_uring backend is:
	// up to Async requests queue (Submit blocks beyond), and one goroutine
	// per File, started by OpenAppend and stopped by Close, carries them
	// out in submission order and calls each done. A crash loses the
	// requests still queued. Zero: Submit completes before it returns.
	Async int
	// ReorderDirOps makes a crash keep each directory operation not yet
	// synced (create, rename, remove) independently, with probability 1/2,
	// instead of a prefix of them: file systems that do not keep metadata
	// updates in order (ext2, ext4 without a journal, some network file
	// systems) can make a later rename durable and lose an earlier
	// create. Only SyncDir orders them.
	ReorderDirOps bool
}

// Op is a kind of operation faults are injected into.
type Op int

const (
	// OpWrite counts File.Submit writes.
	OpWrite Op = iota
	// OpSync counts synced Submits.
	OpSync
	// OpPlainWrite counts PlainFile.WriteAt calls.
	OpPlainWrite
	// OpPlainSync counts PlainFile.Sync calls.
	OpPlainSync
	// OpSyncDir counts SyncDir calls.
	OpSyncDir
	// OpCreate counts Create calls.
	OpCreate
	// OpRename counts Rename calls.
	OpRename
	// OpRemove counts Remove calls.
	OpRemove
	numOps
)

type inode struct {
	data    []byte
	durable []byte
	dirty   map[int64]struct{} // sectors written since they were last made durable
}

type nsKind int

const (
	nsCreate nsKind = iota
	nsRename
	nsRemove
)

// nsOp is a directory operation not yet made durable.
type nsOp struct {
	kind    nsKind
	dir     string
	name    string // full path
	newname string // full path (rename)
	ino     *inode // the file created, renamed or removed
}

type fault struct {
	n   int64
	err error
}

type hook struct {
	n    int64
	seed uint64
	kill bool // a Fork, not a Crash
	f    func(*FS)
}

// FS is the crash-simulating file system. It is safe for concurrent use.
type FS struct {
	opts Options

	mu      sync.Mutex
	names   map[string]*inode // current namespace, full paths
	durable map[string]*inode // namespace after a power loss, before pending ops
	pending []nsOp
	dirs    map[string]bool
	counts  [numOps]int64
	faults  [numOps][]fault
	hooks   [numOps][]hook

	gmu   sync.Mutex // gates
	gates []*Gate
}

// New returns an empty FS.
func New(opts Options) *FS {
	if opts.Alignment < 1 {
		opts.Alignment = 1
	}
	if opts.SectorSize <= 0 {
		opts.SectorSize = 512
	}
	return &FS{opts: opts, names: map[string]*inode{}, durable: map[string]*inode{}, dirs: map[string]bool{}}
}

// Inject makes the nth operation of kind op from now on (1 = the next
// one) fail with err.
func (fs *FS) Inject(op Op, n int, err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults[op] = append(fs.faults[op], fault{n: fs.counts[op] + int64(n), err: err})
}

// Count returns how many operations of kind op ran so far.
func (fs *FS) Count(op Op) int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.counts[op]
}

// CrashAt arranges a crash snapshot at the nth operation of kind op from
// now on (1 = the next one), taken just before that operation takes
// effect: for OpSync, after the synced Submit's write and before its
// fdatasync. f receives the snapshot synchronously, with the FS locked: it
// must not call the FS.
func (fs *FS) CrashAt(op Op, n int, seed uint64, f func(*FS)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.hooks[op] = append(fs.hooks[op], hook{n: fs.counts[op] + int64(n), seed: seed, f: f})
}

// count counts an operation, runs a crash hook due at it and returns its
// injected error, if any.
func (fs *FS) count(op Op) error {
	fs.counts[op]++
	for i, h := range fs.hooks[op] {
		if h.n == fs.counts[op] {
			fs.hooks[op] = slices.Delete(fs.hooks[op], i, i+1)
			if h.kill {
				h.f(fs.forkLocked())
			} else {
				h.f(fs.crashLocked(h.seed))
			}
			break
		}
	}
	for i, f := range fs.faults[op] {
		if f.n == fs.counts[op] {
			fs.faults[op] = slices.Delete(fs.faults[op], i, i+1)
			return f.err
		}
	}
	return nil
}

// KillAt is CrashAt for a process kill: f receives a Fork taken just
// before the nth operation of kind op from now on.
func (fs *FS) KillAt(op Op, n int, f func(*FS)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.hooks[op] = append(fs.hooks[op], hook{n: fs.counts[op] + int64(n), kill: true, f: f})
}

// Fork returns a new FS in the state a killed process leaves behind: the
// current files and names, with what is not durable yet (dirty sectors,
// directory operations not synced) still not durable, so that a later
// Crash of the fork can lose it. The fork is independent: operations on
// fs (the killed process's goroutines winding down) do not reach it.
// Faults and hooks are not copied.
func (fs *FS) Fork() *FS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.forkLocked()
}

func (fs *FS) forkLocked() *FS {
	out := New(fs.opts)
	for d := range fs.dirs {
		out.dirs[d] = true
	}
	copies := map[*inode]*inode{}
	cp := func(ino *inode) *inode {
		if ino == nil {
			return nil
		}
		if c, ok := copies[ino]; ok {
			return c
		}
		c := &inode{data: slices.Clone(ino.data), durable: slices.Clone(ino.durable), dirty: make(map[int64]struct{}, len(ino.dirty))}
		for s := range ino.dirty {
			c.dirty[s] = struct{}{}
		}
		copies[ino] = c
		return c
	}
	for n, ino := range fs.names {
		out.names[n] = cp(ino)
	}
	for n, ino := range fs.durable {
		out.durable[n] = cp(ino)
	}
	for _, op := range fs.pending {
		op.ino = cp(op.ino)
		out.pending = append(out.pending, op)
	}
	return out
}

// Crash returns a new FS holding what a power cut at this instant would
// leave, decided by seed: every durable byte, each dirty sector with
// probability 1/2, the durable directory state plus a random prefix of the
// pending directory operations. Faults are not copied.
func (fs *FS) Crash(seed uint64) *FS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.crashLocked(seed)
}

func (fs *FS) crashLocked(seed uint64) *FS {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	names := make(map[string]*inode, len(fs.durable))
	for n, ino := range fs.durable {
		names[n] = ino
	}
	if fs.opts.ReorderDirOps {
		for _, op := range fs.pending {
			if rng.IntN(2) == 0 {
				applyNS(names, op)
			}
		}
	} else {
		keep := 0
		if len(fs.pending) > 0 {
			keep = rng.IntN(len(fs.pending) + 1)
		}
		for _, op := range fs.pending[:keep] {
			applyNS(names, op)
		}
	}
	out := New(fs.opts)
	for d := range fs.dirs {
		out.dirs[d] = true
	}
	copies := map[*inode]*inode{}
	// Deterministic order: sorted names.
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	ss := int64(fs.opts.SectorSize)
	for _, n := range sorted {
		ino := names[n]
		c, ok := copies[ino]
		if !ok {
			c = &inode{data: slices.Clone(ino.durable), dirty: map[int64]struct{}{}}
			secs := make([]int64, 0, len(ino.dirty))
			for s := range ino.dirty {
				secs = append(secs, s)
			}
			slices.Sort(secs)
			for _, s := range secs {
				if rng.IntN(2) == 0 {
					continue
				}
				start, end := s*ss, min((s+1)*ss, int64(len(ino.data)))
				if start >= end {
					continue
				}
				if int64(len(c.data)) < end {
					c.data = append(c.data, make([]byte, end-int64(len(c.data)))...)
				}
				copy(c.data[start:end], ino.data[start:end])
			}
			c.durable = slices.Clone(c.data)
			copies[ino] = c
		}
		out.names[n] = c
		out.durable[n] = c
	}
	return out
}

// applyNS applies op to a namespace. Renames and removes act on the
// inode they acted on when they ran: with ReorderDirOps a rename can be
// kept without the create before it (the file then appears under its new
// name), and a name created again after a remove is not removed by it.
func applyNS(names map[string]*inode, op nsOp) {
	switch op.kind {
	case nsCreate:
		names[op.name] = op.ino
	case nsRename:
		if names[op.name] == op.ino {
			delete(names, op.name)
		}
		names[op.newname] = op.ino
	case nsRemove:
		if names[op.name] == op.ino {
			delete(names, op.name)
		}
	}
}

// A Gate watches for operations, and with Hold blocks them: a test can
// stop one goroutine's work (a background recycling, say) at a chosen
// operation while others go on, and release it at a moment of its
// choosing, without sleeps.
type Gate struct {
	fs      *FS
	match   func(op Op, name, newname string) bool
	block   bool
	once    sync.Once
	fired   chan struct{}
	release chan struct{}
	relOnce sync.Once
}

// Watch returns a Gate whose Fired channel is closed when an operation
// match selects first starts (before it takes effect). It blocks nothing.
// match receives the operation, the file (or directory, for SyncDir) and,
// for a rename, the new name; it runs without the FS locked and must not
// call the FS.
func (fs *FS) Watch(match func(op Op, name, newname string) bool) *Gate {
	return fs.addGate(match, false)
}

// Hold returns a Gate that blocks every operation match selects, before it
// takes effect (and before it counts for Inject and CrashAt), until
// Release. Fired is closed when the first one blocks. See Watch for match.
func (fs *FS) Hold(match func(op Op, name, newname string) bool) *Gate {
	return fs.addGate(match, true)
}

func (fs *FS) addGate(match func(op Op, name, newname string) bool, block bool) *Gate {
	g := &Gate{fs: fs, match: match, block: block, fired: make(chan struct{}), release: make(chan struct{})}
	fs.gmu.Lock()
	fs.gates = append(fs.gates, g)
	fs.gmu.Unlock()
	return g
}

// Fired is closed once an operation the gate selects has started (for
// Hold: is blocked).
func (g *Gate) Fired() <-chan struct{} { return g.fired }

// Release lets the operations a Hold blocks go on, and removes the gate.
// It may be called more than once.
func (g *Gate) Release() {
	g.relOnce.Do(func() {
		g.fs.gmu.Lock()
		g.fs.gates = slices.DeleteFunc(g.fs.gates, func(x *Gate) bool { return x == g })
		g.fs.gmu.Unlock()
		close(g.release)
	})
}

// gate runs the gates matching an operation (fs.mu not held).
func (fs *FS) gate(op Op, name, newname string) {
	fs.gmu.Lock()
	var hit []*Gate
	for _, g := range fs.gates {
		if g.match(op, name, newname) {
			hit = append(hit, g)
		}
	}
	fs.gmu.Unlock()
	for _, g := range hit {
		g.once.Do(func() { close(g.fired) })
		if g.block {
			<-g.release
		}
	}
}

func (fs *FS) pathErr(op, name string, err error) error {
	return &pathError{op: op, path: name, err: err}
}

type pathError struct {
	op, path string
	err      error
}

func (e *pathError) Error() string { return "crashfs: " + e.op + " " + e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// ErrNotExist is wrapped by operations on missing files.
var ErrNotExist = errors.New("file does not exist")

// Kind reports Options.Kind.
func (fs *FS) Kind() aio.Kind { return fs.opts.Kind }

// MkdirAll records dir (directories themselves are always durable).
func (fs *FS) MkdirAll(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.dirs[path.Clean(dir)] = true
	return nil
}

// List returns the names in dir, sorted.
func (fs *FS) List(dir string) ([]string, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir = path.Clean(dir)
	if !fs.dirs[dir] {
		return nil, fs.pathErr("list", dir, ErrNotExist)
	}
	var out []string
	for n := range fs.names {
		if path.Dir(n) == dir {
			out = append(out, path.Base(n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// SyncDir makes the pending directory operations in dir durable.
func (fs *FS) SyncDir(dir string) error {
	fs.gate(OpSyncDir, path.Clean(dir), "")
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.count(OpSyncDir); err != nil {
		return fs.pathErr("syncdir", dir, err)
	}
	dir = path.Clean(dir)
	rest := fs.pending[:0]
	for _, op := range fs.pending {
		if op.dir == dir {
			applyNS(fs.durable, op)
		} else {
			rest = append(rest, op)
		}
	}
	fs.pending = rest
	return nil
}

// Create creates (or replaces) name as a new empty file.
func (fs *FS) Create(name string) (aio.PlainFile, error) {
	name = path.Clean(name)
	fs.gate(OpCreate, name, "")
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.dirs[path.Dir(name)] {
		return nil, fs.pathErr("create", name, ErrNotExist)
	}
	if err := fs.count(OpCreate); err != nil {
		return nil, fs.pathErr("create", name, err)
	}
	ino := &inode{dirty: map[int64]struct{}{}}
	fs.names[name] = ino
	fs.pending = append(fs.pending, nsOp{kind: nsCreate, dir: path.Dir(name), name: name, ino: ino})
	return &plainFile{fs: fs, name: name, ino: ino}, nil
}

// Open opens an existing file for plain I/O.
func (fs *FS) Open(name string) (aio.PlainFile, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[path.Clean(name)]
	if !ok {
		return nil, fs.pathErr("open", name, ErrNotExist)
	}
	return &plainFile{fs: fs, name: name, ino: ino}, nil
}

// OpenAppend opens an existing file for Submit.
func (fs *FS) OpenAppend(name string) (aio.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[path.Clean(name)]
	if !ok {
		return nil, fs.pathErr("open", name, ErrNotExist)
	}
	f := &appendFile{fs: fs, name: name, ino: ino}
	if fs.opts.Async > 0 {
		f.queue = make(chan asyncReq, fs.opts.Async)
		f.exited = make(chan struct{})
		go f.loop()
	}
	return f, nil
}

// Rename renames oldname to newname (replacing it).
func (fs *FS) Rename(oldname, newname string) error {
	oldname, newname = path.Clean(oldname), path.Clean(newname)
	fs.gate(OpRename, oldname, newname)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[oldname]
	if !ok {
		return fs.pathErr("rename", oldname, ErrNotExist)
	}
	if path.Dir(oldname) != path.Dir(newname) {
		return fs.pathErr("rename", oldname, errors.New("crashfs renames within one directory only"))
	}
	if err := fs.count(OpRename); err != nil {
		return fs.pathErr("rename", oldname, err)
	}
	delete(fs.names, oldname)
	fs.names[newname] = ino
	fs.pending = append(fs.pending, nsOp{kind: nsRename, dir: path.Dir(oldname), name: oldname, newname: newname, ino: ino})
	return nil
}

// Remove removes name.
func (fs *FS) Remove(name string) error {
	name = path.Clean(name)
	fs.gate(OpRemove, name, "")
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[name]
	if !ok {
		return fs.pathErr("remove", name, ErrNotExist)
	}
	if err := fs.count(OpRemove); err != nil {
		return fs.pathErr("remove", name, err)
	}
	delete(fs.names, name)
	fs.pending = append(fs.pending, nsOp{kind: nsRemove, dir: path.Dir(name), name: name, ino: ino})
	return nil
}

// ReadFile returns a copy of name's current bytes (for tests).
func (fs *FS) ReadFile(name string) ([]byte, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[path.Clean(name)]
	if !ok {
		return nil, fs.pathErr("read", name, ErrNotExist)
	}
	return slices.Clone(ino.data), nil
}

// WriteFile replaces name's bytes, durably (for tests that damage files).
func (fs *FS) WriteFile(name string, data []byte) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	name = path.Clean(name)
	ino, ok := fs.names[name]
	if !ok {
		ino = &inode{dirty: map[int64]struct{}{}}
		fs.names[name] = ino
		fs.durable[name] = ino
	}
	ino.data = slices.Clone(data)
	ino.durable = slices.Clone(data)
	clear(ino.dirty)
	return nil
}

// write writes p at off into ino (fs.mu held).
func (fs *FS) write(ino *inode, p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(ino.data)) {
		ino.data = append(ino.data, make([]byte, end-int64(len(ino.data)))...)
	}
	copy(ino.data[off:], p)
	ss := int64(fs.opts.SectorSize)
	for s := off / ss; s*ss < off+int64(len(p)); s++ {
		ino.dirty[s] = struct{}{}
	}
}

// sync makes ino's dirty sectors durable (fs.mu held).
func (fs *FS) sync(ino *inode) {
	ss := int64(fs.opts.SectorSize)
	if len(ino.durable) < len(ino.data) {
		ino.durable = append(ino.durable, make([]byte, len(ino.data)-len(ino.durable))...)
	}
	ino.durable = ino.durable[:len(ino.data)]
	for s := range ino.dirty {
		start, end := s*ss, min((s+1)*ss, int64(len(ino.data)))
		if start < end {
			copy(ino.durable[start:end], ino.data[start:end])
		}
	}
	clear(ino.dirty)
}

func readAt(ino *inode, p []byte, off int64) (int, error) {
	if off >= int64(len(ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// appendFile is an aio.File. Submit completes before returning, or, with
// Options.Async, on the File's goroutine.
type appendFile struct {
	fs     *FS
	name   string
	ino    *inode
	err    error
	closed bool

	qmu     sync.Mutex // Submit and Close of an asynchronous File
	qclosed bool
	queue   chan asyncReq
	exited  chan struct{}
}

type asyncReq struct {
	p    []byte
	off  int64
	sync bool
	done func(error)
}

func (f *appendFile) Name() string   { return f.name }
func (f *appendFile) Alignment() int { return f.fs.opts.Alignment }

func (f *appendFile) Submit(p []byte, off int64, sync bool, done func(error)) {
	if f.queue == nil {
		done(f.submit(p, off, sync))
		return
	}
	f.qmu.Lock()
	defer f.qmu.Unlock()
	if f.qclosed {
		done(aio.ErrClosed)
		return
	}
	f.queue <- asyncReq{p: p, off: off, sync: sync, done: done}
}

// loop carries out an asynchronous File's requests in order.
func (f *appendFile) loop() {
	defer close(f.exited)
	for r := range f.queue {
		r.done(f.submit(r.p, r.off, r.sync))
	}
}

func (f *appendFile) submit(p []byte, off int64, sync bool) error {
	if err := f.write(p, off); err != nil || !sync {
		return err
	}
	// The write and the fdatasync are separate steps, as in the kernel: a
	// crash between them finds the written sectors dirty.
	runtime.Gosched()
	fs := f.fs
	fs.gate(OpSync, path.Clean(f.name), "")
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f.err != nil {
		return fmt.Errorf("crashfs: %s: refused after an earlier I/O error: %w", f.name, f.err)
	}
	if err := fs.count(OpSync); err != nil {
		f.err = fmt.Errorf("crashfs: %s: fdatasync: %w", f.name, err)
		return f.err
	}
	fs.sync(f.ino)
	return nil
}

func (f *appendFile) write(p []byte, off int64) error {
	fs := f.fs
	fs.gate(OpWrite, path.Clean(f.name), "")
	fs.mu.Lock()
	defer fs.mu.Unlock()
	switch {
	case f.closed:
		return aio.ErrClosed
	case f.err != nil:
		return fmt.Errorf("crashfs: %s: refused after an earlier I/O error: %w", f.name, f.err)
	}
	a := int64(fs.opts.Alignment)
	if len(p) == 0 || off%a != 0 || int64(len(p))%a != 0 {
		f.err = fmt.Errorf("crashfs: %s: unaligned or empty write of %d bytes at %d (alignment %d)", f.name, len(p), off, a)
		return f.err
	}
	if err := fs.count(OpWrite); err != nil {
		f.err = fmt.Errorf("crashfs: %s: write at %d: %w", f.name, off, err)
		return f.err
	}
	fs.write(f.ino, p, off)
	return nil
}

func (f *appendFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return readAt(f.ino, p, off)
}

func (f *appendFile) Close() error {
	if f.queue != nil {
		f.qmu.Lock()
		if f.qclosed {
			f.qmu.Unlock()
			return aio.ErrClosed
		}
		f.qclosed = true
		close(f.queue)
		f.qmu.Unlock()
		<-f.exited // the requests already queued complete first
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return aio.ErrClosed
	}
	f.closed = true
	return nil
}

// plainFile is an aio.PlainFile.
type plainFile struct {
	fs   *FS
	name string
	ino  *inode
}

func (f *plainFile) Name() string { return f.name }

func (f *plainFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.gate(OpPlainWrite, path.Clean(f.name), "")
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.count(OpPlainWrite); err != nil {
		return 0, f.fs.pathErr("write", f.name, err)
	}
	f.fs.write(f.ino, p, off)
	return len(p), nil
}

func (f *plainFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return readAt(f.ino, p, off)
}

func (f *plainFile) Sync() error {
	f.fs.gate(OpPlainSync, path.Clean(f.name), "")
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.count(OpPlainSync); err != nil {
		return f.fs.pathErr("sync", f.name, err)
	}
	f.fs.sync(f.ino)
	return nil
}

func (f *plainFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.ino.data)), nil
}

func (f *plainFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	ino := f.ino
	if size < int64(len(ino.data)) {
		ino.data = ino.data[:size]
	} else {
		ino.data = append(ino.data, make([]byte, size-int64(len(ino.data)))...)
	}
	// A size change is durable with the next sync: model it as dirtying
	// the last sector.
	ss := int64(f.fs.opts.SectorSize)
	if size > 0 {
		ino.dirty[(size-1)/ss] = struct{}{}
	}
	return nil
}

func (f *plainFile) Close() error { return nil }

var _ aio.FS = (*FS)(nil)
