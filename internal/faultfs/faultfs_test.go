package faultfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func ofdLock(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

func TestFaults(t *testing.T) {
	m := New(t)
	p := filepath.Join(m.Dir, "a.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(m.Backing, "a.lock")); err != nil || string(b) != "hello" {
		t.Fatalf("backing file %q %v", b, err)
	}
	if err := ofdLock(f); err != nil {
		t.Fatal(err)
	}
	if err := ofdLock(g); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("second lock: %v, want EAGAIN", err)
	}

	m.Faults.Set("*.lock", Fault{WriteErr: syscall.EIO, FsyncErr: syscall.EIO})
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write: %v, want EIO", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync: %v, want EIO", err)
	}
	m.Faults.Set("*.lock", Fault{Lock: LockENOLCK})
	if err := ofdLock(g); !errors.Is(err, unix.ENOLCK) {
		t.Fatalf("lock: %v, want ENOLCK", err)
	}
	m.Faults.Set("*.lock", Fault{Lock: LockLose})
	if err := ofdLock(g); err != nil {
		t.Fatalf("lock after loss: %v", err)
	}
	m.Faults.Clear()
	// The loss was real: the backing lock is free for g now.
	if err := ofdLock(g); err != nil {
		t.Fatalf("lock after clear: %v", err)
	}
	if err := ofdLock(f); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("f re-lock: %v, want EAGAIN (g holds it)", err)
	}
	m.Faults.Set("other", Fault{WriteErr: syscall.EIO})
	if _, err := f.WriteAt([]byte("ok"), 0); err != nil {
		t.Fatalf("unmatched rule applied: %v", err)
	}

	// A rule limited to a process hits only that process's requests
	// (from any of its threads; Go writes from whichever thread runs).
	m.Faults.Clear()
	m.Faults.Set("*.lock", Fault{WriteErr: syscall.EIO, FsyncErr: syscall.EIO, PID: os.Getppid()})
	for range 20 {
		if _, err := f.WriteAt([]byte("ok"), 0); err != nil {
			t.Fatalf("rule for another process applied: %v", err)
		}
	}
	m.Faults.Set("*.lock", Fault{WriteErr: syscall.EIO, FsyncErr: syscall.EIO, PID: os.Getpid()})
	for range 20 {
		if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EIO) {
			t.Fatalf("write by the faulted process: %v, want EIO", err)
		}
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync by the faulted process: %v, want EIO", err)
	}
}
