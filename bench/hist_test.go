package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Every value falls in the bucket bucketOf names, and buckets tile the
// number line without gaps or overlaps.
func TestBucketLayout(t *testing.T) {
	var prevEnd uint64
	for i := range numBuckets {
		lo, w := bucketRange(i)
		if lo != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevEnd)
		}
		for _, v := range []uint64{lo, lo + w/2, lo + w - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		if lo >= linearMax && float64(w)/float64(lo) > 1.0/subBuckets+1e-12 {
			t.Fatalf("bucket %d [%d,+%d) wider than 1/%d", i, lo, w, subBuckets)
		}
		prevEnd = lo + w
		if prevEnd == 0 { // wrapped: the last bucket ends at 2^64
			if i != numBuckets-1 {
				t.Fatalf("bucket %d reaches 2^64 before the last", i)
			}
		}
	}
	if bucketOf(^uint64(0)) != numBuckets-1 {
		t.Fatalf("max value in bucket %d", bucketOf(^uint64(0)))
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one value", []time.Duration{7 * time.Microsecond}, 0.99, 7 * time.Microsecond},
		{"exact small", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{"p99 of 100", seq(1, 100, time.Microsecond), 0.99, 99 * time.Microsecond},
		{"p999 of 1000", seq(1, 1000, time.Microsecond), 0.999, 999 * time.Microsecond},
		{"p50 of 1000", seq(1, 1000, time.Microsecond), 0.5, 500 * time.Microsecond},
		{"capped at max", []time.Duration{1000, 1000, 1000}, 1, 1000},
		{"negative is zero", []time.Duration{-5}, 0.5, 0},
		{"outlier at p999", append(seq(1, 999, 0), time.Second), 0.999, 0},
		{"outlier at max", append(seq(1, 999, 0), time.Second), 1, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tc.values {
				h.Record(v)
			}
			got := h.Quantile(tc.q)
			if !within(got, tc.want, 1.0/(2*subBuckets)) {
				t.Fatalf("Quantile(%v) = %v, want %v (±1.6%%)", tc.q, got, tc.want)
			}
			if h.Count() != uint64(len(tc.values)) {
				t.Fatalf("Count = %d, want %d", h.Count(), len(tc.values))
			}
		})
	}
}

// Against an exact sort of random latencies, over merged histograms.
func TestHistogramRandomAndMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a, b, all Histogram
	var vals []time.Duration
	for i := range 100000 {
		v := time.Duration(rng.ExpFloat64() * float64(50*time.Microsecond))
		vals = append(vals, v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	all.Merge(&a)
	all.Merge(&b)
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := vals[int(q*float64(len(vals)))-1]
		if got := all.Quantile(q); !within(got, want, 1.0/(2*subBuckets)) {
			t.Errorf("q%v = %v, exact %v", q, got, want)
		}
	}
	if all.Count() != 100000 || all.Max() != vals[len(vals)-1] {
		t.Fatalf("count %d max %v", all.Count(), all.Max())
	}
}

func seq(from, to int, unit time.Duration) []time.Duration {
	var out []time.Duration
	for i := from; i <= to; i++ {
		out = append(out, time.Duration(i)*unit)
	}
	return out
}

func within(got, want time.Duration, rel float64) bool {
	d := float64(got - want)
	if d < 0 {
		d = -d
	}
	return d <= rel*float64(want)+0.5
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xfffff) * 37)
	}
}
