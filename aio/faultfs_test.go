package aio

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The fault-injecting file system is a loopback FUSE mount whose opened
// files return EIO from write or fsync on demand: a real kernel file system,
// so the backends' error paths run against the kernel rather than a mock.
//
// It is served by a child process (this test binary re-executed with
// AIO_FAULTFS_HELPER set). Serving FUSE in the process that submits io_uring
// writes to it deadlocks: a submitter blocked in FUSE holds the ring's lock,
// task work on another thread waits for that lock without releasing its P,
// and the FUSE server's goroutines cannot run.

func TestMain(m *testing.M) {
	if os.Getenv("AIO_FAULTFS_HELPER") != "" {
		os.Exit(serveFaultFS())
	}
	os.Exit(m.Run())
}

// faults controls a faultFS mount through marker files in a directory of
// its own, which the server checks on every write and fsync.
type faults struct{ ctl string }

func (f faults) set(name string, on bool) {
	p := filepath.Join(f.ctl, name)
	if on {
		os.WriteFile(p, nil, 0o644)
	} else {
		os.Remove(p)
	}
}

func (f faults) failWrites(on bool) { f.set("fail-writes", on) }
func (f faults) failFsync(on bool)  { f.set("fail-fsync", on) }

// fsyncs returns how many fsyncs the server has received.
func (f faults) fsyncs() int {
	b, _ := os.ReadFile(filepath.Join(f.ctl, "fsyncs"))
	return len(b)
}

// mountFaultFS mounts a fault-injecting loopback of a fresh directory and
// returns the mount point. It skips when FUSE cannot be mounted here.
func mountFaultFS(t *testing.T) (string, faults) {
	t.Helper()
	backing, ctl := testDir(t), testDir(t)
	mnt := filepath.Join(testDir(t), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AIO_FAULTFS_HELPER=1",
		"AIO_FAULTFS_BACKING="+backing, "AIO_FAULTFS_MNT="+mnt, "AIO_FAULTFS_CTL="+ctl)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	stop := func() {
		stdin.Close() // the server unmounts and exits
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			cmd.Process.Kill()
			<-done
		}
	}
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "ready" {
			stop()
			t.Skipf("cannot mount FUSE here (needs root and /dev/fuse): %s", strings.TrimSpace(s))
		}
	case <-time.After(20 * time.Second):
		stop()
		t.Fatal("fault file system server did not start")
	}
	t.Cleanup(stop)
	return mnt, faults{ctl: ctl}
}

// serveFaultFS is the child process: mount, print "ready", serve until
// stdin closes, unmount. Its exit code is its result.
func serveFaultFS() int {
	backing, mnt, ctl := os.Getenv("AIO_FAULTFS_BACKING"), os.Getenv("AIO_FAULTFS_MNT"), os.Getenv("AIO_FAULTFS_CTL")
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		fmt.Println("stat backing:", err)
		return 1
	}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	rootNode := &faultNode{LoopbackNode: &fs.LoopbackNode{RootData: root}, ctl: ctl}
	root.RootNode = rootNode
	srv, err := fs.Mount(mnt, rootNode, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMountStrict: true,
		FsName:            "aio-faultfs",
	}})
	if err != nil {
		fmt.Println("mount:", err)
		return 1
	}
	signal.Ignore(syscall.SIGINT)
	fmt.Println("ready")
	buf := make([]byte, 1)
	os.Stdin.Read(buf) // returns at EOF: the test closed the pipe
	if err := srv.Unmount(); err != nil {
		fmt.Fprintln(os.Stderr, "aio faultfs: unmount:", err)
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		return 1
	}
	return 0
}

type faultNode struct {
	*fs.LoopbackNode
	ctl string
}

func (n *faultNode) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &faultNode{LoopbackNode: ops.(*fs.LoopbackNode), ctl: n.ctl}
}

func (n *faultNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &faultFile{LoopbackFile: fh.(*fs.LoopbackFile), ctl: n.ctl}, fl, 0
}

func (n *faultNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return inode, &faultFile{LoopbackFile: fh.(*fs.LoopbackFile), ctl: n.ctl}, fl, 0
}

type faultFile struct {
	*fs.LoopbackFile
	ctl string
}

func (h *faultFile) on(name string) bool {
	_, err := os.Stat(filepath.Join(h.ctl, name))
	return err == nil
}

func (h *faultFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.on("fail-writes") {
		return 0, syscall.EIO
	}
	return h.LoopbackFile.Write(ctx, data, off)
}

func (h *faultFile) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	if h.on("fail-writes") {
		return 0, syscall.EIO
	}
	return h.LoopbackFile.Writev(ctx, data, off)
}

// PassthroughFd disables FUSE passthrough, which would let the kernel write
// to the backing file without asking this server.
func (h *faultFile) PassthroughFd() (int, bool) { return -1, false }

func (h *faultFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if f, err := os.OpenFile(filepath.Join(h.ctl, "fsyncs"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		f.Write([]byte{'.'})
		f.Close()
	}
	if h.on("fail-fsync") {
		return syscall.EIO
	}
	return h.LoopbackFile.Fsync(ctx, flags)
}
