package aio

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// benchFileSize is the zero-filled file the benchmarks write into, so
// fdatasync never has to allocate extents (the journal's segments are
// pre-written the same way); offsets wrap around.
const benchFileSize = 64 << 20

// BenchmarkSyncAppend is one writer appending a 1 KiB record padded to
// 4 KiB and waiting for its fdatasync: the journal's single-writer latency.
func BenchmarkSyncAppend(b *testing.B) {
	for _, kind := range backends(b) {
		b.Run("backend="+kind.String(), func(b *testing.B) { benchSyncAppend(b, kind, false) })
	}
	b.Run("backend=io_uring+SubmitSync", func(b *testing.B) { benchSyncAppend(b, IOUring, true) })
}

func benchSyncAppend(b *testing.B, kind Kind, inline bool) {
	_, f := newFile(b, kind, DefaultOptions(), benchFileSize)
	submit := f.Submit
	if inline {
		submit = f.(SyncSubmitter).SubmitSync
	}
	p := pattern(4096, f.Alignment(), 1)
	done := make(chan error, 1)
	cb := func(err error) { done <- err }
	b.SetBytes(1024)
	lat := make([]time.Duration, b.N)
	off := int64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		submit(p, off, true, cb)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
		off = (off + 4096) % benchFileSize
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// reportPercentiles adds p50 and p99 latency metrics: medians resist the
// noise of a shared machine better than the mean.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkBatch64K writes 64 KiB batches, each with its fdatasync, keeping
// up to depth of them in flight (the pwrite backends: depth fdatasyncs at
// once, each write issued while earlier fdatasyncs run).
func BenchmarkBatch64K(b *testing.B) { benchBatches(b, 64<<10, []int{1, 4, 16, 64}) }

// BenchmarkBatch8K is the same with 8 KiB batches: what a journal under
// many writers submits when every batch in flight is small.
func BenchmarkBatch8K(b *testing.B) { benchBatches(b, 8<<10, []int{1, 8}) }

func benchBatches(b *testing.B, size int, depths []int) {
	for _, kind := range backends(b) {
		for _, depth := range depths {
			b.Run(fmt.Sprintf("backend=%s/depth=%d", kind, depth), func(b *testing.B) {
				opts := DefaultOptions()
				opts.MaxIO = depth
				opts.MaxSyncs = depth
				_, f := newFile(b, kind, opts, benchFileSize)
				bufs := make([][]byte, depth)
				for i := range bufs {
					bufs[i] = pattern(size, f.Alignment(), byte(i))
				}
				errs := make(chan error, b.N)
				cb := func(err error) { errs <- err }
				b.SetBytes(int64(size))
				off := int64(0)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					// Submit blocks while depth batches are in flight, so
					// buffer i%depth is free again by the time it is reused.
					f.Submit(bufs[i%depth], off, true, cb)
					off = (off + int64(size)) % benchFileSize
				}
				for i := 0; i < b.N; i++ {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
