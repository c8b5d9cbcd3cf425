package aio

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStickyKernelErrors runs each backend on a FUSE file system that makes
// the kernel fail a write or an fdatasync with EIO, and checks the error is
// delivered, sticks, and is never retried.
func TestStickyKernelErrors(t *testing.T) {
	mnt, flt := mountFaultFS(t)
	cases := []struct {
		name   string
		inject func()
		sync   bool
	}{
		{"write fails", func() { flt.failWrites(true) }, false},
		{"fdatasync fails", func() { flt.failFsync(true) }, true},
	}
	forEachBackend(t, func(t *testing.T, kind Kind) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				defer flt.failWrites(false)
				defer flt.failFsync(false)
				fsys := OS(kind, DefaultOptions())
				name := filepath.Join(mnt, kind.String()+string(rune('a'+i)))
				pf, err := fsys.Create(name)
				if err != nil {
					t.Fatal(err)
				}
				pf.Close()
				f, err := fsys.OpenAppend(name)
				if errors.Is(err, ErrDirectUnsupported) {
					t.Skipf("FUSE refuses O_DIRECT here: %v", err)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				p := pattern(4096, f.Alignment(), 1)
				if err := submitWait(t, f, p, 0, true); err != nil {
					t.Fatalf("healthy write: %v", err)
				}
				tc.inject()
				if err := submitWait(t, f, p, 4096, tc.sync); !errors.Is(err, unix.EIO) {
					t.Fatalf("faulty %s: got %v, want EIO", tc.name, err)
				}
				// Healthy again, but the File must stay failed and must not
				// touch the file system: no fdatasync is issued.
				flt.failWrites(false)
				flt.failFsync(false)
				before := flt.fsyncs()
				if err := submitWait(t, f, p, 8192, true); !errors.Is(err, unix.EIO) {
					t.Fatalf("write after the failure: got %v, want the sticky EIO", err)
				}
				if n := flt.fsyncs() - before; n != 0 {
					t.Fatalf("%d fsyncs reached the file system after the failure", n)
				}
			})
		}
	})
}
