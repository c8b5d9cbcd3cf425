package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// TestTapThenSubscriptionEquivalence: a replica reads the segments with a
// Subscription up to a tap's start, then takes the tap's ranges (before
// they are durable); written at their positions they make a copy that
// loads to the primary's state, for every backend (O_DIRECT pads each
// flush: the padding must come through too) and across rotations.
func TestTapThenSubscriptionEquivalence(t *testing.T) {
	for _, kind := range []aio.Kind{aio.NIO, aio.Direct, aio.IOUring} {
		t.Run(kind.String(), func(t *testing.T) {
			fs := aio.OS(kind, aio.DefaultOptions())
			primary, backup := t.TempDir(), t.TempDir()
			nm := journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}
			j, err := journal.Open(journal.Options{Dir: primary, FS: fs, SegmentSize: 64 << 10, Logger: quiet, Epoch: 2})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := j.Load(ctx); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			write := func(from, to int) {
				for i := from; i < to; i++ {
					entries := []journal.Entry{{Kind: journal.KindAdd, ID: uint64(i), Type: 1, Data: bytes.Repeat([]byte{byte(i)}, rng.IntN(1500))}}
					if i > 40 && i%3 != 0 {
						entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: uint64(i - 40)})
					}
					if err := j.Append(entries, i%3 == 0, nil); err != nil {
						t.Fatal(err)
					}
				}
				if err := journal.AppendSync(ctx, j); err != nil {
					t.Fatal(err)
				}
			}
			write(1, 120)
			sub, err := j.SubscribeReplica(journal.Position{})
			if err != nil {
				t.Fatal(err)
			}
			write(120, 200) // some of it before the tap: the subscription must bring it
			tap := j.AttachTap(64 << 20)
			if tap == nil {
				t.Fatal("AttachTap returned nil")
			}
			if j.AttachTap(1) != nil {
				t.Fatal("a second tap was attached")
			}
			start := tap.Position()
			apply := func(b journal.StreamBatch) {
				t.Helper()
				if err := journal.ApplyBatch(fs, backup, nm, b); err != nil {
					t.Fatal(err)
				}
			}
			// Catch up from the segments to the tap's start.
			for sub.Position() != start {
				if start.Less(sub.Position()) {
					t.Fatalf("subscription at %v passed the tap's start %v", sub.Position(), start)
				}
				b, err := sub.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				apply(b)
			}
			sub.Close()
			done := make(chan error, 1)
			go func() {
				for {
					b, err := tap.Next(ctx)
					if err != nil {
						done <- err
						return
					}
					apply(b)
				}
			}()
			write(200, 600) // several rotations
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, journal.ErrClosed) {
				t.Fatalf("tap ended with %v, want ErrClosed after the journal closed", err)
			}
			want := loadState(t, primary)
			got := loadState(t, backup)
			if want != got {
				t.Fatalf("copy made from the subscription and the tap differs:\nprimary %s\nbackup  %s", want, got)
			}
		})
	}
}

// loadState loads a journal directory and summarises its live records.
func loadState(t *testing.T, dir string) string {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: dir, FS: aio.OS(aio.NIO, aio.DefaultOptions()), SegmentSize: 64 << 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, err := j.Load(context.Background())
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	var b bytes.Buffer
	for _, r := range res.Records {
		fmt.Fprintf(&b, "%d:%d ", r.ID, len(r.Data))
	}
	return fmt.Sprintf("%d records, max id %d: %s", len(res.Records), res.MaxID, b.String())
}

// TestTapOverflow: a consumer that does not take the tap's ranges loses
// it once more than the limit is queued, and the tap keeps the segments
// from its position (reclaim waits) until it is closed.
func TestTapOverflow(t *testing.T) {
	j, err := journal.Open(journal.Options{Dir: t.TempDir(), FS: aio.OS(aio.NIO, aio.DefaultOptions()), SegmentSize: 64 << 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	tap := j.AttachTap(16 << 10)
	for i := 1; i <= 100; i++ {
		if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: uint64(i), Type: 1, Data: make([]byte, 1000)},
			journal.Entry{Kind: journal.KindDelete, ID: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if oldest := j.Oldest(); oldest != tap.Position().Seq {
		t.Fatalf("oldest segment %d: reclaim went past the tap consumer's segment %d", oldest, tap.Position().Seq)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := tap.Next(cctx); !errors.Is(err, journal.ErrTapOverflow) {
		t.Fatalf("Next after 100 KB queued with a 16 KiB limit: %v, want ErrTapOverflow", err)
	}
	tap.Close()
	if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 1000, Type: 1}); err != nil {
		t.Fatal(err)
	}
	if j.Oldest() == 1 {
		t.Fatal("reclaim still held back after the tap closed")
	}
}
