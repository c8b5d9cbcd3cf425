package aio

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPwriteDeliveryOrder drives the pwrite backend's completion queue
// directly: requests finishing out of order (as concurrent fdatasyncs do)
// are delivered in submission order, and once one fails every later one is
// delivered failed, even if its own fdatasync succeeded (it may have run
// before the failed one's pages were lost), and so are later Submits.
func TestPwriteDeliveryOrder(t *testing.T) {
	for _, kind := range []Kind{NIO, Direct} {
		t.Run(kind.String(), func(t *testing.T) {
			fsys := OS(kind, DefaultOptions())
			name := filepath.Join(testDir(t), "seg")
			pf, err := fsys.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			pf.Close()
			af, err := fsys.OpenAppend(name)
			if err != nil {
				t.Fatal(err)
			}
			f := af.(*pwriteFile)
			defer f.Close()

			var got []int
			errs := map[int]error{}
			enter := func(i int) uint64 {
				f.mu.Lock()
				defer f.mu.Unlock()
				seq, err := f.enter(func(err error) { got = append(got, i); errs[i] = err })
				if err != nil {
					t.Fatalf("enter %d: %v", i, err)
				}
				return seq
			}
			s0, s1, s2, s3 := enter(0), enter(1), enter(2), enter(3)
			eio := errors.New("fdatasync: EIO")
			f.finish(s2, nil) // finished first: held back behind 0 and 1
			f.finish(s1, nil)
			if len(got) != 0 {
				t.Fatalf("delivered %v before request 0 finished", got)
			}
			f.finish(s0, nil)
			if want := []int{0, 1, 2}; !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
			s4 := enter(4)
			f.finish(s4, nil) // its sync succeeded, but 3 is ahead of it
			f.finish(s3, eio)
			if want := []int{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
			if errs[0] != nil || errs[1] != nil || errs[2] != nil {
				t.Fatalf("requests ahead of the failure failed: %v", errs)
			}
			if !errors.Is(errs[3], eio) || !errors.Is(errs[4], eio) {
				t.Fatalf("failure not delivered to 3 and the later 4: %v, %v", errs[3], errs[4])
			}
			// The error is sticky for new Submits, which touch nothing.
			var later error
			f.Submit(pattern(4096, f.Alignment(), 1), 0, true, func(err error) { later = err })
			if !errors.Is(later, eio) {
				t.Fatalf("Submit after the failure: got %v, want the sticky error", later)
			}
			var st unix.Stat_t
			if err := unix.Stat(name, &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != 0 {
				t.Fatalf("a Submit after the failure wrote: file size %d", st.Size)
			}
		})
	}
}
