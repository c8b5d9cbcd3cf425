package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
	"github.com/tandemmq/tandem/journal"
)

// isSegmentPath reports whether p names a data segment (not a .tmp, .cmp
// or .free file).
func isSegmentPath(p string) bool { return strings.HasSuffix(p, "."+journal.DefaultExt) }

// holdPreparer holds the preparer's recycling (a rename of a segment to a
// later segment's name) and removal of reclaimed segments.
func holdPreparer(fs *crashfs.FS) *crashfs.Gate {
	return fs.Hold(func(op crashfs.Op, name, newname string) bool {
		return (op == crashfs.OpRename && isSegmentPath(name) && isSegmentPath(newname)) ||
			(op == crashfs.OpRemove && isSegmentPath(name))
	})
}

// reclaimCompactRun is one run of the combined schedule of reclaim and
// automatic compaction (issue 21, item 3): a queue's first segments are
// reclaimed while the preparer is held, so their files stay on disk; a
// long-lived record then pins the following segments until automatic
// compaction rewrites them. At the moment the compaction has finished (or
// waits for the preparer), held is called with the FS; then the preparer
// is released and the journal closed. It returns the live state the
// workload left.
type reclaimCompactRun struct {
	fs      *crashfs.FS
	pool    int // journal-pool-files: -1 recycles the reclaimed files, 1 removes most
	held    func()
	release func() // called right before the preparer is released
}

func (r reclaimCompactRun) run(t *testing.T) *reviewModel {
	t.Helper()
	fs := r.fs
	j, err := journal.Open(journal.Options{Dir: "/j", FS: fs, SegmentSize: 64 << 10, Logger: quiet,
		MinFiles: 24, PoolFiles: r.pool, CompactMinFiles: 6})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	journal.SetCompactWaitHook(j, func() { close(waiting) })
	switched := fs.Watch(func(op crashfs.Op, name, _ string) bool {
		return op == crashfs.OpRemove && strings.HasSuffix(name, ".compact")
	})
	hold := holdPreparer(fs)
	defer hold.Release()
	m := &reviewModel{recs: map[uint64]*journal.Record{}}
	must := func(entries ...journal.Entry) {
		t.Helper()
		if err := journal.AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	const depth = 20
	data := bytes.Repeat([]byte{7}, 900)
	for id := uint64(100); id < 100+14*68; id++ { // about 14 segments
		if id == 100+4*68 {
			// A long-lived record, after about 4 segments the queue
			// empties (and reclaim takes).
			must(journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("long-lived")})
			m.add(1, []byte("long-lived"))
		}
		d := append(fmt.Appendf(nil, "%d-", id), data...)
		entries := []journal.Entry{{Kind: journal.KindAdd, ID: id, Data: d}}
		m.add(id, d)
		if id >= 100+depth {
			entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: id - depth})
			m.del(id - depth)
		}
		must(entries...)
	}
	// The first reclaimed segment reached the preparer, which is held
	// there (with the others queued behind it).
	<-hold.Fired()
	// The automatic compaction started during the workload; it finishes
	// (a bug: the reclaimed segments are still on disk) or waits for the
	// preparer.
	select {
	case <-switched.Fired():
	case <-waiting:
	}
	r.held()
	if r.release != nil {
		r.release()
	}
	hold.Release()
	<-switched.Fired() // the compaction goes on once the reclaimed files are gone
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if m := j.Metrics(); m.Compactions != 1 {
		t.Fatalf("%d compactions, want 1", m.Compactions)
	}
	return m
}

// TestCompactWaitsForReclaimedFiles (issue 21, item 3): an automatic
// compaction that starts while segments reclaimed before its prefix still
// wait in the preparer's queue must not make its prefix's removal durable
// before their files are gone: a crash then left the reclaimed segments
// followed by the compacted ones ("gap in the segment sequence"), which
// no load or repair accepts. A crash (power loss or kill) at the moment
// the compaction finished or waits, with the preparer held, must load the
// workload's state.
func TestCompactWaitsForReclaimedFiles(t *testing.T) {
	for _, pool := range []int{-1, 1} {
		for _, kill := range []bool{false, true} {
			t.Run(fmt.Sprintf("pool%d-kill=%v", pool, kill), func(t *testing.T) {
				fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1, SectorSize: 512})
				var snaps []*crashfs.FS
				m := reclaimCompactRun{fs: fs, pool: pool, held: func() {
					if kill {
						snaps = append(snaps, fs.Fork())
						return
					}
					for seed := range uint64(4) {
						snaps = append(snaps, fs.Crash(seed))
					}
				}}.run(t)
				for i, s := range snaps {
					m.check(t, fmt.Sprintf("snapshot %d while the preparer is held", i), loadSnapshot(t, s))
				}
				m.check(t, "after the compaction", loadSnapshot(t, fs.Crash(99)))
			})
		}
	}
}

// TestReclaimCompactCrashAtEveryStep: the combined schedule of reclaim and
// compaction (the preparer removing or recycling the reclaimed segments,
// the compaction waiting for it, then switching, the preparer taking the
// freed files, the journal closing), crashed at each of its steps, by a
// power loss (pending directory operations kept as a prefix, or reordered
// as some file systems do) or a kill: every snapshot loads the workload's
// state and leaves no compaction file behind.
func TestReclaimCompactCrashAtEveryStep(t *testing.T) {
	ops := []crashfs.Op{crashfs.OpSyncDir, crashfs.OpRename, crashfs.OpRemove, crashfs.OpCreate, crashfs.OpPlainSync, crashfs.OpPlainWrite}
	for _, pool := range []int{-1, 1} {
		for _, mode := range []string{"crash", "reorder", "kill"} {
			t.Run(fmt.Sprintf("pool%d-%s", pool, mode), func(t *testing.T) {
				steps := 0
				for _, op := range ops {
					if mode == "kill" && op != crashfs.OpSyncDir && op != crashfs.OpRename {
						continue
					}
					for k := 1; ; k++ {
						fs := crashfs.New(crashfs.Options{Kind: aio.NIO, Alignment: 1, SectorSize: 512, ReorderDirOps: mode == "reorder"})
						var snap *crashfs.FS
						take := func(s *crashfs.FS) { snap = s }
						m := reclaimCompactRun{fs: fs, pool: pool, held: func() {}, release: func() {
							if mode == "kill" {
								fs.KillAt(op, k, take)
							} else {
								fs.CrashAt(op, k, uint64(k), take)
							}
						}}.run(t)
						if snap == nil {
							steps += k - 1
							break
						}
						m.check(t, fmt.Sprintf("op %d step %d", op, k), loadSnapshot(t, snap))
					}
				}
				t.Logf("crashed at each of %d steps", steps)
			})
		}
	}
}
