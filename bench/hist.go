package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram geometry: values below linearMax get a bucket each; above,
// every power of two is split into subBuckets buckets, so a bucket is at
// most 1/subBuckets (about 3%) of its values wide. The midpoint reported
// for a bucket is within 1.6% of every value in it.
const (
	subBits    = 5
	subBuckets = 1 << subBits   // 32 buckets per power of two
	linearMax  = 2 * subBuckets // values 0..63 are exact
	numBuckets = linearMax + (64-(subBits+1))*subBuckets
)

// Histogram records durations in a log-linear (HDR-like) layout: fixed
// memory (about 15 KiB), no allocation per value, and safe for concurrent
// Record calls (one atomic add per value). The zero value is ready to use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

// bucketOf returns the bucket index of v (nanoseconds, >= 0).
func bucketOf(v uint64) int {
	if v < linearMax {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1)), e >= subBits+1
	s := e - subBits       // keep the top subBits+1 bits
	m := v >> uint(s)      // in [subBuckets, 2*subBuckets)
	return linearMax + (e-subBits-1)*subBuckets + int(m-subBuckets)
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < linearMax {
		return uint64(i), 1
	}
	i -= linearMax
	e := i/subBuckets + subBits + 1
	m := uint64(i%subBuckets + subBuckets)
	s := uint(e - subBits)
	return m << s, 1 << s
}

// Record adds one duration. Negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))].Add(1)
	h.total.Add(1)
	for {
		old := h.max.Load()
		if v <= old || h.max.CompareAndSwap(old, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Merge adds o's values to h. o should not be recorded into meanwhile.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n != 0 {
			h.counts[i].Add(n)
		}
	}
	h.total.Add(o.total.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// Quantile returns the value at quantile q (0 < q <= 1): the midpoint of
// the bucket holding the ceil(q*count)-th smallest value, capped at the
// largest recorded value. It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, w := bucketRange(i)
			v := time.Duration(lo + w/2)
			if w == 1 {
				v = time.Duration(lo)
			}
			return min(v, h.Max())
		}
	}
	return h.Max()
}

// Reset empties h. It should not be recorded into meanwhile.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.total.Store(0)
	h.max.Store(0)
}
