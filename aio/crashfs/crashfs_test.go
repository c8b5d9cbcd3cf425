package crashfs

import (
	"bytes"
	"errors"
	"slices"
	"syscall"
	"testing"

	"github.com/tandemmq/tandem/aio"
)

func submit(t *testing.T, f aio.File, p []byte, off int64, sync bool) error {
	t.Helper()
	var got error
	called := false
	f.Submit(p, off, sync, func(err error) { got, called = err, true })
	if !called {
		t.Fatal("Submit returned without calling done")
	}
	return got
}

func TestCrashKeepsSyncedAndSubsetOfUnsynced(t *testing.T) {
	fs := New(Options{SectorSize: 512})
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	pf, _ := fs.Create("/d/f")
	pf.WriteAt(make([]byte, 64<<10), 0)
	pf.Sync()
	fs.SyncDir("/d")
	f, err := fs.OpenAppend("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	synced := bytes.Repeat([]byte{1}, 4096)
	if err := submit(t, f, synced, 0, true); err != nil {
		t.Fatal(err)
	}
	unsynced := bytes.Repeat([]byte{2}, 32<<10)
	if err := submit(t, f, unsynced, 4096, false); err != nil {
		t.Fatal(err)
	}
	sawKept, sawLost, sawHole := false, false, false
	for seed := range uint64(20) {
		c := fs.Crash(seed)
		data, err := c.ReadFile("/d/f")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data[:4096], synced) {
			t.Fatalf("seed %d: synced bytes lost", seed)
		}
		var kept []bool
		for s := 4096; s < 4096+32<<10; s += 512 {
			switch data[s] {
			case 2:
				kept = append(kept, true)
			case 0:
				kept = append(kept, false)
			default:
				t.Fatalf("seed %d: sector at %d holds %d", seed, s, data[s])
			}
		}
		for i, k := range kept {
			if k {
				sawKept = true
			} else {
				sawLost = true
			}
			if i > 0 && k && !kept[i-1] {
				sawHole = true // a kept sector after a lost one: not only a suffix
			}
		}
		// Deterministic from the seed.
		again, _ := fs.Crash(seed).ReadFile("/d/f")
		if !bytes.Equal(again, data) {
			t.Fatalf("seed %d: two crashes differ", seed)
		}
	}
	if !sawKept || !sawLost || !sawHole {
		t.Fatalf("unsynced sectors: kept %v lost %v hole %v; want all", sawKept, sawLost, sawHole)
	}
}

func TestCrashNamespace(t *testing.T) {
	fs := New(Options{})
	fs.MkdirAll("/d")
	fs.Create("/d/durable")
	fs.SyncDir("/d")
	fs.Create("/d/tmp")
	fs.Rename("/d/tmp", "/d/final")
	sawFinal, sawNone := false, false
	for seed := range uint64(30) {
		names, _ := fs.Crash(seed).List("/d")
		switch {
		case len(names) == 2 && names[0] == "durable" && names[1] == "final":
			sawFinal = true
		case len(names) == 1 && names[0] == "durable":
			sawNone = true
		case len(names) == 2 && names[0] == "durable" && names[1] == "tmp":
		default:
			t.Fatalf("seed %d: names %v", seed, names)
		}
	}
	if !sawFinal || !sawNone {
		t.Fatalf("pending directory operations: kept %v lost %v; want both", sawFinal, sawNone)
	}
	fs.SyncDir("/d")
	if names, _ := fs.Crash(1).List("/d"); len(names) != 2 || names[1] != "final" {
		t.Fatalf("after SyncDir: %v", names)
	}
}

func TestInjectAndSticky(t *testing.T) {
	fs := New(Options{Alignment: 4096})
	fs.MkdirAll("/d")
	pf, _ := fs.Create("/d/f")
	pf.WriteAt(make([]byte, 16<<10), 0)
	f, _ := fs.OpenAppend("/d/f")
	buf := make([]byte, 4096)
	if err := submit(t, f, buf[:100], 0, false); err == nil {
		t.Fatal("unaligned write accepted")
	}
	f, _ = fs.OpenAppend("/d/f")
	fs.Inject(OpSync, 2, syscall.EIO)
	if err := submit(t, f, buf, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := submit(t, f, buf, 4096, true); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second sync: %v, want EIO", err)
	}
	if err := submit(t, f, buf, 8192, false); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write after a failed sync: %v, want the sticky EIO", err)
	}
	fs.Inject(OpPlainWrite, 1, syscall.ENOSPC)
	if _, err := pf.WriteAt(buf, 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("plain write: %v, want ENOSPC", err)
	}
}

// TestAsyncInOrder: an asynchronous File completes requests in submission
// order on its goroutine, Close waits for the queued ones, and Submit after
// Close fails with aio.ErrClosed.
func TestAsyncInOrder(t *testing.T) {
	fs := New(Options{SectorSize: 512, Async: 4})
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	pf, _ := fs.Create("/d/f")
	pf.WriteAt(make([]byte, 64<<10), 0)
	pf.Sync()
	fs.SyncDir("/d")
	f, err := fs.OpenAppend("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	var order []int
	for i := range 20 {
		f.Submit(bytes.Repeat([]byte{byte(i + 1)}, 512), int64(i)*512, i%5 == 4, func(err error) {
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			order = append(order, i) // one goroutine: no lock needed
		})
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(order) != 20 {
		t.Fatalf("Close returned with %d of 20 requests complete", len(order))
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("completion %d was request %d", i, v)
		}
	}
	got, _ := fs.ReadFile("/d/f")
	if got[19*512] != 20 {
		t.Fatalf("last write not applied: %d", got[19*512])
	}
	var closedErr error
	f.Submit(make([]byte, 512), 0, false, func(err error) { closedErr = err })
	if !errors.Is(closedErr, aio.ErrClosed) {
		t.Fatalf("Submit after Close: %v, want aio.ErrClosed", closedErr)
	}
}

// TestForkKeepsWhatIsNotDurable: a fork sees every current byte and name,
// and a crash of the fork can still lose what was not durable.
func TestForkKeepsWhatIsNotDurable(t *testing.T) {
	fs := New(Options{SectorSize: 512})
	fs.MkdirAll("/d")
	pf, _ := fs.Create("/d/f")
	pf.WriteAt(bytes.Repeat([]byte{1}, 512), 0)
	pf.Sync()
	fs.SyncDir("/d")
	pf.WriteAt(bytes.Repeat([]byte{2}, 512), 512) // not synced
	fs.Rename("/d/f", "/d/g")                     // not synced
	fork := fs.Fork()
	pf.WriteAt(bytes.Repeat([]byte{3}, 512), 1024) // after the kill: not in the fork
	got, err := fork.ReadFile("/d/g")
	if err != nil || len(got) != 1024 || got[512] != 2 {
		t.Fatalf("fork: %d bytes, %v", len(got), err)
	}
	lostData, lostName := false, false
	for seed := uint64(0); seed < 32; seed++ {
		c := fork.Crash(seed)
		b, err := c.ReadFile("/d/g")
		if err != nil {
			lostName = true
			if b, err = c.ReadFile("/d/f"); err != nil {
				t.Fatalf("seed %d: file gone under both names", seed)
			}
		}
		if b[0] != 1 {
			t.Fatalf("seed %d: synced sector lost", seed)
		}
		if len(b) < 1024 || b[512] != 2 {
			lostData = true
		}
	}
	if !lostData || !lostName {
		t.Fatalf("crashes of the fork never lost the unsynced write (%v) or rename (%v)", lostData, lostName)
	}
}

// TestCrashReorderDirOps: with ReorderDirOps a crash can keep a later
// directory operation and lose an earlier one (a rename without the
// create before it: the file under its new name, the earlier file gone);
// SyncDir still makes every one durable.
func TestCrashReorderDirOps(t *testing.T) {
	fs := New(Options{ReorderDirOps: true})
	fs.MkdirAll("/d")
	a, _ := fs.Create("/d/a")
	a.WriteAt([]byte("a"), 0)
	a.Sync()
	b, _ := fs.Create("/d/b.tmp")
	b.WriteAt([]byte("b"), 0)
	b.Sync()
	fs.Rename("/d/b.tmp", "/d/b")
	sawReordered, sawPrefix := false, false
	for seed := range uint64(64) {
		names, _ := fs.Crash(seed).List("/d")
		switch {
		case slices.Equal(names, []string{"b"}):
			sawReordered = true // the rename kept, the earlier create of a lost
		case slices.Equal(names, []string{"a", "b"}):
			sawPrefix = true
		case slices.Equal(names, []string{"a"}), slices.Equal(names, []string{"a", "b.tmp"}),
			slices.Equal(names, []string{"b.tmp"}), len(names) == 0:
		default:
			t.Fatalf("seed %d: names %v", seed, names)
		}
	}
	if !sawReordered || !sawPrefix {
		t.Fatalf("reordered %v, in order %v: want both", sawReordered, sawPrefix)
	}
	// Without the option, a crash keeps a prefix only: never b without a.
	po := New(Options{})
	po.MkdirAll("/d")
	po.Create("/d/a")
	po.Create("/d/b.tmp")
	po.Rename("/d/b.tmp", "/d/b")
	for seed := range uint64(64) {
		if names, _ := po.Crash(seed).List("/d"); slices.Equal(names, []string{"b"}) {
			t.Fatalf("seed %d: prefix mode kept the rename without the earlier create", seed)
		}
	}
	fs.SyncDir("/d")
	for seed := range uint64(8) {
		c := fs.Crash(seed)
		names, _ := c.List("/d")
		got, _ := c.ReadFile("/d/b")
		if !slices.Equal(names, []string{"a", "b"}) || string(got) != "b" {
			t.Fatalf("seed %d after SyncDir: %v, b holds %q", seed, names, got)
		}
	}
}

// TestHoldAndWatch: a Hold stops the operations it selects before they
// take effect and lets them go on at Release; a Watch only reports them.
func TestHoldAndWatch(t *testing.T) {
	fs := New(Options{})
	fs.MkdirAll("/d")
	fs.Create("/d/x")
	fs.Create("/d/y")
	w := fs.Watch(func(op Op, name, _ string) bool { return op == OpRemove && name == "/d/y" })
	h := fs.Hold(func(op Op, name, newname string) bool { return op == OpRename && name == "/d/x" && newname == "/d/z" })
	done := make(chan error, 1)
	go func() { done <- fs.Rename("/d/x", "/d/z") }()
	<-h.Fired()
	if names, _ := fs.List("/d"); !slices.Equal(names, []string{"x", "y"}) {
		t.Fatalf("held rename took effect: %v", names)
	}
	if n := fs.Count(OpRename); n != 0 {
		t.Fatalf("held rename counted: %d", n)
	}
	// Other operations go on meanwhile; the watch sees its one.
	select {
	case <-w.Fired():
		t.Fatal("watch fired before its operation")
	default:
	}
	if err := fs.Remove("/d/y"); err != nil {
		t.Fatal(err)
	}
	<-w.Fired()
	h.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if names, _ := fs.List("/d"); !slices.Equal(names, []string{"z"}) {
		t.Fatalf("after release: %v", names)
	}
	h.Release() // a second release is harmless
}

// TestNamespaceOpsInjectAndCrashAt: creates, renames and removes count
// for Inject and CrashAt like writes and syncs.
func TestNamespaceOpsInjectAndCrashAt(t *testing.T) {
	fs := New(Options{})
	fs.MkdirAll("/d")
	fs.Inject(OpCreate, 2, syscall.ENOSPC)
	if _, err := fs.Create("/d/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Create("/d/b"); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second create: %v, want ENOSPC", err)
	}
	fs.SyncDir("/d")
	fs.Inject(OpRename, 1, syscall.EIO)
	if err := fs.Rename("/d/a", "/d/c"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("rename: %v, want EIO", err)
	}
	var snap *FS
	fs.CrashAt(OpRemove, 1, 1, func(s *FS) { snap = s })
	fs.Rename("/d/a", "/d/c")
	fs.SyncDir("/d")
	if err := fs.Remove("/d/c"); err != nil {
		t.Fatal(err)
	}
	if names, _ := snap.List("/d"); !slices.Equal(names, []string{"c"}) {
		t.Fatalf("snapshot at the remove: %v, want the state before it", names)
	}
	if names, _ := fs.List("/d"); len(names) != 0 {
		t.Fatalf("after the remove: %v", names)
	}
}
