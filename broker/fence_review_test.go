package broker

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tandemmq/tandem/aio"
)

// TestReviewFencedSubmitKeepsOrder: aio.File calls done "exactly once, in
// submission order", and the journal relies on it (its batches complete
// in order). Since the pwrite backends complete a synced Submit from a
// goroutine (887936e), earlier requests can still be pending when a fenced
// Submit is refused; the refusal must not be delivered ahead of them.
func TestReviewFencedSubmitKeepsOrder(t *testing.T) {
	for _, kind := range []aio.Kind{aio.NIO, aio.Direct, aio.IOUring} {
		t.Run(kind.String(), func(t *testing.T) {
			var may atomic.Bool
			may.Store(true)
			fs := &fencedFS{FS: aio.OS(kind, aio.DefaultOptions()), may: may.Load}
			name := filepath.Join(t.TempDir(), "seg")
			pf, err := fs.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pf.WriteAt(make([]byte, 1<<20), 0); err != nil {
				t.Fatal(err)
			}
			pf.Close()
			f, err := fs.OpenAppend(name)
			if err != nil {
				t.Skipf("open: %v", err)
			}
			defer f.Close()
			p := aio.AlignedBuffer(4096, f.Alignment())
			var (
				mu    sync.Mutex
				order []int
				wg    sync.WaitGroup
			)
			hold := make(chan struct{})
			var submitting0 atomic.Bool // a synchronous backend calls done inside Submit: never hold it there
			record := func(i int) func(error) {
				return func(err error) {
					if i == 2 && err == nil {
						t.Error("the fenced write completed without an error")
					}
					if i == 0 && !submitting0.Load() {
						<-hold // request 0's completion is slow to be handled
					}
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					wg.Done()
				}
			}
			wg.Add(3)
			submitting0.Store(true)
			f.Submit(p, 0, true, record(0)) // fdatasync on a goroutine; its done waits
			submitting0.Store(false)
			f.Submit(p, 4096, false, record(1)) // written, delivered after 0
			may.Store(false)                    // the lease is lost
			f.Submit(p, 8192, true, record(2))  // refused by the fence
			close(hold)
			wg.Wait()
			for i, got := range order {
				if got != i {
					t.Fatalf("completions delivered in the order %v, want [0 1 2]", order)
				}
			}
		})
	}
}
