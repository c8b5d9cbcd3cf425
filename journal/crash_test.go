package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
	"github.com/tandemmq/tandem/journal"
)

var quiet = slog.New(slog.DiscardHandler)

// model tracks what a workload did and what was acknowledged before the
// crash snapshot.
type model struct {
	mu      sync.Mutex
	crashed bool
	recs    map[uint64]*mrec
}

type mrec struct {
	data          []byte
	addAcked      bool
	base          int      // updates present at the start of the generation
	updates       [][]byte // issued, in order
	updAcked      int      // updates acknowledged (a prefix)
	delIssued     bool
	delAcked      bool
	tx            uint64 // transaction that adds it (0: plain add)
	txCommitAcked bool
}

func (m *model) ack(f func()) {
	m.mu.Lock()
	if !m.crashed {
		f()
	}
	m.mu.Unlock()
}

// check compares a load with the model and returns the new model (the
// loaded state, now durable) for the next generation.
func (m *model) check(t *testing.T, res *journal.LoadResult) {
	t.Helper()
	live := map[uint64]*journal.Record{}
	for i := range res.Records {
		live[res.Records[i].ID] = &res.Records[i]
	}
	txLive := map[uint64]int{}
	txAll := map[uint64]int{}
	for id, r := range m.recs {
		l, ok := live[id]
		if r.tx != 0 && !r.delIssued {
			txAll[r.tx]++
			if ok {
				txLive[r.tx]++
			}
		}
		mustLive := (r.addAcked || r.txCommitAcked) && !r.delIssued
		if mustLive && !ok {
			t.Fatalf("acknowledged record %d lost", id)
		}
		if r.delAcked && ok {
			t.Fatalf("record %d live after an acknowledged delete", id)
		}
		if !ok {
			continue
		}
		if !bytes.Equal(l.Data, r.data) {
			t.Fatalf("record %d: data %q, want %q", id, l.Data, r.data)
		}
		n := len(l.Updates)
		if n < r.base+r.updAcked || n > r.base+len(r.updates) {
			t.Fatalf("record %d: %d updates, want between %d and %d", id, n, r.base+r.updAcked, r.base+len(r.updates))
		}
		for i := r.base; i < n; i++ {
			if !bytes.Equal(l.Updates[i].Data, r.updates[i-r.base]) {
				t.Fatalf("record %d update %d: %q, want %q", id, i, l.Updates[i].Data, r.updates[i-r.base])
			}
		}
	}
	for tx, n := range txLive {
		if n != txAll[tx] {
			t.Fatalf("transaction %d: %d of its %d adds are live (not atomic)", tx, n, txAll[tx])
		}
	}
	for id := range live {
		if _, ok := m.recs[id]; !ok {
			t.Fatalf("record %d live but never added", id)
		}
	}
	next := map[uint64]*mrec{}
	for id, l := range live {
		next[id] = &mrec{data: l.Data, addAcked: true, base: len(l.Updates)}
	}
	m.recs = next
	m.crashed = false
}

type crashCfg struct {
	name   string
	kind   aio.Kind
	align  int
	sector int
	// async > 0: asynchronous Files (as io_uring) and inflight batches in
	// flight.
	async, inflight int
	// reorder: a power loss keeps a random subset of the directory
	// operations not synced, not a prefix (crashfs.Options.ReorderDirOps).
	reorder bool
}

var crashCfgs = []crashCfg{
	{"nio-512", aio.NIO, 1, 512, 0, 0, false},
	{"direct-4096", aio.Direct, 4096, 4096, 0, 0, false},
	{"direct-512", aio.Direct, 4096, 512, 0, 0, false},
	{"direct-512-async-inflight4", aio.IOUring, 4096, 512, 8, 4, false},
	{"nio-512-async-inflight2", aio.NIO, 1, 512, 4, 2, false},
	{"nio-512-reorder", aio.NIO, 1, 512, 0, 0, true},
	{"direct-4096-async-inflight2-reorder", aio.IOUring, 4096, 4096, 4, 2, true},
}

func (c crashCfg) fs() *crashfs.FS {
	return crashfs.New(crashfs.Options{Kind: c.kind, Alignment: c.align, SectorSize: c.sector, Async: c.async, ReorderDirOps: c.reorder})
}

func openOn(t *testing.T, fs aio.FS, dir string) journal.Journal {
	t.Helper()
	return openInFlight(t, fs, dir, 0)
}

func openInFlight(t *testing.T, fs aio.FS, dir string, inflight int) journal.Journal {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: dir, FS: fs, SegmentSize: 64 << 10, Logger: quiet, MaxInFlight: inflight})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// crashIters is the number of randomized crash iterations: def, 3 with
// -short, or TANDEM_CRASH_ITERS (for long runs: the seeds continue, so a
// longer run covers the short one and more).
func crashIters(t *testing.T, def int) int {
	if v := os.Getenv("TANDEM_CRASH_ITERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("TANDEM_CRASH_ITERS=%q: want a positive number", v)
		}
		return n
	}
	if testing.Short() {
		return 3
	}
	return def
}

// TestCrashReplay runs a concurrent workload, takes a crash snapshot at a
// random moment while appends are in flight, and loads the snapshot: no
// corruption may be reported and every acknowledged record must be there.
// Several generations run on the same simulated disk.
func TestCrashReplay(t *testing.T) {
	iters := crashIters(t, 8)
	for _, cfg := range crashCfgs {
		t.Run(cfg.name, func(t *testing.T) {
			reclaimed, torn, compactions, kills := 0, 0, 0, 0
			defer func() {
				t.Logf("%d segments reclaimed, %d compactions, %d torn tails, %d kills", reclaimed, compactions, torn, kills)
			}()
			for it := range iters {
				seed := uint64(it*7919 + 1)
				fs := cfg.fs()
				m := &model{recs: map[uint64]*mrec{}}
				nextID := uint64(1)
				for gen := range 4 {
					j := openInFlight(t, fs, "/j", cfg.inflight)
					res, err := j.Load(context.Background())
					if err != nil {
						t.Fatalf("seed %d gen %d: load after crash: %v", seed, gen, err)
					}
					m.check(t, res)
					torn += len(res.Warnings)
					nextID = max(nextID, res.MaxID+1)
					// Mostly a power loss; every third generation a kill
					// (the next one loads what the killed process left,
					// durable or not, and a later power loss follows).
					kill := (it+gen)%3 == 2
					if kill {
						kills++
					}
					fs = runUntilCrash(t, j, fs, m, &nextID, seed*31+uint64(gen), it%2 == 1, kill)
					time.Sleep(time.Millisecond) // let the background reclaim run before the count
					m := j.(*journal.FileJournal).Metrics()
					reclaimed += m.Reclaimed
					compactions += m.Compactions
					j.Close()
				}
			}
		})
	}
}

// runUntilCrash runs 4 writers and snapshots the disk after a random
// number of acknowledgements. It returns the snapshot: a power loss, or
// with kill what a killed process leaves (a crashfs Fork).
//
// queue makes the workload a queue (add, delete the oldest), so segments
// empty and are reclaimed and recycled while crashes happen.
func runUntilCrash(t *testing.T, j journal.Journal, fs *crashfs.FS, m *model, nextID *uint64, seed uint64, queue, kill bool) *crashfs.FS {
	rng := rand.New(rand.NewPCG(seed, 1))
	crashAfter := int64(20 + rng.IntN(300))
	var (
		acks    int64
		snap    *crashfs.FS
		snapMu  sync.Mutex
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		stopped sync.Once
	)
	take := func(s *crashfs.FS) {
		m.mu.Lock()
		snapMu.Lock()
		if snap == nil {
			m.crashed = true
			snap = s
		}
		snapMu.Unlock()
		m.mu.Unlock()
		stopped.Do(func() { close(stop) })
	}
	// A crash at the next synced write, so that the snapshot and the
	// model's "crashed" mark are one step (an ack recorded after a
	// snapshot taken elsewhere would be a false "must survive").
	at := func(op crashfs.Op, n int) {
		if kill {
			fs.KillAt(op, n, take)
		} else {
			fs.CrashAt(op, n, seed, take)
		}
	}
	crash := func() { at(crashfs.OpSync, 1) }
	// Mostly crash inside a synced write (after the write, before its
	// fdatasync), sometimes between operations, or inside the background
	// work: segment preparation and recycling (directory syncs, plain
	// writes and syncs), reclaim, compaction.
	switch rng.IntN(6) {
	case 0, 1:
		at(crashfs.OpSync, 1+rng.IntN(int(crashAfter)))
	case 2:
		at(crashfs.OpWrite, 1+rng.IntN(int(crashAfter)))
	case 3:
		at(crashfs.OpSyncDir, 1+rng.IntN(12))
	case 4:
		at(crashfs.OpPlainSync, 1+rng.IntN(12))
	}
	onAck := func() {
		m.mu.Lock()
		acks++
		n := acks
		m.mu.Unlock()
		if n == crashAfter {
			go crash()
		}
	}
	// Existing records are split among writers.
	m.mu.Lock()
	owned := make([][]uint64, 4)
	for id := range m.recs {
		owned[id%4] = append(owned[id%4], id)
	}
	ids := make([]uint64, 4*400)
	for i := range ids {
		ids[i] = *nextID
		*nextID++
	}
	m.mu.Unlock()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(seed, uint64(w)+2))
			mine := owned[w]
			fresh := ids[w*400 : (w+1)*400]
			call := func(entries []journal.Entry, sync bool, onOK func()) bool {
				ch := make(chan error, 1)
				if err := j.Append(entries, sync, func(err error) {
					if err == nil && sync {
						m.ack(onOK)
						onAck()
					}
					ch <- err
				}); err != nil {
					return false
				}
				return <-ch == nil
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				sync := wr.IntN(5) != 0
				op := wr.IntN(10)
				if queue {
					op = []int{0, 0, 0, 0, 7, 7, 7, 7, 5, 9}[op]
				}
				switch {
				case op < 4 || len(mine) == 0:
					if len(fresh) == 0 {
						return
					}
					id := fresh[0]
					fresh = fresh[1:]
					data := fmt.Appendf(nil, "rec-%d-%s", id, bytes.Repeat([]byte{'x'}, wr.IntN(3000)))
					r := &mrec{data: data}
					m.mu.Lock()
					m.recs[id] = r
					m.mu.Unlock()
					if !call([]journal.Entry{{Kind: journal.KindAdd, ID: id, Type: 1, Data: data}}, sync, func() { r.addAcked = true }) {
						return
					}
					mine = append(mine, id)
				case op < 7:
					id := mine[wr.IntN(len(mine))]
					m.mu.Lock()
					r := m.recs[id]
					u := fmt.Appendf(nil, "u%d", len(r.updates))
					r.updates = append(r.updates, u)
					n := len(r.updates)
					m.mu.Unlock()
					if !call([]journal.Entry{{Kind: journal.KindUpdate, ID: id, Type: 2, Data: u}}, sync, func() { r.updAcked = n }) {
						return
					}
				case op < 8:
					i := wr.IntN(len(mine))
					if queue {
						i = 0
					}
					id := mine[i]
					mine = append(mine[:i], mine[i+1:]...)
					m.mu.Lock()
					r := m.recs[id]
					r.delIssued = true
					m.mu.Unlock()
					if !call([]journal.Entry{{Kind: journal.KindDelete, ID: id}}, sync, func() { r.delAcked = true }) {
						return
					}
				default:
					k := 1 + wr.IntN(4)
					if len(fresh) < k+1 {
						return
					}
					tx := fresh[0]
					var rs []*mrec
					for _, id := range fresh[1 : k+1] {
						data := fmt.Appendf(nil, "tx-%d-%d", tx, id)
						r := &mrec{data: data, tx: tx}
						m.mu.Lock()
						m.recs[id] = r
						m.mu.Unlock()
						rs = append(rs, r)
						if !call([]journal.Entry{{Kind: journal.KindAddTx, TxID: tx, ID: id, Type: 3, Data: data}}, false, nil) {
							return
						}
						mine = append(mine, id)
					}
					fresh = fresh[k+1:]
					if !call([]journal.Entry{{Kind: journal.KindCommit, TxID: tx}}, true, func() {
						for _, r := range rs {
							r.txCommitAcked = true
						}
					}) {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	// The workload ended first: nothing is in flight, crash now.
	if kill {
		take(fs.Fork())
	} else {
		take(fs.Crash(seed))
	}
	return snap
}

// TestFaultInjection fails the Nth write or sync: the failing batch and
// every later append fail, Failed is closed, nothing is acknowledged after
// the error, and the acknowledged records survive a crash.
func TestFaultInjection(t *testing.T) {
	for _, inflight := range []int{1, 4} {
		for _, op := range []crashfs.Op{crashfs.OpWrite, crashfs.OpSync} {
			for _, errno := range []error{syscall.EIO, syscall.ENOSPC} {
				for _, n := range []int{1, 5, 40} {
					t.Run(fmt.Sprintf("inflight%d-op%d-%v-%d", inflight, op, errno, n), func(t *testing.T) {
						testFault(t, inflight, op, errno, n)
					})
				}
			}
		}
	}
}

// testFault fails the nth op with errno. With inflight > 1 the Files are
// asynchronous and that many batches are in flight.
func testFault(t *testing.T, inflight int, op crashfs.Op, errno error, n int) {
	async := 0
	if inflight > 1 {
		async = 2 * inflight
	}
	fs := crashfs.New(crashfs.Options{Kind: aio.Direct, Alignment: 4096, SectorSize: 512, Async: async})
	j := openInFlight(t, fs, "/j", inflight)
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs.Inject(op, n, errno)
	var (
		mu       sync.Mutex
		acked    []uint64
		failedAt = -1
		order    int
		bad      bool
		wg       sync.WaitGroup
	)
waves:
	for i := range 5000 {
		if i%50 == 0 {
			wg.Wait() // in waves, so there are many batches
			select {
			case <-j.Failed():
				break waves
			default:
			}
		}
		id := uint64(i + 1)
		wg.Add(1)
		err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: id, Data: bytes.Repeat([]byte{7}, 500)}}, true, func(err error) {
			mu.Lock()
			if err != nil && failedAt < 0 {
				failedAt = order
			}
			if err == nil {
				if failedAt >= 0 {
					bad = true
				}
				acked = append(acked, id)
			}
			order++
			mu.Unlock()
			wg.Done()
		})
		if err != nil {
			wg.Done()
			if j.Err() == nil {
				t.Fatalf("append %d refused (%v) but Err is nil", i, err)
			}
			break waves
		}
	}
	wg.Wait()
	if bad {
		t.Fatal("an append was acknowledged after an earlier one failed")
	}
	select {
	case <-j.Failed():
	default:
		t.Fatal("Failed not closed after an injected error")
	}
	if !errors.Is(j.Err(), errno) {
		t.Fatalf("Err = %v, want %v", j.Err(), errno)
	}
	if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 9999}}, true, func(error) { t.Error("done after failure") }); !errors.Is(err, errno) {
		t.Fatalf("append after failure: %v", err)
	}
	j.Close()
	crashed := fs.Crash(uint64(n))
	j2 := openOn(t, crashed, "/j")
	res, err := j2.Load(context.Background())
	if err != nil {
		t.Fatalf("load after failure and crash: %v", err)
	}
	live := map[uint64]bool{}
	for _, r := range res.Records {
		live[r.ID] = true
	}
	for _, id := range acked {
		if !live[id] {
			t.Fatalf("acknowledged record %d lost", id)
		}
	}
	j2.Close()
}
