package journal_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// TestCallbackAppendsPastMaxPending: a done callback (run inline by the
// flusher when its batch is small) appends beyond MaxPending; it must not
// wait for the flusher it is running on.
func TestCallbackAppendsPastMaxPending(t *testing.T) {
	for _, kind := range aio.Kinds() {
		t.Run(kind.String(), func(t *testing.T) {
			j, err := journal.Open(journal.Options{Dir: t.TempDir(), FS: aio.OS(kind, aio.DefaultOptions()),
				SegmentSize: 256 << 10, MaxPending: 8 << 10, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if _, err := j.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			err = j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 1, Type: 1, Data: []byte("a")}}, true, func(error) {
				for id := uint64(2); id <= 4; id++ { // the third finds pendingBytes > MaxPending
					if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: id, Type: 1, Data: make([]byte, 5000)}}, false, nil); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a callback appending past MaxPending is still blocked after 10s")
			}
		})
	}
}
