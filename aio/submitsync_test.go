package aio

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSubmitSync mixes Submit and SubmitSync: SubmitSync must deliver after
// everything submitted before it, and the data must all land.
func TestSubmitSync(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind Kind) {
		opts := DefaultOptions()
		opts.MaxIO = 16
		_, f := newFile(t, kind, opts, 4<<20)
		ss, ok := f.(SyncSubmitter)
		if !ok {
			t.Fatalf("%T does not implement SyncSubmitter", f)
		}
		const n = 200
		order := make(chan int, n)
		bufs := make([][]byte, n)
		for i := 0; i < n; i++ {
			bufs[i] = pattern(8192, f.Alignment(), byte(i))
			cb := func(err error) {
				if err != nil {
					t.Errorf("write %d: %v", i, err)
				}
				order <- i
			}
			if i%10 == 9 {
				ss.SubmitSync(bufs[i], int64(i)*8192, true, cb)
				if len(order) != i+1 {
					t.Fatalf("SubmitSync %d returned with %d completions delivered", i, len(order))
				}
			} else {
				f.Submit(bufs[i], int64(i)*8192, i%2 == 0, cb)
			}
		}
		for want := 0; want < n; want++ {
			if got := <-order; got != want {
				t.Fatalf("completion %d delivered as number %d", got, want)
			}
		}
		for i, p := range bufs {
			mustEqual(t, "write", readBack(t, f, int64(i)*8192, len(p)), p)
		}
	})
}

// TestSubmitSyncSticky: an error on either path fails the other.
func TestSubmitSyncSticky(t *testing.T) {
	const limit = 64 << 10
	forEachBackend(t, func(t *testing.T, kind Kind) {
		_, f := newFile(t, kind, DefaultOptions(), 0)
		ss := f.(SyncSubmitter)
		p := pattern(4096, f.Alignment(), 1)
		withFileSizeLimit(t, limit, func() {
			var got error
			ss.SubmitSync(p, limit, true, func(err error) { got = err })
			if !errors.Is(got, unix.EFBIG) {
				t.Fatalf("SubmitSync beyond the limit: got %v, want EFBIG", got)
			}
		})
		if err := submitWait(t, f, p, 0, true); !errors.Is(err, unix.EFBIG) {
			t.Fatalf("Submit after a failed SubmitSync: got %v, want the sticky EFBIG", err)
		}
	})
}
