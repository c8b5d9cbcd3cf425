package aio

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReviewPipelinedStickyErrors drives every backend the way the
// journal's flusher does with several batches in flight (one submitting
// goroutine, synced and unsynced Submits, several fdatasyncs running at
// once) on the fault-injecting FUSE file system, and turns fdatasync or
// write failures on in the middle of the stream. Whatever the interleaving,
// every done runs exactly once, in submission order, and once one request
// has failed no later one succeeds; after the failure nothing more reaches
// the file system. (An earlier request may fail too: its fdatasync can run
// after the fault is turned on.)
func TestReviewPipelinedStickyErrors(t *testing.T) {
	mnt, flt := mountFaultFS(t)
	cases := []struct {
		name   string
		inject func(on bool)
	}{
		{"fdatasync fails", flt.failFsync},
		{"write fails", flt.failWrites},
	}
	forEachBackend(t, func(t *testing.T, kind Kind) {
		for i, tc := range cases {
			for _, at := range []int{1, 7, 40} {
				t.Run(fmt.Sprintf("%s/at%d", tc.name, at), func(t *testing.T) {
					defer flt.failWrites(false)
					defer flt.failFsync(false)
					opts := DefaultOptions()
					opts.MaxSyncs = 4
					opts.MaxIO = 16
					fsys := OS(kind, opts)
					name := filepath.Join(mnt, fmt.Sprintf("%s-%d-%d", kind, i, at))
					pf, err := fsys.Create(name)
					if err != nil {
						t.Fatal(err)
					}
					pf.Close()
					f, err := fsys.OpenAppend(name)
					if errors.Is(err, ErrDirectUnsupported) {
						t.Skipf("FUSE refuses O_DIRECT here: %v", err)
					}
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					const n = 120
					var (
						mu      sync.Mutex
						order   []int
						errs    = make([]error, n)
						calls   = make([]int, n)
						wg      sync.WaitGroup
						bufSize = max(4096, f.Alignment())
					)
					bufs := make([][]byte, n)
					for k := range n {
						if k == at {
							tc.inject(true)
						}
						bufs[k] = pattern(bufSize, f.Alignment(), byte(k))
						wg.Add(1)
						f.Submit(bufs[k], int64(k*bufSize), k%3 != 1, func(err error) {
							mu.Lock()
							order = append(order, k)
							errs[k] = err
							calls[k]++
							mu.Unlock()
							wg.Done()
						})
					}
					wg.Wait()
					tc.inject(false)
					for k := range n {
						if calls[k] != 1 {
							t.Fatalf("done of request %d called %d times", k, calls[k])
						}
						if order[k] != k {
							t.Fatalf("completion %d delivered as number %d", order[k], k)
						}
					}
					first := -1
					for k := range n {
						switch {
						case errs[k] != nil && first < 0:
							first = k
						case errs[k] == nil && first >= 0:
							t.Fatalf("request %d succeeded after request %d failed with %v", k, first, errs[first])
						}
					}
					if first < 0 {
						t.Fatal("no request failed")
					}
					if !errors.Is(errs[n-1], unix.EIO) {
						t.Fatalf("last request: %v, want the sticky EIO", errs[n-1])
					}
					before := flt.fsyncs()
					if err := submitWait(t, f, bufs[0], 0, true); !errors.Is(err, unix.EIO) {
						t.Fatalf("Submit after the failure: %v, want the sticky EIO", err)
					}
					if ss, ok := f.(SyncSubmitter); ok {
						ch := make(chan error, 1)
						ss.SubmitSync(bufs[0], 0, true, func(err error) { ch <- err })
						if err := <-ch; !errors.Is(err, unix.EIO) {
							t.Fatalf("SubmitSync after the failure: %v, want the sticky EIO", err)
						}
					}
					if d := flt.fsyncs() - before; d != 0 {
						t.Fatalf("%d fsyncs reached the file system after the failure", d)
					}
				})
			}
		}
	})
}
