package journal_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tandemmq/tandem/journal"
)

// TestSyncBarrierMakesEarlierDurable: an empty append with sync is a
// barrier, and the next synced append makes earlier sync=false appends
// durable (the Journal contract). A crash right after the barrier's done
// must keep every earlier append, whatever unsynced sectors it loses.
func TestSyncBarrierMakesEarlierDurable(t *testing.T) {
	for _, cfg := range crashCfgs {
		t.Run(cfg.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 16; seed++ {
				fs := cfg.fs()
				j := openInFlight(t, fs, "/j", cfg.inflight)
				ctx := context.Background()
				if _, err := j.Load(ctx); err != nil {
					t.Fatal(err)
				}
				// A synced append first, so the flusher is idle and the
				// unsynced one is written alone.
				if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 1, Data: []byte("synced")}); err != nil {
					t.Fatal(err)
				}
				const n = 5
				for i := range n {
					done := make(chan error, 1)
					data := fmt.Appendf(nil, "unsynced-%d-%0600d", i, i)
					if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: uint64(2 + i), Data: data}}, false, func(err error) { done <- err }); err != nil {
						t.Fatal(err)
					}
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				}
				if err := journal.AppendSync(ctx, j); err != nil {
					t.Fatal(err)
				}
				crashed := fs.Crash(seed)
				j.Close()
				j2 := openOn(t, crashed, "/j")
				res, err := j2.Load(ctx)
				if err != nil {
					t.Fatalf("seed %d: load after crash: %v", seed, err)
				}
				if len(res.Records) != 1+n {
					t.Fatalf("seed %d: %d records after a crash that followed a synced barrier, want %d", seed, len(res.Records), 1+n)
				}
				j2.Close()
			}
		})
	}
}
