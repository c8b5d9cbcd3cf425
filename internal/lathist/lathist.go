// Package lathist is a latency histogram cheap enough for a hot path (two
// atomic adds per value, no allocation, no lock) whose snapshot maps onto
// a Prometheus histogram: the journal's fdatasync latency and the broker's
// send latency are kept in one and exported by /metrics.
//
// Buckets are powers of two from 16 microseconds to about 4.2 seconds, so
// both a sub-millisecond fdatasync and a stall of tens of milliseconds
// land in a bucket of their own; longer values go to the +Inf bucket. It
// owns nothing else and must never block or allocate in Observe.
package lathist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	firstShift = 14 // the first bucket's upper bound is 2^14 ns (16.4 us)
	// Buckets is the number of finite buckets: upper bounds 2^14 ns,
	// 2^15 ns, ..., 2^32 ns (4.29 s).
	Buckets = 19
)

// Histogram counts durations. The zero value is ready to use and safe for
// concurrent Observe and Snapshot.
type Histogram struct {
	counts [Buckets + 1]atomic.Uint64 // the last is +Inf
	sum    atomic.Int64               // nanoseconds
	max    atomic.Int64               // nanoseconds, since the start
}

// index returns the bucket of d nanoseconds: the first whose upper bound
// (inclusive) is at least d.
func index(d int64) int {
	if d <= 1<<firstShift {
		return 0
	}
	i := bits.Len64(uint64(d-1)) - firstShift // 2^(k-1) < d <= 2^k gives k - firstShift
	return min(i, Buckets)
}

// UpperBound returns bucket i's upper bound.
func UpperBound(i int) time.Duration { return time.Duration(int64(1) << (firstShift + i)) }

// Observe adds one duration (negative ones count as 0).
func (h *Histogram) Observe(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[index(v)].Add(1)
	h.sum.Add(v)
	for {
		old := h.max.Load()
		if v <= old || h.max.CompareAndSwap(old, v) {
			return
		}
	}
}

// Snapshot is a histogram's state at one moment.
type Snapshot struct {
	// Counts[i] is the number of values in bucket i (not cumulative):
	// at most UpperBound(i) and more than UpperBound(i-1); Counts[Buckets]
	// holds the values above UpperBound(Buckets-1).
	Counts [Buckets + 1]uint64
	Count  uint64
	Sum    time.Duration
	Max    time.Duration // the largest value observed
}

// Snapshot reads the histogram. Values observed meanwhile may be counted
// in Sum and not yet in Counts, or the other way round.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	s.Max = time.Duration(h.max.Load())
	return s
}

// Cumulative returns the Prometheus form of s: for each finite bucket's
// upper bound in seconds, the number of values at most that bound.
func (s *Snapshot) Cumulative() map[float64]uint64 {
	m := make(map[float64]uint64, Buckets)
	var n uint64
	for i := range Buckets {
		n += s.Counts[i]
		m[UpperBound(i).Seconds()] = n
	}
	return m
}
