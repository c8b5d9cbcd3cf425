package journal_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// TANDEM_BENCH_BUFFER_TIMEOUT sets journal-buffer-timeout (a duration),
// TANDEM_BENCH_MAX_INFLIGHT the batches in flight (io_uring).

// benchKind selects the backend: TANDEM_BENCH_JOURNAL_TYPE=DIRECT|ASYNCIO|NIO.
func benchKind(b *testing.B) aio.Kind {
	k, _, err := aio.ParseJournalType(os.Getenv("TANDEM_BENCH_JOURNAL_TYPE"))
	if err != nil {
		return aio.NIO
	}
	return k
}

// BenchmarkAppend measures synced appends: W writers, each waiting for
// its append before the next, records of S bytes. ns/op is per record;
// MB/s counts record bytes.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		for _, size := range []int{256, 1024, 16 << 10} {
			b.Run(fmt.Sprintf("writers=%d/size=%d", writers, size), func(b *testing.B) {
				bt, _ := time.ParseDuration(os.Getenv("TANDEM_BENCH_BUFFER_TIMEOUT"))
				mif, _ := strconv.Atoi(os.Getenv("TANDEM_BENCH_MAX_INFLIGHT"))
				j, err := journal.Open(journal.Options{Dir: b.TempDir(), FS: aio.OS(benchKind(b), aio.DefaultOptions()), Logger: quiet,
					BufferTimeout: bt, MaxInFlight: mif})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := j.Load(context.Background()); err != nil {
					b.Fatal(err)
				}
				data := make([]byte, size)
				var next atomic.Uint64
				var left atomic.Int64
				left.Store(int64(b.N))
				st0 := j.Stats()
				b.SetBytes(int64(size))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for left.Add(-1) >= 0 {
							id := next.Add(1)
							if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: id, Data: data}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				st := j.Stats()
				if syncs := st.Syncs - st0.Syncs; syncs > 0 {
					b.ReportMetric(float64(b.N)/float64(syncs), "records/fsync")
					b.ReportMetric(float64((st.WriteSyncTime-st0.WriteSyncTime).Microseconds())/float64(st.Batches-st0.Batches), "us/write+sync")
				}
				j.Close()
			})
		}
	}
}

// BenchmarkSteadyQueue is a queue in steady state: 8 writers each add a
// 1 KiB record and delete the one they added depth appends earlier; in
// the "long-lived" variants one record stays for the whole run, pinning
// every segment unless compaction rewrites the prefix. The "segments"
// metric (the most segment files in use or pooled at once) stays bounded
// whatever b.N with reclaim and compaction; compare ns/op between the
// variants and with BenchmarkAppend/writers=8/size=1024.
func BenchmarkSteadyQueue(b *testing.B) {
	for _, tc := range []struct {
		name       string
		longLived  bool
		minCompact int
	}{
		{"reclaim", false, -1},
		{"reclaim+compaction", false, 0},
		{"long-lived/no-compaction", true, -1},
		{"long-lived/compaction", true, 0},
	} {
		b.Run(tc.name, func(b *testing.B) { steadyQueue(b, tc.longLived, tc.minCompact) })
	}
}

func steadyQueue(b *testing.B, longLived bool, minCompact int) {
	dir := b.TempDir()
	// TANDEM_BENCH_SEGMENT_SIZE (bytes) replaces the 1 MiB segments, which
	// make reclaim and compaction happen 10x as often as the default size.
	segSize, _ := strconv.ParseInt(os.Getenv("TANDEM_BENCH_SEGMENT_SIZE"), 10, 64)
	if segSize == 0 {
		segSize = 1 << 20
	}
	j, err := journal.Open(journal.Options{Dir: dir, FS: aio.OS(benchKind(b), aio.DefaultOptions()), Logger: quiet,
		SegmentSize: segSize, CompactMinFiles: minCompact, PoolFiles: 4})
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
	var maxSegs atomic.Int64
	b.SetBytes(1024)
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
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	m := j.Metrics()
	b.ReportMetric(float64(maxSegs.Load()), "segments")
	b.ReportMetric(float64(m.Reclaimed), "reclaimed")
	b.ReportMetric(float64(m.Compactions), "compactions")
}
