package lathist

import (
	"sync"
	"testing"
	"time"
)

// Each value lands in the first bucket whose upper bound holds it.
func TestBuckets(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-5, 0}, {0, 0}, {1, 0}, {UpperBound(0), 0}, {UpperBound(0) + 1, 1},
		{100 * time.Microsecond, 3}, // 65.5 us < 100 us <= 131 us
		{time.Millisecond, 6},       // 524 us < 1 ms <= 1.05 ms
		{40 * time.Millisecond, 12}, // 33.6 ms < 40 ms <= 67.1 ms
		{UpperBound(Buckets - 1), Buckets - 1}, {UpperBound(Buckets-1) + 1, Buckets}, {time.Hour, Buckets},
	} {
		var h Histogram
		h.Observe(tc.d)
		s := h.Snapshot()
		if s.Counts[tc.want] != 1 || s.Count != 1 {
			t.Errorf("%v: counts %v, want bucket %d", tc.d, s.Counts, tc.want)
		}
		if tc.want < Buckets && tc.d > UpperBound(tc.want) {
			t.Errorf("%v above its bucket's bound %v", tc.d, UpperBound(tc.want))
		}
		if tc.want > 0 && tc.d <= UpperBound(tc.want-1) {
			t.Errorf("%v fits the bucket below %d", tc.d, tc.want)
		}
	}
}

// Concurrent observers lose nothing; the cumulative form counts every
// value at or below each bound, and Sum and Max are exact.
func TestSnapshot(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Observe(time.Duration(g*1000+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count != 4000 || s.Max != 3999*time.Microsecond {
		t.Fatalf("count %d max %v", s.Count, s.Max)
	}
	var sum time.Duration
	for i := range 4000 {
		sum += time.Duration(i) * time.Microsecond
	}
	if s.Sum != sum {
		t.Fatalf("sum %v, want %v", s.Sum, sum)
	}
	cum := s.Cumulative()
	for i := range Buckets {
		b := UpperBound(i)
		want := uint64(0)
		for v := range 4000 {
			if time.Duration(v)*time.Microsecond <= b {
				want++
			}
		}
		if cum[b.Seconds()] != want {
			t.Errorf("bucket <= %v: %d, want %d", b, cum[b.Seconds()], want)
		}
	}
}
