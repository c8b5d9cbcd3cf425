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
