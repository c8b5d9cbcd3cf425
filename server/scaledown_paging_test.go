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

// A broker whose queues hold paged messages exports them too, read back
// into memory, in ID order with the ones in memory, and acking them on
// the source removes them for good (a restart finds nothing); the target
// stores every one. Before, the export was refused with ErrNotExportable
// and a scale-down left them all on the stopping broker.
func TestScaleDownMovesPagedMessages(t *testing.T) {
	const limit, n, size = 16 << 10, 200, 500
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(limit, config.FullPage)}, 64<<10)
	ss := b.s.NewSession(false)
	sendN(t, ss, queueDest("q"), 0, n, size)
	if qi, _ := b.s.Queue("q"); qi.Paged == 0 {
		t.Fatal("nothing paged")
	}
	exp := exportAll(t, b.s)
	if len(exp) != n {
		t.Fatalf("exported %d messages, want all %d (in memory and paged)", len(exp), n)
	}
	ids := make([]uint64, len(exp))
	for i, m := range exp {
		if i > 0 && m.ID <= exp[i-1].ID {
			t.Fatalf("export not in ascending ID order at %d: %d after %d", i, m.ID, exp[i-1].ID)
		}
		if len(m.Message.Body) != size || len(m.Queues) != 1 || m.Queues[0].Name != "q" {
			t.Fatalf("message %d: %d bytes, queues %+v", i, len(m.Message.Body), m.Queues)
		}
		ids[i] = m.ID
	}
	dst := newBroker(t, Options{})
	res, err := dst.s.importMessages(context.Background(), clusterSource{node: b.s.NodeID(), stream: "scale-down", epoch: 1},
		&wire.ClusterMessages{Epoch: 1, Messages: exp})
	if err != nil || res.stored != n {
		t.Fatalf("import: %+v, %v", res, err)
	}
	if err := b.s.AckExported(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != 0 || qi.Paged != 0 {
		t.Fatalf("source after acking the moved messages: %+v", qi)
	}
	b.s.Release(nil)
	b.restart()
	if qi, _ := b.s.Queue("q"); qi.Depth != 0 {
		t.Fatalf("source after a restart: depth %d, want 0 (the paged messages' acks are durable)", qi.Depth)
	}
	if qi, _ := dst.s.Queue("q"); qi.Depth != n {
		t.Fatalf("target depth %d, want %d", qi.Depth, n)
	}
}

// An export that would read more paged messages than MaxExportPaged into
// memory, or that meets a large message, is refused before anything is
// taken: the queue keeps every message.
func TestScaleDownRefusesLargeMessages(t *testing.T) {
	b := newLargeBroker(t, Options{})
	ss := b.s.NewSession(false)
	up, err := b.s.BeginLargeUpload()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(make([]byte, LargeChunkSize+1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	up.Send(context.Background(), ss, queueDest("q"), &Message{Durable: true}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustSend(t, ss, queueDest("q"), &Message{Durable: true, Body: []byte("small")})
	if err := b.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp, err := b.s.ExportMessages()
	if !errors.Is(err, ErrNotExportable) {
		t.Fatalf("export of a broker holding a large message: %d messages, %v; want ErrNotExportable", len(exp), err)
	}
	b.s.RestoreExported()
	if qi, _ := b.s.Queue("q"); qi.Depth != 2 {
		t.Fatalf("depth %d after a refused export, want 2", qi.Depth)
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
