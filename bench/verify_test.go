package bench

import (
	"strings"
	"testing"
)

func TestSplitID(t *testing.T) {
	tests := []struct {
		id     string
		prefix string
		seq    uint64
		ok     bool
	}{
		{"run.1-5", "run.1", 5, true},
		{"a-b-17", "a-b", 17, true},
		{"P-1", "P", 1, true},
		{"P-0", "", 0, false},
		{"P-", "", 0, false},
		{"-5", "", 0, false},
		{"12345", "", 0, false},
		{"P-x1", "", 0, false},
		{"", "", 0, false},
	}
	for _, tc := range tests {
		p, s, ok := SplitID(tc.id)
		if p != tc.prefix || s != tc.seq || ok != tc.ok {
			t.Errorf("SplitID(%q) = %q, %d, %v; want %q, %d, %v", tc.id, p, s, ok, tc.prefix, tc.seq, tc.ok)
		}
	}
}

func TestChecker(t *testing.T) {
	type stream struct {
		prefix string
		n      int
		acked  []uint64
	}
	tests := []struct {
		name     string
		closed   bool
		streams  []stream
		consumed []string
		want     Report
		outcomes []Outcome // of each consumed ID, when given
	}{
		{
			name: "exactly once", closed: true,
			streams:  []stream{{"r.1", 3, []uint64{1, 2, 3}}, {"r.2", 2, []uint64{1, 2}}},
			consumed: []string{"r.2-1", "r.1-1", "r.1-3", "r.1-2", "r.2-2"},
			want:     Report{Acked: 5, Consumed: 5, Unique: 5},
		},
		{
			name: "one lost", closed: true,
			streams:  []stream{{"r.1", 3, []uint64{1, 2, 3}}},
			consumed: []string{"r.1-1", "r.1-3"},
			want:     Report{Acked: 3, Consumed: 2, Unique: 2, Lost: 1},
		},
		{
			name: "one duplicated", closed: true,
			streams:  []stream{{"r.1", 2, []uint64{1, 2}}},
			consumed: []string{"r.1-1", "r.1-2", "r.1-1"},
			want:     Report{Acked: 2, Consumed: 3, Unique: 2, Duplicated: 1},
			outcomes: []Outcome{First, First, Duplicate},
		},
		{
			name: "lost and duplicated", closed: true,
			streams:  []stream{{"r.1", 4, []uint64{1, 2, 3, 4}}},
			consumed: []string{"r.1-1", "r.1-1", "r.1-1", "r.1-4"},
			want:     Report{Acked: 4, Consumed: 4, Unique: 2, Duplicated: 2, Lost: 2},
		},
		{
			name: "foreign messages", closed: true,
			streams:  []stream{{"r.1", 1, []uint64{1}}},
			consumed: []string{"other-1", "r.1-2", "garbage", "r.1-1"},
			want:     Report{Acked: 1, Consumed: 1, Unique: 1, Foreign: 3},
			outcomes: []Outcome{Foreign, Foreign, Foreign, First},
		},
		{
			name: "consumed but send not acknowledged", closed: true,
			streams:  []stream{{"r.1", 2, []uint64{1}}},
			consumed: []string{"r.1-1", "r.1-2"},
			want:     Report{Acked: 1, Consumed: 2, Unique: 2, Unacked: 1},
		},
		{
			name: "acked twice counts once", closed: true,
			streams:  []stream{{"r.1", 2, []uint64{1, 1, 2, 9}}},
			consumed: []string{"r.1-1", "r.1-2"},
			want:     Report{Acked: 2, Consumed: 2, Unique: 2},
		},
		{
			name: "open: tracks what it sees, lost unknown", closed: false,
			consumed: []string{"a-1", "a-2", "b-100000", "a-2", "x"},
			want:     Report{Consumed: 4, Unique: 3, Duplicated: 1, Foreign: 1, Lost: -1},
			outcomes: []Outcome{First, First, First, Duplicate, Foreign},
		},
		{
			name: "bitmap word boundaries", closed: true,
			streams:  []stream{{"w", 130, []uint64{1, 63, 64, 65, 128, 129, 130}}},
			consumed: []string{"w-1", "w-63", "w-64", "w-65", "w-128", "w-129"},
			want:     Report{Acked: 7, Consumed: 6, Unique: 6, Lost: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChecker(tc.closed)
			for _, s := range tc.streams {
				st := c.Register(s.prefix, s.n)
				for _, seq := range s.acked {
					st.Acked(seq)
				}
			}
			for i, id := range tc.consumed {
				out := c.Consumed(id)
				if tc.outcomes != nil && out != tc.outcomes[i] {
					t.Errorf("Consumed(%q) = %v, want %v", id, out, tc.outcomes[i])
				}
			}
			if got := c.Report(); got != tc.want {
				t.Fatalf("Report = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func BenchmarkCheckerConsumed(b *testing.B) {
	c := NewChecker(true)
	const n = 1 << 20
	st := c.Register("run.1", n)
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = st.ID(uint64(i + 1))
	}
	for i := 0; b.Loop(); i++ {
		c.Consumed(ids[i%len(ids)])
	}
}

// FuzzSplitID: SplitID never panics, and what it accepts is PREFIX-SEQ
// with SEQ > 0; a Checker takes any ID without panicking.
func FuzzSplitID(f *testing.F) {
	for _, s := range []string{"run.1-5", "a-b-17", "P-0", "-5", "P-", "x-18446744073709551615", "x-4294967297", "x-134217728", "x-134217729"} {
		f.Add(s)
	}
	open, closed := NewChecker(false), NewChecker(true)
	closed.Register("run.1", 10)
	f.Fuzz(func(t *testing.T, id string) {
		p, seq, ok := SplitID(id)
		if ok && (p == "" || seq == 0 || !strings.HasPrefix(id, p+"-")) {
			t.Fatalf("SplitID(%q) = %q, %d", id, p, seq)
		}
		for _, c := range []*Checker{open, closed} {
			out := c.Consumed(id)
			if !ok && out != Foreign {
				t.Fatalf("unparsable %q counted as %v", id, out)
			}
		}
	})
}
