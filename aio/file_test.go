package aio

import (
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name     string
		datasync bool
		sync     bool
		blocks   []int // sizes in alignment units, written back to back
	}{
		{"one block synced", true, true, []int{1}},
		{"several sizes synced", true, true, []int{1, 2, 16, 1, 64}},
		{"unsynced writes", true, false, []int{1, 3, 1}},
		{"datasync off", false, true, []int{2, 1}},
	}
	forEachBackend(t, func(t *testing.T, kind Kind) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				opts := DefaultOptions()
				opts.Datasync = tc.datasync
				_, f := newFile(t, kind, opts, 0)
				align := f.Alignment()
				if kind != NIO && align < MinDirectAlign {
					t.Fatalf("Alignment() = %d, want at least %d", align, MinDirectAlign)
				}
				off := int64(0)
				var want []byte
				for i, units := range tc.blocks {
					p := pattern(units*max(align, 512), align, byte(i))
					if err := submitWait(t, f, p, off, tc.sync); err != nil {
						t.Fatalf("write %d at %d: %v", i, off, err)
					}
					want = append(want, p...)
					off += int64(len(p))
				}
				mustEqual(t, "read back", readBack(t, f, 0, len(want)), want)
				// Reads need no alignment, even on O_DIRECT files.
				mustEqual(t, "unaligned read", readBack(t, f, 3, 100), want[3:103])
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestCompletionOrder keeps many writes of very different sizes in flight
// (so the kernel may finish later ones first) and checks that done runs in
// submission order and every byte lands.
func TestCompletionOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind Kind) {
		opts := DefaultOptions()
		opts.MaxIO = 128
		const n = 600
		sizes := make([]int, n)
		rng := rand.New(rand.NewPCG(1, 2))
		total := int64(0)
		for i := range sizes {
			sizes[i] = 4096 * (1 + rng.IntN(4))
			if i%50 == 0 {
				sizes[i] = 1 << 20
			}
			total += int64(sizes[i])
		}
		_, f := newFile(t, kind, opts, total)
		var maxInFlight uint64
		if u, ok := f.(*uringFile); ok {
			u.mu.Lock()
			u.onCQE = func(cqe) { maxInFlight = max(maxInFlight, u.seq-u.next) }
			u.mu.Unlock()
		}
		order := make(chan int, n)
		bufs := make([][]byte, n)
		off := int64(0)
		for i, sz := range sizes {
			bufs[i] = pattern(sz, f.Alignment(), byte(i))
			f.Submit(bufs[i], off, i%3 == 0, func(err error) {
				if err != nil {
					t.Errorf("write %d: %v", i, err)
				}
				order <- i
			})
			off += int64(sz)
		}
		for want := 0; want < n; want++ {
			select {
			case got := <-order:
				if got != want {
					t.Fatalf("completion %d delivered as number %d", got, want)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("completion %d never arrived", want)
			}
		}
		off = 0
		for i, p := range bufs {
			mustEqual(t, "write "+string(rune('0'+i%10)), readBack(t, f, off, len(p)), p)
			off += int64(len(p))
		}
		if u, ok := f.(*uringFile); ok {
			u.mu.Lock()
			defer u.mu.Unlock()
			if maxInFlight > uint64(opts.MaxIO) {
				t.Fatalf("%d requests in flight, MaxIO is %d", maxInFlight, opts.MaxIO)
			}
			t.Logf("io_uring: up to %d requests in flight; %d of %d completed ahead of an earlier one",
				maxInFlight, u.reordered.Load(), n)
		}
	})
}

func TestAlignmentRejected(t *testing.T) {
	cases := []struct {
		name       string
		bufOff     int // bytes the buffer starts after an aligned address
		length     int // in bytes; -1 means one alignment unit
		off        int64
		what       string
		directOnly bool
	}{
		{"empty write", 0, 0, 0, "empty buffer", false},
		{"offset", 0, -1, 512, "offset", true},
		{"length", 0, 1000, 0, "length", true},
		{"buffer address", 8, -1, 0, "buffer address", true},
	}
	forEachBackend(t, func(t *testing.T, kind Kind) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, f := newFile(t, kind, DefaultOptions(), 0)
				align := f.Alignment()
				if tc.directOnly && align == 1 {
					t.Skip("buffered I/O has no alignment")
				}
				n := tc.length
				if n < 0 {
					n = align
				}
				p := AlignedBuffer(n+tc.bufOff, align)[tc.bufOff:]
				err := submitWait(t, f, p, tc.off, true)
				var ae *AlignmentError
				if !errors.As(err, &ae) || ae.What != tc.what {
					t.Fatalf("got %v, want an AlignmentError about %s", err, tc.what)
				}
				// Sticky: a correct write afterwards fails too.
				err = submitWait(t, f, AlignedBuffer(max(align, 512), align), 0, true)
				if !errors.As(err, &ae) {
					t.Fatalf("write after a rejected one: got %v, want the sticky AlignmentError", err)
				}
			})
		}
	})
}

// TestStickyWriteError makes the kernel fail a write with EFBIG (the file
// size limit, RLIMIT_FSIZE) and checks that the error is delivered, that
// every later write fails with it, and that nothing after it is written.
func TestStickyWriteError(t *testing.T) {
	const limit = 64 << 10
	forEachBackend(t, func(t *testing.T, kind Kind) {
		for _, inFlight := range []bool{false, true} {
			name := "after completion"
			if inFlight {
				name = "while in flight"
			}
			t.Run(name, func(t *testing.T) {
				_, f := newFile(t, kind, DefaultOptions(), 0)
				align := max(f.Alignment(), 4096)
				good := pattern(align, f.Alignment(), 1)
				if err := submitWait(t, f, good, 0, true); err != nil {
					t.Fatal(err)
				}
				withFileSizeLimit(t, limit, func() {
					errs := make(chan error, 3)
					done := func(err error) { errs <- err }
					f.Submit(pattern(align, f.Alignment(), 2), limit, true, done)
					if !inFlight {
						if err := <-errs; !errors.Is(err, unix.EFBIG) {
							t.Fatalf("write beyond the limit: got %v, want EFBIG", err)
						}
					}
					later := pattern(align, f.Alignment(), 3)
					f.Submit(later, int64(align), true, done)
					f.Submit(later, int64(2*align), false, done)
					if inFlight {
						if err := <-errs; !errors.Is(err, unix.EFBIG) {
							t.Fatalf("write beyond the limit: got %v, want EFBIG", err)
						}
					}
					for i := 0; i < 2; i++ {
						err := <-errs
						if !errors.Is(err, unix.EFBIG) {
							t.Fatalf("write %d after the failure: got %v, want the sticky EFBIG", i, err)
						}
					}
				})
				if !inFlight {
					// Refused writes never reached the file.
					st, err := os.Stat(f.Name())
					if err != nil {
						t.Fatal(err)
					}
					if st.Size() != int64(align) {
						t.Fatalf("file size %d after refused writes, want %d", st.Size(), align)
					}
				}
			})
		}
	})
}

// withFileSizeLimit runs f with RLIMIT_FSIZE lowered to limit. The limit is
// process-wide, so this test must not run in parallel with others. Go
// ignores SIGXFSZ, so writes fail with EFBIG instead of killing the process.
func withFileSizeLimit(t *testing.T, limit uint64, f func()) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = limit
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot lower RLIMIT_FSIZE: %v", err)
	}
	defer func() {
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
			t.Fatalf("restoring RLIMIT_FSIZE: %v", err)
		}
	}()
	f()
}

func TestClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind Kind) {
		opts := DefaultOptions()
		opts.MaxIO = 32
		_, f := newFile(t, kind, opts, 1<<20)
		const n = 100
		delivered := make(chan error, n)
		for i := 0; i < n; i++ {
			p := pattern(4096, f.Alignment(), byte(i))
			f.Submit(p, int64(i%256)*4096, i%2 == 0, func(err error) { delivered <- err })
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		// Close drained everything submitted before it.
		if len(delivered) != n {
			t.Fatalf("Close returned with %d of %d completions delivered", len(delivered), n)
		}
		for i := 0; i < n; i++ {
			if err := <-delivered; err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		if err := submitWait(t, f, pattern(4096, f.Alignment(), 0), 0, true); !errors.Is(err, ErrClosed) {
			t.Fatalf("Submit after Close: got %v, want ErrClosed", err)
		}
		if err := f.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: got %v, want ErrClosed", err)
		}
	})
}

func TestIOUringKind(t *testing.T) {
	fs := OS(IOUring, DefaultOptions())
	if fs.Kind() != IOUring {
		t.Skipf("the kernel refuses io_uring here (OS fell back to %s)", fs.Kind())
	}
	_, f := newFile(t, IOUring, DefaultOptions(), 0)
	if _, ok := f.(*uringFile); !ok {
		t.Fatalf("OpenAppend returned %T, want the io_uring file", f)
	}
}

func TestIOUringFallback(t *testing.T) {
	cases := []struct {
		name string
		opts func(*Options)
		env  string
	}{
		{"option", func(o *Options) { o.DisableIOUring = true }, ""},
		{"environment", func(*Options) {}, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TANDEM_DISABLE_IO_URING", tc.env)
			var logs logBuffer
			opts := DefaultOptions()
			opts.Logger = logs.logger()
			tc.opts(&opts)
			fs := OS(IOUring, opts)
			if fs.Kind() != Direct {
				t.Fatalf("Kind() = %s after a refused io_uring, want direct", fs.Kind())
			}
			if got := logs.String(); !contains(got, "io_uring unavailable") {
				t.Fatalf("fallback not logged; log: %q", got)
			}
			name := testDir(t) + "/seg"
			pf, err := fs.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			pf.Close()
			f, err := fs.OpenAppend(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, ok := f.(*pwriteFile); !ok || f.Alignment() < MinDirectAlign {
				t.Fatalf("fallback file is %T with alignment %d, want O_DIRECT pwrite", f, f.Alignment())
			}
			p := pattern(4096, f.Alignment(), 9)
			if err := submitWait(t, f, p, 0, true); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "read back", readBack(t, f, 0, 4096), p)
		})
	}
}

// TestDirectOnTmpfs opens a file on tmpfs: before Linux 6.6 tmpfs refused
// O_DIRECT, and OpenAppend must then say so with ErrDirectUnsupported; newer
// kernels accept it and the writes must work.
func TestDirectOnTmpfs(t *testing.T) {
	dir := "/dev/shm"
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	d, err := os.MkdirTemp(dir, "aio-test-")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(d)
	for _, kind := range []Kind{Direct, IOUring} {
		fs := OS(kind, DefaultOptions())
		name := d + "/seg"
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := fs.OpenAppend(name)
		if err != nil {
			if !errors.Is(err, ErrDirectUnsupported) {
				t.Fatalf("%s: got %v, want ErrDirectUnsupported", kind, err)
			}
			t.Logf("%s: tmpfs refuses O_DIRECT: %v", kind, err)
			continue
		}
		p := pattern(4096, f.Alignment(), 5)
		if err := submitWait(t, f, p, 0, true); err != nil {
			t.Fatalf("%s on tmpfs: %v", kind, err)
		}
		mustEqual(t, "read back", readBack(t, f, 0, 4096), p)
		t.Logf("%s: tmpfs accepts O_DIRECT (alignment %d)", kind, f.Alignment())
		f.Close()
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestIOUringSyncAfterUnsyncedWrite: an fdatasync covers only writes that
// completed before it started, so when a synced Submit follows an unsynced
// write still in flight, its fdatasync must complete after that write
// (the backend drains the ring first). A 16 MiB write ahead of a 4 KiB one
// would otherwise still be running when the small one's fdatasync ends.
func TestIOUringSyncAfterUnsyncedWrite(t *testing.T) {
	if OS(IOUring, DefaultOptions()).Kind() != IOUring {
		t.Skip("the kernel refuses io_uring here")
	}
	const big = 16 << 20
	_, f := newFile(t, IOUring, DefaultOptions(), big+4096)
	u := f.(*uringFile)
	var order []uint64 // user_data in CQE order
	u.mu.Lock()
	u.onCQE = func(c cqe) { order = append(order, c.userData) }
	u.mu.Unlock()
	bigBuf := pattern(big, f.Alignment(), 1)
	small := pattern(4096, f.Alignment(), 2)
	for i := 0; i < 5; i++ {
		errs := make(chan error, 2)
		f.Submit(bigBuf, 0, false, func(err error) { errs <- err })
		f.Submit(small, big, true, func(err error) { errs <- err })
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	pos := map[uint64]int{}
	for i, ud := range order {
		pos[ud] = i
	}
	for i := uint64(0); i < 5; i++ {
		bigWrite, smallSync := (2*i)<<1, (2*i+1)<<1|1
		if pos[smallSync] < pos[bigWrite] {
			t.Fatalf("round %d: fdatasync completed before the earlier unsynced write (CQE order %v)", i, order)
		}
	}
}

// TestConcurrentSubmitters has several goroutines submit at once: each
// one's completions arrive in its own submission order, all data lands.
func TestConcurrentSubmitters(t *testing.T) {
	const writers, each, size = 8, 50, 4096
	forEachBackend(t, func(t *testing.T, kind Kind) {
		opts := DefaultOptions()
		opts.MaxIO = 16
		_, f := newFile(t, kind, opts, writers*each*size)
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := make(chan int, each)
				for i := 0; i < each; i++ {
					p := pattern(size, f.Alignment(), byte(w*each+i))
					f.Submit(p, int64(w*each+i)*size, i%4 == 3, func(err error) {
						if err != nil {
							t.Errorf("writer %d write %d: %v", w, i, err)
						}
						got <- i
					})
				}
				for want := 0; want < each; want++ {
					if i := <-got; i != want {
						t.Errorf("writer %d: completion %d arrived as number %d", w, i, want)
						return
					}
				}
			}()
		}
		wg.Wait()
		for k := 0; k < writers*each; k++ {
			want := pattern(size, 1, byte(k))
			mustEqual(t, "concurrent write", readBack(t, f, int64(k)*size, size), want)
		}
	})
}

// TestIOUringRingSetupFallback: io_uring passed the probe, but a File's
// ring cannot be set up; OpenAppend falls back to Direct, logs it, and Kind
// reports Direct from then on.
func TestIOUringRingSetupFallback(t *testing.T) {
	var logs logBuffer
	opts := DefaultOptions()
	opts.Logger = logs.logger()
	fs := OS(IOUring, opts)
	if fs.Kind() != IOUring {
		t.Skip("the kernel refuses io_uring here")
	}
	saved := setupRing
	setupRing = func(uint32) (*ring, error) { return nil, unix.ENOMEM }
	defer func() { setupRing = saved }()
	name := testDir(t) + "/seg"
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*pwriteFile); !ok || fs.Kind() != Direct {
		t.Fatalf("got %T and Kind %s, want the O_DIRECT pwrite file and direct", f, fs.Kind())
	}
	if !strings.Contains(logs.String(), "io_uring ring setup failed") {
		t.Fatalf("fallback not logged: %q", logs.String())
	}
	p := pattern(4096, f.Alignment(), 3)
	if err := submitWait(t, f, p, 0, true); err != nil {
		t.Fatal(err)
	}
}

// TestCloseWhileSubmitting closes a File while goroutines keep submitting:
// every done is called exactly once, with nil or ErrClosed, and Close does
// not hang.
func TestCloseWhileSubmitting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind Kind) {
		opts := DefaultOptions()
		opts.MaxIO = 8
		_, f := newFile(t, kind, opts, 1<<20)
		var calls, submitted atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := pattern(4096, f.Alignment(), byte(w))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					submitted.Add(1)
					var once atomic.Bool
					f.Submit(p, int64((w*64+i%64)*4096), i%2 == 0, func(err error) {
						if once.Swap(true) {
							t.Errorf("done called twice")
						}
						if err != nil && !errors.Is(err, ErrClosed) {
							t.Errorf("write: %v", err)
						}
						calls.Add(1)
					})
				}
			}()
		}
		time.Sleep(20 * time.Millisecond)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if calls.Load() != submitted.Load() {
			t.Fatalf("%d submits, %d completions", submitted.Load(), calls.Load())
		}
	})
}
