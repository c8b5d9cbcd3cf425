package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/wire"
)

// Scale-down (issue 19) meets paging (issue 18): what does not move is
// refused before anything is taken, what moves keeps its expiration and
// its memory is counted on both sides, and sends held by BLOCK do not slip
// in after the export.

// A broker whose queues hold paged messages refuses to export: its
// messages stay in its queues and journals (before, only the messages in
// memory were exported: the paged ones were left behind on a broker that
// then stopped as scaled down).
func TestScaleDownRefusesPagedMessages(t *testing.T) {
	const limit, n, size = 16 << 10, 200, 500
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(limit, config.FullPage)}, 64<<10)
	ss := b.s.NewSession(false)
	sendN(t, ss, queueDest("q"), 0, n, size)
	if qi, _ := b.s.Queue("q"); qi.Paged == 0 {
		t.Fatal("nothing paged")
	}
	if err := b.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp, err := b.s.ExportMessages()
	if !errors.Is(err, ErrNotExportable) {
		t.Fatalf("export of a broker holding paged messages: %d messages, %v; want ErrNotExportable", len(exp), err)
	}
	b.s.RestoreExported()
	if qi, _ := b.s.Queue("q"); qi.Depth != n {
		t.Fatalf("depth %d after a refused export, want %d", qi.Depth, n)
	}
	b.s.Release(nil)
}

// Moved messages keep their expiration and count against memory on the
// target (before, the import charged nothing, so their acks took the
// target's memory count below zero), and the source's count drops as it
// acks them.
func TestScaleDownMemoryAndExpiration(t *testing.T) {
	src := newBroker(t, Options{})
	dst := newBroker(t, Options{})
	ss := src.s.NewSession(false)
	exp := time.Now().Add(time.Hour).UnixNano()
	for i := range 3 {
		mustSend(t, ss, queueDest("q"), &Message{Durable: true, Expiration: exp, Body: body(i, 100)})
	}
	before := src.s.mem.Load()
	if before <= 0 {
		t.Fatal("the source counts no memory for its messages")
	}
	moved := exportAll(t, src.s)
	res, err := dst.s.importMessages(context.Background(), clusterSource{node: src.s.NodeID(), stream: "scale-down", epoch: 1},
		&wire.ClusterMessages{Epoch: 1, Messages: moved})
	if err != nil || res.stored != 3 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	if m := dst.s.mem.Load(); m != before {
		t.Fatalf("target memory %d after importing what took %d on the source", m, before)
	}
	ids := []uint64{moved[0].ID, moved[1].ID, moved[2].ID}
	if err := src.s.AckExported(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if m := src.s.mem.Load(); m != 0 {
		t.Fatalf("source memory %d after acking everything it moved", m)
	}
	ds := dst.s.NewSession(false)
	col := newCollector()
	if _, err := ds.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle); err != nil {
		t.Fatal(err)
	}
	for _, d := range col.wait(t, 3) {
		if d.Message.Expiration != exp {
			t.Fatalf("moved message expiration %d, want %d", d.Message.Expiration, exp)
		}
		if err := ackSync(t, ds, d); err != nil {
			t.Fatal(err)
		}
	}
	if m := dst.s.mem.Load(); m != 0 {
		t.Fatalf("target memory %d after acking every moved message", m)
	}
}

// Freeze fails the sends address-full-policy BLOCK holds (neither stored
// nor answered: the client resends them to the target) instead of letting
// them in once the export frees memory, after the export (before, they
// stayed held through the freeze).
func TestFreezeFailsBlockedSends(t *testing.T) {
	const limit, size = 8 << 10, 1000
	b := newBroker(t, Options{AddressSettings: pagingSettings(limit, config.FullBlock)})
	ss := b.s.NewSession(false)
	var ok, frozen atomic.Int32
	done := make(chan struct{}, 30)
	for i := range 30 {
		ss.Send(context.Background(), queueDest("q"), &Message{Durable: true, Body: body(i, size)}, func(err error) {
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrFrozen) && codeOf(err) == wire.CodeUnavailable:
				frozen.Add(1)
			default:
				t.Errorf("send %d: %v", i, err)
			}
			done <- struct{}{}
		})
	}
	a := b.s.lookupAddress("q")
	waitFor(t, "no send held", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.parked) > 0 && int(ok.Load())+len(a.parked) == 30
	})
	if err := b.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d stored, %d failed, of 30: a held send outlived the freeze", ok.Load(), frozen.Load())
		}
	}
	moved := exportAll(t, b.s)
	if len(moved) != int(ok.Load()) || frozen.Load() == 0 {
		t.Fatalf("exported %d, %d stored, %d failed as frozen", len(moved), ok.Load(), frozen.Load())
	}
	b.s.Release(nil)
}
