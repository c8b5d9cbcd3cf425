package journal_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// BenchmarkSteadyQueue is a queue in steady state (issue 4, item 5): 8
// writers each add a 1 KiB record and delete the one they added depth
// appends earlier; with pinned=yes one record stays for the whole run,
// pinning every segment unless compaction moves it. compaction=off
// disables automatic compaction (journal-compact-min-files -1), so
// pinned=yes/compaction=off is the no-compaction figure compaction is held
// to, and pinned=no shows reclaim alone. Compare with
//
//	benchstat -col /compaction FILE
//
// To interleave the variants, run the benchmark several times with
// -count 1 rather than once with -count N (which repeats each variant
// back to back), and prefer a fixed -benchtime Nx so that every run does
// the same work (the same number of segments and compactions).
//
// Disk use: "segments" is the most segment files in use or pooled at
// once, "dir-MiB" the largest size of the journal directory seen (every
// file: segments, pool, compaction leftovers); both stay bounded whatever
// b.N with reclaim or compaction and grow with b.N without. cpu-ns/op is
// the process's CPU time per append. "created" is
// the segment files zero-filled (the rest were recycled), "reclaimed" the
// files reclaim and compaction freed (recycled or removed).
//
// TANDEM_BENCH_SEGMENT_SIZE (bytes; default journal-file-size, 10 MiB)
// sets the segment size; small segments make reclaim and compaction
// happen more often. TANDEM_BENCH_POOL_FILES sets journal-pool-files
// (default: no limit, so every freed file is recycled; with a limit,
// compaction removes the freed files beyond it and the preparer creates
// files again later). TANDEM_BENCH_JOURNAL_TYPE selects the backend.
func BenchmarkSteadyQueue(b *testing.B) {
	for _, tc := range []struct {
		name       string
		longLived  bool
		minCompact int
	}{
		{"pinned=no/compaction=off", false, -1},
		{"pinned=no/compaction=on", false, 0},
		{"pinned=yes/compaction=off", true, -1},
		{"pinned=yes/compaction=on", true, 0},
	} {
		b.Run(tc.name, func(b *testing.B) { steadyQueue(b, tc.longLived, tc.minCompact) })
	}
}

func steadyQueue(b *testing.B, longLived bool, minCompact int) {
	dir := b.TempDir()
	segSize, _ := strconv.ParseInt(os.Getenv("TANDEM_BENCH_SEGMENT_SIZE"), 10, 64)
	pool, _ := strconv.Atoi(os.Getenv("TANDEM_BENCH_POOL_FILES"))
	j, err := journal.Open(journal.Options{Dir: dir, FS: aio.OS(benchKind(b), aio.DefaultOptions()), Logger: quiet,
		SegmentSize: segSize, CompactMinFiles: minCompact, PoolFiles: pool})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := j.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	if longLived {
		journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("stays")})
	}
	const writers, depth = 8, 200
	data := make([]byte, 1024)
	var left atomic.Int64
	left.Store(int64(b.N))
	var maxSegs, maxDir atomic.Int64
	b.SetBytes(1024)
	cpu0 := cpuTime()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := uint64(w+1) << 40
			for n := 0; left.Add(-1) >= 0; n++ {
				id++
				entries := []journal.Entry{{Kind: journal.KindAdd, ID: id, Data: data}}
				if n >= depth {
					entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: id - depth})
				}
				if err := journal.AppendSync(context.Background(), j, entries...); err != nil {
					b.Error(err)
					return
				}
				if n%500 == 0 {
					if m := j.Metrics(); int64(m.SegmentsInUse+m.PoolFiles) > maxSegs.Load() {
						maxSegs.Store(int64(m.SegmentsInUse + m.PoolFiles))
					}
					if w == 0 {
						if s := dirSize(dir); s > maxDir.Load() {
							maxDir.Store(s)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	m := j.Metrics()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(maxSegs.Load()), "segments")
	b.ReportMetric(float64(maxDir.Load())/(1<<20), "dir-MiB")
	b.ReportMetric(float64(m.Reclaimed), "reclaimed")
	b.ReportMetric(float64(m.Created), "created")
	b.ReportMetric(float64(m.Compactions), "compactions")
}

// cpuTime is the CPU time (user and system) the process has used: less
// disturbed than ns/op by other processes' fdatasyncs on a shared disk, it
// shows the CPU and system-call cost compaction adds.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dirSize is the sum of the sizes of the files in dir (0 when it cannot
// be read).
func dirSize(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}
