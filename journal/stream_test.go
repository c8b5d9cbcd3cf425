package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

// TestStreamEquivalence: an in-process subscriber writes every batch into
// a second directory; after the primary closes, both load to the same
// state. The subscriber attaches after the primary has written (it
// catches up from the segments), and the workload reclaims segments.
func TestStreamEquivalence(t *testing.T) {
	for _, kind := range []aio.Kind{aio.NIO, aio.Direct} {
		t.Run(kind.String(), func(t *testing.T) {
			fs := aio.OS(kind, aio.DefaultOptions())
			primary, backup := t.TempDir(), t.TempDir()
			nm := journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}
			j, err := journal.Open(journal.Options{Dir: primary, FS: fs, SegmentSize: 64 << 10, Logger: quiet, Epoch: 4})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := j.Load(ctx); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			write := func(from, to int) {
				for i := from; i < to; i++ {
					entries := []journal.Entry{{Kind: journal.KindAdd, ID: uint64(i), Type: 1, Data: bytes.Repeat([]byte{byte(i)}, rng.IntN(2000))}}
					if i%3 == 0 {
						entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: uint64(i), Data: []byte("u")})
					}
					if i > 50 && i%5 != 0 {
						entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: uint64(i - 50)})
					}
					if err := j.Append(entries, i%4 == 0, nil); err != nil {
						t.Fatal(err)
					}
				}
				if err := journal.AppendSync(ctx, j); err != nil {
					t.Fatal(err)
				}
			}
			write(1, 100)
			sub, err := j.Subscribe(journal.Position{})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				last := journal.Position{}
				for {
					b, err := sub.Next(ctx)
					if errors.Is(err, journal.ErrClosed) {
						done <- nil
						return
					}
					if err != nil {
						done <- err
						return
					}
					if b.Epoch != 4 {
						done <- fmt.Errorf("batch at %v has epoch %d", b.Pos, b.Epoch)
						return
					}
					if last.Seq != 0 && b.Pos != last && !(b.Pos.Seq == last.Seq+1 && b.Pos.Offset == 0) {
						done <- fmt.Errorf("batch at %v does not follow %v", b.Pos, last)
						return
					}
					last = b.End()
					if b.Sealed {
						last = journal.Position{Seq: b.Pos.Seq + 1}
					}
					if err := journal.ApplyBatch(fs, backup, nm, b); err != nil {
						done <- err
						return
					}
				}
			}()
			write(100, 1500)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			sub.Close()
			a := loadDir(t, primary)
			b := loadDir(t, backup)
			if len(a.Records) == 0 || len(a.Records) != len(b.Records) {
				t.Fatalf("primary %d records, backup %d", len(a.Records), len(b.Records))
			}
			for i := range a.Records {
				ra, rb := a.Records[i], b.Records[i]
				if ra.ID != rb.ID || !bytes.Equal(ra.Data, rb.Data) || len(ra.Updates) != len(rb.Updates) {
					t.Fatalf("record %d differs: %d/%d", i, ra.ID, rb.ID)
				}
			}
			if a.Epoch != b.Epoch || a.MaxID != b.MaxID {
				t.Fatalf("epoch %d/%d maxID %d/%d", a.Epoch, b.Epoch, a.MaxID, b.MaxID)
			}
		})
	}
}

func loadDir(t *testing.T, dir string) *journal.LoadResult {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, err := j.Load(context.Background())
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return res
}

// TestStreamPinsAndResync: a subscriber keeps its segments from reclaim;
// a position in a reclaimed segment asks for a resync.
func TestStreamPinsAndResync(t *testing.T) {
	dir := t.TempDir()
	j, _ := journal.Open(journal.Options{Dir: dir, SegmentSize: 64 << 10, Logger: quiet})
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sub, err := j.Subscribe(journal.Position{})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1000)
	for i := uint64(1); i < 500; i++ {
		journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: i, Data: data}, journal.Entry{Kind: journal.KindDelete, ID: i})
	}
	if m := j.Metrics(); m.Reclaimed != 0 || m.Subscribers != 1 || m.MaxStreamLag == 0 {
		t.Fatalf("with an idle subscriber: reclaimed %d, subscribers %d, lag %d", m.Reclaimed, m.Subscribers, m.MaxStreamLag)
	}
	sub.Close()
	journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: 1000})
	if m := waitReclaimed(j, 5); m.Reclaimed < 5 {
		t.Fatalf("after the subscriber left: reclaimed %d", m.Reclaimed)
	}
	if _, err := j.Subscribe(journal.Position{Seq: 1}); !errors.Is(err, journal.ErrResyncNeeded) {
		t.Fatalf("subscribe in a reclaimed segment: %v, want ErrResyncNeeded", err)
	}
}
