package journal_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// TestTinyMaxPending: with MaxPending below a segment header, appends
// (synced and not, from several goroutines, across rotations that add a
// seal and a header with no append of their own) still complete, and
// everything loads again. The bytes of a segment header or a seal used to
// count as pending with no waiter to make the flusher take them, so the
// first Append of a fresh journal waited for ever.
func TestTinyMaxPending(t *testing.T) {
	for _, kind := range aio.Kinds() {
		t.Run(kind.String(), func(t *testing.T) {
			dir := t.TempDir()
			open := func() *journal.FileJournal {
				j, err := journal.Open(journal.Options{Dir: dir, FS: aio.OS(kind, aio.DefaultOptions()),
					SegmentSize: 64 << 10, MaxPending: 1, Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				return j
			}
			j := open()
			if _, err := j.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			const writers, each = 4, 60
			data := make([]byte, 1500) // 60 per writer: several rotations
			var wg sync.WaitGroup
			errs := make(chan error, writers*each)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						id := uint64(w*each + i + 1)
						wg.Add(1)
						err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: id, Type: 1, Data: data}}, i%2 == 0,
							func(err error) {
								if err != nil {
									errs <- err
								}
								wg.Done()
							})
						if err != nil {
							wg.Done()
							errs <- err
							return
						}
					}
				}()
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			select {
			case <-finished:
			case <-time.After(30 * time.Second):
				t.Fatal("appends with MaxPending 1 still waiting after 30s")
			}
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if j.Stats().Rotations == 0 {
				t.Fatal("no rotation: the test does not cover seal and header bytes")
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			j = open()
			defer j.Close()
			res, err := j.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) != writers*each {
				t.Fatalf("loaded %d records, want %d", len(res.Records), writers*each)
			}
		})
	}
}
