package journal_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
	"github.com/tandemmq/tandem/journal"
)

// TestSyncBarrierMakesEarlierDurable: an empty append with sync is a
// barrier, and the next synced append makes earlier sync=false appends
// durable (the Journal contract). A crash right after the barrier's done
// must keep every earlier append, whatever unsynced sectors it loses.
func TestSyncBarrierMakesEarlierDurable(t *testing.T) {
	for _, cfg := range crashCfgs {
		t.Run(cfg.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 16; seed++ {
				fs := cfg.fs()
				j := openInFlight(t, fs, "/j", cfg.inflight)
				ctx := context.Background()
				if _, err := j.Load(ctx); err != nil {
					t.Fatal(err)
				}
				// A synced append first, so the flusher is idle and the
				// unsynced one is written alone.
				if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("synced")}); err != nil {
					t.Fatal(err)
				}
				const n = 5
				for i := range n {
					done := make(chan error, 1)
					data := fmt.Appendf(nil, "unsynced-%d-%0600d", i, i)
					if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: uint64(2 + i), Data: data}}, false, func(err error) { done <- err }); err != nil {
						t.Fatal(err)
					}
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				}
				if err := journal.AppendSync(ctx, j); err != nil {
					t.Fatal(err)
				}
				crashed := fs.Crash(seed)
				j.Close()
				j2 := openOn(t, crashed, "/j")
				res, err := j2.Load(ctx)
				if err != nil {
					t.Fatalf("seed %d: load after crash: %v", seed, err)
				}
				if len(res.Records) != 1+n {
					t.Fatalf("seed %d: %d records after a crash that followed a synced barrier, want %d", seed, len(res.Records), 1+n)
				}
				j2.Close()
			}
		})
	}
}

// TestLoadSyncsPreparedNames: a prepared segment file whose rename the
// preparer made but whose directory fsync a kill prevented is named but
// not durably. The next process appends to it: Load must make the names
// it uses durable first, or a power loss takes the file, and the
// acknowledged records in it, back to its temporary name (which the next
// load removes).
func TestLoadSyncsPreparedNames(t *testing.T) {
	ctx := context.Background()
	const dir = "/j"
	seg := func(seq uint64) string {
		return dir + "/" + journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, seq)
	}
	for seed := uint64(1); seed <= 8; seed++ {
		// A first process writes segment 1 and is killed: its disk as it
		// was (segment 1 unsealed, segment 2 prepared).
		fsA := crashfs.New(crashfs.Options{})
		a := openOn(t, fsA, dir)
		if _, err := a.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if err := journal.AppendSync(ctx, a, journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("a")}); err != nil {
			t.Fatal(err)
		}
		fs := fsA.Crash(seed)
		a.Close()
		// Its preparer had just renamed segment 2 into place, without the
		// directory fsync that follows. Segment 3 is prepared too, so the
		// next process's preparer has nothing to do (its directory fsync
		// would cover the rename by chance before the power fails).
		if err := fs.Remove(seg(2)); err != nil {
			t.Fatal(err)
		}
		zero := func(name string) {
			f, err := fs.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(make([]byte, 64<<10), 0)
			f.Sync()
			if err := fs.SyncDir(dir); err != nil {
				t.Fatal(err)
			}
		}
		zero(seg(3))
		zero(seg(2) + ".tmp")
		if err := fs.Rename(seg(2)+".tmp", seg(2)); err != nil {
			t.Fatal(err)
		}
		// The next process appends into segment 2; then the power fails.
		b := openOn(t, fs, dir)
		if _, err := b.Load(ctx); err != nil {
			t.Fatal(err)
		}
		for id := uint64(2); id <= 5; id++ {
			if err := journal.AppendSync(ctx, b, journal.Entry{Kind: journal.KindAdd, ID: id, Data: []byte("b")}); err != nil {
				t.Fatal(err)
			}
		}
		crashed := fs.Crash(seed)
		b.Close()
		c := openOn(t, crashed, dir)
		res, err := c.Load(ctx)
		if err != nil {
			t.Fatalf("seed %d: load after power loss: %v", seed, err)
		}
		if len(res.Records) != 5 {
			t.Fatalf("seed %d: %d records after power loss, want the 5 acknowledged", seed, len(res.Records))
		}
		c.Close()
	}
}

// TestLoadSyncsLastSegment: a process killed between writing a segment's
// seal record and its fdatasync leaves a seal that the next process reads
// (from the page cache) but that is not durable. The next process appends
// to the following segment; after a power loss the first segment must
// not come back as a sealed segment without its seal (corruption): Load
// makes the last segment durable before appending after it.
func TestLoadSyncsLastSegment(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 8; seed++ {
		fs := crashfs.New(crashfs.Options{})
		a := openOn(t, fs, "/j")
		if _, err := a.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if err := journal.AppendSync(ctx, a, journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("a")}); err != nil {
			t.Fatal(err)
		}
		// Close writes the seal; its fdatasync never happens (the kill).
		fs.Inject(crashfs.OpSync, 1, syscall.EIO)
		if err := a.Close(); err == nil {
			t.Fatal("Close succeeded despite the failed fdatasync")
		}
		b := openOn(t, fs, "/j")
		res, err := b.Load(ctx)
		if err != nil || len(res.Records) != 1 {
			t.Fatalf("restart: %v, %+v", err, res)
		}
		if err := journal.AppendSync(ctx, b, journal.Entry{Kind: journal.KindAdd, ID: 2, Data: []byte("b")}); err != nil {
			t.Fatal(err)
		}
		crashed := fs.Crash(seed)
		b.Close()
		c := openOn(t, crashed, "/j")
		res, err = c.Load(ctx)
		if err != nil {
			t.Fatalf("seed %d: load after power loss: %v", seed, err)
		}
		if len(res.Records) != 2 {
			t.Fatalf("seed %d: %d records after power loss, want 2", seed, len(res.Records))
		}
		c.Close()
	}
}

// TestPreparerErrorIsFatal: an fsync (or write) error while preparing the
// next segment fails the journal at once, as any storage error does; it
// does not wait for the rotation that needs the file.
func TestPreparerErrorIsFatal(t *testing.T) {
	ctx := context.Background()
	fs := crashfs.New(crashfs.Options{})
	j := openOn(t, fs, "/j")
	defer j.Close()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// Load prepared segments 1 and 2; the preparer makes 3 once the
	// journal moves to 2. Its fsync fails.
	fs.Inject(crashfs.OpPlainSync, 1, syscall.EIO)
	data := make([]byte, 8<<10)
	for id := uint64(1); j.Err() == nil && id <= 10; id++ {
		err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: id, Data: data})
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Fatal(err)
		}
	}
	select {
	case <-j.Failed():
	case <-time.After(30 * time.Second):
		t.Fatal("the journal did not fail after the preparer's fsync error")
	}
	if !errors.Is(j.Err(), syscall.EIO) {
		t.Fatalf("Err = %v, want EIO", j.Err())
	}
	if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 100}}, true, func(error) { t.Error("done called") }); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append after the failure: %v", err)
	}
}

// TestLoadCrashAtEveryStep crashes the load itself at each of its durable
// steps (the seal of a torn tail, the directory fsync, the preparation of
// segment files, the rollback of an unfinished transaction) and loads
// what the crash left: the same state every time, never corruption.
func TestLoadCrashAtEveryStep(t *testing.T) {
	ctx := context.Background()
	// A journal cut by a power loss inside a synced write: a torn tail,
	// a prepared and an unfinished transaction.
	base := crashfs.New(crashfs.Options{Kind: aio.Direct, Alignment: 4096, SectorSize: 512})
	a := openOn(t, base, "/j")
	if _, err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	must := func(entries ...journal.Entry) {
		if err := journal.AppendSync(ctx, a, entries...); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(1); id <= 30; id++ {
		must(journal.Entry{Kind: journal.KindAdd, ID: id, Data: make([]byte, 1500)})
	}
	must(journal.Entry{Kind: journal.KindAddTx, TxID: 100, ID: 101, Data: []byte("prepared")}, journal.Entry{Kind: journal.KindPrepare, TxID: 100})
	must(journal.Entry{Kind: journal.KindAddTx, TxID: 200, ID: 201, Data: []byte("unfinished")})
	var snap *crashfs.FS
	base.CrashAt(crashfs.OpSync, 1, 7, func(s *crashfs.FS) { snap = s })
	if err := journal.AppendSync(ctx, a, journal.Entry{Kind: journal.KindAdd, ID: 31, Data: make([]byte, 3000)}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	loadOf := func(fs *crashfs.FS) *journal.LoadResult {
		t.Helper()
		j := openOn(t, fs, "/j")
		defer j.Close()
		res, err := j.Load(ctx)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return res
	}
	want := loadOf(snap.Fork())
	if len(want.Records) < 30 || len(want.Prepared) != 1 || want.RolledBack != 1 {
		t.Fatalf("base state: %d records, %d prepared, %d rolled back", len(want.Records), len(want.Prepared), want.RolledBack)
	}
	for _, op := range []crashfs.Op{crashfs.OpPlainWrite, crashfs.OpPlainSync, crashfs.OpSyncDir, crashfs.OpWrite, crashfs.OpSync} {
		for k := 1; ; k++ {
			fs := snap.Fork()
			var crashed *crashfs.FS
			fs.CrashAt(op, k, uint64(k), func(s *crashfs.FS) { crashed = s })
			j := openOn(t, fs, "/j")
			if _, err := j.Load(ctx); err != nil {
				t.Fatal(err)
			}
			j.Close() // the close's own steps count too
			if crashed == nil {
				t.Logf("op %d: crashed at each of %d steps", op, k-1)
				break
			}
			got := loadOf(crashed)
			sameState(t, fmt.Sprintf("op %d crash at step %d", op, k), want, got)
			if len(got.Prepared) != 1 || got.Prepared[0].TxID != 100 {
				t.Fatalf("op %d step %d: prepared %+v", op, k, got.Prepared)
			}
		}
	}
}
