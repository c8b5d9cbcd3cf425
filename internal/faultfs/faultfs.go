package faultfs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// LockMode says what happens to lock requests on a matching file.
type LockMode int

const (
	// LockNormal passes locks through to the backing file.
	LockNormal LockMode = iota
	// LockENOLCK fails every lock request (and lock query) with ENOLCK.
	LockENOLCK
	// LockLose drops locks already held on matching files and then
	// grants every request without locking anything; queries report no
	// conflict. Two holders can then both believe they hold the lock.
	LockLose
)

// Fault is what to inject for files matching a rule. The zero Fault
// injects nothing.
type Fault struct {
	WriteErr syscall.Errno // error for write(2), 0 for none
	FsyncErr syscall.Errno // error for fsync/fdatasync
	FlushErr syscall.Errno // error for close(2) (FUSE flush)
	Lock     LockMode
	// HangFsync makes fsync block until the rule is replaced or cleared
	// (or the file system unmounted).
	HangFsync bool
	// PID, when not 0, limits the rule to requests made by that process
	// (any of its threads): the fault hits one host's view of shared
	// storage, as when the live's NFS mount dies and the backup's does
	// not. Lock modes ignore it.
	PID int
}

// FS is the fault configuration of one mount. Its methods are safe for
// concurrent use while the file system serves.
type FS struct {
	mu    sync.Mutex
	rules map[string]Fault // base-name glob -> fault
	files map[*faultFile]struct{}
	hang  chan struct{} // closed on every rule change to wake hung fsyncs
}

func newFS() *FS {
	return &FS{rules: map[string]Fault{}, files: map[*faultFile]struct{}{}, hang: make(chan struct{})}
}

// Set installs f for files whose base name matches pattern (path.Match
// syntax, such as "primary.lock" or "*.seg"). Switching a rule to LockLose
// drops the locks currently held on matching open files.
func (x *FS) Set(pattern string, f Fault) error {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return fmt.Errorf("faultfs: bad pattern %q: %w", pattern, err)
	}
	x.mu.Lock()
	x.rules[pattern] = f
	x.wakeLocked()
	var drop []*faultFile
	if f.Lock == LockLose {
		for ff := range x.files {
			if ok, _ := filepath.Match(pattern, ff.name); ok {
				drop = append(drop, ff)
			}
		}
	}
	x.mu.Unlock()
	for _, ff := range drop {
		ff.dropLocks()
	}
	return nil
}

// Clear removes every rule (hung fsyncs return).
func (x *FS) Clear() {
	x.mu.Lock()
	x.rules = map[string]Fault{}
	x.wakeLocked()
	x.mu.Unlock()
}

func (x *FS) wakeLocked() {
	close(x.hang)
	x.hang = make(chan struct{})
}

// fault returns the merged fault for a base name and the caller in ctx
// (later-set fields of any matching rule win; errors are not combined).
func (x *FS) fault(ctx context.Context, name string) (Fault, chan struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out Fault
	caller := -1 // resolved on the first rule limited to a process
	for pat, f := range x.rules {
		if ok, _ := filepath.Match(pat, name); !ok {
			continue
		}
		if f.PID != 0 {
			if caller == -1 {
				caller = callerProcess(ctx)
			}
			if caller != f.PID {
				// Only the lock mode applies to every process.
				if f.Lock != LockNormal {
					out.Lock = f.Lock
				}
				continue
			}
		}
		if f.WriteErr != 0 {
			out.WriteErr = f.WriteErr
		}
		if f.FsyncErr != 0 {
			out.FsyncErr = f.FsyncErr
		}
		if f.FlushErr != 0 {
			out.FlushErr = f.FlushErr
		}
		if f.Lock != LockNormal {
			out.Lock = f.Lock
		}
		out.HangFsync = out.HangFsync || f.HangFsync
	}
	return out, x.hang
}

// callerProcess is the process (thread group) that made the FUSE request
// in ctx, or 0 when unknown. The kernel puts the calling thread's ID in
// the request; /proc/TID/status names its thread group.
func callerProcess(ctx context.Context) int {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid == 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.Pid))
	if err != nil {
		return int(c.Pid)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return int(c.Pid)
}

// node wraps every loopback node so that opened files are faultFiles.
type node struct {
	*fs.LoopbackNode
	x *FS
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
)

func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), x: n.x}
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	return n.wrap(n.EmbeddedInode(), fh), fl, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return in, fh, fl, errno
	}
	return in, n.wrapNamed(name, fh), fl, 0
}

func (n *node) wrap(in *fs.Inode, fh fs.FileHandle) fs.FileHandle {
	name, _ := in.Parent()
	return n.wrapNamed(name, fh)
}

func (n *node) wrapNamed(name string, fh fs.FileHandle) fs.FileHandle {
	ff := &faultFile{LoopbackFile: fh.(*fs.LoopbackFile), x: n.x, name: name}
	n.x.mu.Lock()
	n.x.files[ff] = struct{}{}
	n.x.mu.Unlock()
	return ff
}

// faultFile is a loopback file with faults. It never offers passthrough.
type faultFile struct {
	*fs.LoopbackFile
	x    *FS
	name string

	mu      sync.Mutex
	locked  bool   // a lock was passed through and not yet unlocked
	owner   uint64 // last lock owner and flags, to drop the lock
	lkFlags uint32
}

func (f *faultFile) PassthroughFd() (int, bool) { return 0, false }

func (f *faultFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if ft, _ := f.x.fault(ctx, f.name); ft.WriteErr != 0 {
		return 0, ft.WriteErr
	}
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *faultFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	for {
		ft, wake := f.x.fault(ctx, f.name)
		if ft.FsyncErr != 0 {
			return ft.FsyncErr
		}
		if !ft.HangFsync {
			return f.LoopbackFile.Fsync(ctx, flags)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return syscall.EINTR
		}
	}
}

func (f *faultFile) Flush(ctx context.Context) syscall.Errno {
	if ft, _ := f.x.fault(ctx, f.name); ft.FlushErr != 0 {
		return ft.FlushErr
	}
	return f.LoopbackFile.Flush(ctx)
}

func (f *faultFile) Release(ctx context.Context) syscall.Errno {
	f.x.mu.Lock()
	delete(f.x.files, f)
	f.x.mu.Unlock()
	return f.LoopbackFile.Release(ctx)
}

func (f *faultFile) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	switch ft, _ := f.x.fault(ctx, f.name); ft.Lock {
	case LockENOLCK:
		return syscall.ENOLCK
	case LockLose:
		*out = fuse.FileLock{Typ: syscall.F_UNLCK}
		return 0
	}
	return f.LoopbackFile.Getlk(ctx, owner, lk, flags, out)
}

func (f *faultFile) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.setlk(ctx, owner, lk, flags, false)
}

func (f *faultFile) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.setlk(ctx, owner, lk, flags, true)
}

func (f *faultFile) setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, wait bool) syscall.Errno {
	switch ft, _ := f.x.fault(ctx, f.name); ft.Lock {
	case LockENOLCK:
		return syscall.ENOLCK
	case LockLose:
		return 0
	}
	var errno syscall.Errno
	if wait {
		errno = f.LoopbackFile.Setlkw(ctx, owner, lk, flags)
	} else {
		errno = f.LoopbackFile.Setlk(ctx, owner, lk, flags)
	}
	if errno == 0 {
		f.mu.Lock()
		f.locked = lk.Typ != syscall.F_UNLCK
		f.owner, f.lkFlags = owner, flags
		f.mu.Unlock()
	}
	return errno
}

// dropLocks removes whatever lock this file holds on the backing file.
func (f *faultFile) dropLocks() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.locked {
		return
	}
	unlock := fuse.FileLock{Start: 0, End: 1<<63 - 1, Typ: syscall.F_UNLCK}
	f.LoopbackFile.Setlk(context.Background(), f.owner, &unlock, f.lkFlags)
	f.locked = false
}

// Mount is a mounted fault file system.
type Mount struct {
	// Dir is the mount point: use paths under it.
	Dir string
	// Backing is the directory the mount mirrors.
	Backing string
	// Faults configures the faults.
	Faults *FS

	server *fuse.Server
	once   sync.Once
}

// fsNamePrefix marks our mounts in /proc/mounts; the owner's pid follows.
const fsNamePrefix = "tandem-faultfs-"

// Available returns nil when FUSE mounts can be made here (root and
// /dev/fuse), or the reason they cannot.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("faultfs: needs root for DirectMount (euid %d)", os.Geteuid())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("faultfs: %w", err)
	}
	return nil
}

// MountAt mounts a fault file system mirroring backing at mountpoint.
func MountAt(backing, mountpoint string) (*Mount, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	x := newFS()
	root := &fs.LoopbackRoot{Path: backing}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("faultfs: %w", err)
	}
	root.Dev = uint64(st.Dev)
	rn := &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, x: x}
	root.RootNode = rn
	zero := time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict:    true,
			EnableLocks:          true,
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
			FsName:               fsNamePrefix + strconv.Itoa(os.Getpid()),
			Name:                 "faultfs",
		},
		// No attribute or entry caching: a replaced file must be seen.
		EntryTimeout: &zero,
		AttrTimeout:  &zero,
	}
	server, err := fs.Mount(mountpoint, rn, opts)
	if err != nil {
		return nil, fmt.Errorf("faultfs: mount %s: %w", mountpoint, err)
	}
	return &Mount{Dir: mountpoint, Backing: backing, Faults: x, server: server}, nil
}

// Unmount clears the faults (so nothing hangs) and unmounts.
func (m *Mount) Unmount() error {
	var err error
	m.once.Do(func() {
		m.Faults.Clear()
		if err = m.server.Unmount(); err != nil {
			// Busy: force it, then detach.
			syscall.Unmount(m.Dir, syscall.MNT_FORCE)
			err = syscall.Unmount(m.Dir, syscall.MNT_DETACH)
		}
		m.server.Wait()
	})
	return err
}

// New mounts a fault file system over a fresh temporary backing directory
// for a test, skipping the test when FUSE is not available. It clears stale
// mounts of dead processes first and unmounts in t.Cleanup.
func New(t testing.TB) *Mount {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("FUSE fault tests skipped: %v", err)
	}
	ClearStale()
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m, err := MountAt(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("faultfs: unmount %s: %v", m.Dir, err)
		}
	})
	return m
}

// ClearStale unmounts faultfs mounts whose owning process is gone (a test
// binary killed while a mount was up leaves one answering ENOTCONN).
func ClearStale() {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.HasPrefix(fields[0], fsNamePrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(fields[0], fsNamePrefix))
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		dir := strings.ReplaceAll(fields[1], `\040`, " ")
		syscall.Unmount(dir, syscall.MNT_FORCE)
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
}
