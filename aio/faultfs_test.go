package aio

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// faults switches errors on in a faultFS mount.
type faults struct {
	failFsync  atomic.Bool
	failWrites atomic.Bool
	fsyncs     atomic.Int64
}

// faultNode is a loopback FUSE node whose opened files obey faults: a real
// kernel file system that returns EIO from write or fsync on demand, so the
// backends' error paths run against the kernel rather than a mock.
type faultNode struct {
	*fs.LoopbackNode
	f *faults
}

func (n *faultNode) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &faultNode{LoopbackNode: ops.(*fs.LoopbackNode), f: n.f}
}

func (n *faultNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &faultFile{LoopbackFile: fh.(*fs.LoopbackFile), f: n.f}, fl, 0
}

type faultFile struct {
	*fs.LoopbackFile
	f *faults
}

func (h *faultFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.f.failWrites.Load() {
		return 0, syscall.EIO
	}
	return h.LoopbackFile.Write(ctx, data, off)
}

func (h *faultFile) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	if h.f.failWrites.Load() {
		return 0, syscall.EIO
	}
	return h.LoopbackFile.Writev(ctx, data, off)
}

// PassthroughFd disables FUSE passthrough, which would let the kernel write
// to the backing file without asking this server.
func (h *faultFile) PassthroughFd() (int, bool) { return -1, false }

func (h *faultFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.f.fsyncs.Add(1)
	if h.f.failFsync.Load() {
		return syscall.EIO
	}
	return h.LoopbackFile.Fsync(ctx, flags)
}

// mountFaultFS mounts a fault-injecting loopback of a fresh directory and
// returns the mount point. It skips when FUSE cannot be mounted here.
func mountFaultFS(t *testing.T) (string, *faults) {
	t.Helper()
	backing := testDir(t)
	mnt := filepath.Join(testDir(t), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		t.Fatal(err)
	}
	f := &faults{}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	rootNode := &faultNode{LoopbackNode: &fs.LoopbackNode{RootData: root}, f: f}
	root.RootNode = rootNode
	srv, err := fs.Mount(mnt, rootNode, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMountStrict: true,
		FsName:            "aio-faultfs",
	}})
	if err != nil {
		t.Skipf("cannot mount FUSE here (needs root and /dev/fuse): %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt, f
}
