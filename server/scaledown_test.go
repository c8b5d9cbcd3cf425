package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// TestFreezeParksAndReturnsDeliveries: Freeze waits for nothing more than
// the operations in progress, gives back a consumer's unacked deliveries
// (with their delivery counts) and a transaction's acks to the queue,
// parks every later operation until Release, which fails it with its
// error (CodeUnavailable to a client: it resends elsewhere).
func TestFreezeParksAndReturnsDeliveries(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i := 1; i <= 5; i++ {
		mustSend(t, ss, queueDest("q"), &Message{Durable: true, Body: fmt.Appendf(nil, "m%d", i)})
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 2}, col.handle); err != nil {
		t.Fatal(err)
	}
	ds := col.wait(t, 2)
	tx := b.s.NewSession(true)
	col2 := newCollector()
	if _, err := tx.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 1}, col2.handle); err != nil {
		t.Fatal(err)
	}
	d3 := col2.wait(t, 1)[0]
	if err := ackSync(t, tx, d3); err != nil { // in the open transaction
		t.Fatal(err)
	}
	if err := b.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != 5 || qi.Delivering != 0 || qi.Consumers != 0 {
		t.Fatalf("after Freeze: %+v, want 5 waiting, none delivering, no consumer", qi)
	}
	parked := make(chan error, 1)
	go func() {
		ss2 := b.s.NewSession(false)
		parked <- sendSync(t, ss2, queueDest("q"), msg("late", true))
	}()
	ackDone := make(chan error, 1)
	go ss.Ack(ds[0].ConsumerID, ds[0].Message.ID, func(err error) { ackDone <- err })
	select {
	case err := <-parked:
		t.Fatalf("a send during the freeze returned %v, want it parked", err)
	case err := <-ackDone:
		t.Fatalf("an ack during the freeze returned %v, want it parked", err)
	case <-time.After(100 * time.Millisecond):
	}
	why := fmt.Errorf("%w: scaled down to tcp://elsewhere", ErrFrozen)
	b.s.Release(why)
	if err := <-parked; !errors.Is(err, ErrFrozen) || codeOf(err) != wire.CodeUnavailable {
		t.Fatalf("parked send: %v (code %v), want ErrFrozen, CodeUnavailable", err, codeOf(err))
	}
	if err := <-ackDone; !errors.Is(err, ErrFrozen) {
		t.Fatalf("parked ack: %v, want ErrFrozen", err)
	}
	exp, err := b.s.ExportMessages()
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) != 5 {
		t.Fatalf("exported %d messages, want 5", len(exp))
	}
	var counts []uint32
	for i, m := range exp {
		if i > 0 && m.ID <= exp[i-1].ID {
			t.Fatalf("export not in ascending ID order: %d after %d", m.ID, exp[i-1].ID)
		}
		counts = append(counts, m.Queues[0].Deliveries)
	}
	if want := []uint32{1, 1, 1, 0, 0}; !slices.Equal(counts, want) {
		t.Fatalf("delivery counts %v, want %v", counts, want)
	}
}

// exportAll freezes src and exports its messages.
func exportAll(t *testing.T, src *Server) []wire.ClusterMessage {
	t.Helper()
	if !src.Frozen() {
		if err := src.Freeze(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := src.ExportMessages()
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// TestScaleDownMovesMessages: what a frozen broker exports and a target
// imports arrives whole (queues of both routings, delivery counts,
// properties, duplicate IDs, timestamps), durably on both sides: the
// target keeps it across a restart, the source holds nothing once it
// acked it.
func TestScaleDownMovesMessages(t *testing.T) {
	src := newBroker(t, Options{})
	dst := newBroker(t, Options{})
	ss := src.s.NewSession(false)
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), Destination{Name: "t", Routing: Multicast}, ConsumerOptions{Subscription: "sub1"}, col.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.CreateConsumer(context.Background(), Destination{Name: "t", Routing: Multicast}, ConsumerOptions{Subscription: "sub2"}, col.handle); err != nil {
		t.Fatal(err)
	}
	props := []Property{wire.StringProp("k", "v"), wire.Int64Prop("n", 42)}
	for i := 1; i <= 3; i++ {
		mustSend(t, ss, queueDest("orders"), &Message{Durable: true, DuplicateID: fmt.Sprintf("d%d", i), Timestamp: int64(i),
			Properties: props, Body: fmt.Appendf(nil, "o%d", i)})
	}
	mustSend(t, ss, topicDest("t"), &Message{Durable: true, DuplicateID: "t1", Body: []byte("topic")})
	mustSend(t, ss, queueDest("orders"), &Message{Durable: false, Body: []byte("volatile")})
	// One delivery of o1, then the consumer goes: delivery count 1.
	c2 := newCollector()
	cons, err := ss.CreateConsumer(context.Background(), queueDest("orders"), ConsumerOptions{Credit: 1}, c2.handle)
	if err != nil {
		t.Fatal(err)
	}
	c2.wait(t, 1)
	if err := ss.CloseConsumer(cons.ID()); err != nil {
		t.Fatal(err)
	}
	exp := exportAll(t, src.s)
	if len(exp) != 5 {
		t.Fatalf("exported %d messages, want 5 (3 orders, 1 topic in two subscriptions, 1 non-durable)", len(exp))
	}
	srcInfo := clusterSource{node: src.s.NodeID(), stream: "scale-down", epoch: 1}
	res, err := dst.s.importMessages(context.Background(), srcInfo, &wire.ClusterMessages{Epoch: 1, Messages: exp})
	if err != nil {
		t.Fatal(err)
	}
	if res.stored != 5 || res.dropped != 0 || res.watermark != exp[len(exp)-1].ID {
		t.Fatalf("import: %+v, want 5 stored, watermark %d", res, exp[len(exp)-1].ID)
	}
	ids := make([]uint64, len(exp))
	for i, m := range exp {
		ids[i] = m.ID
	}
	if err := src.s.AckExported(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	src.restart()
	if qs := src.s.Queues(); depth(qs) != 0 {
		t.Fatalf("source after the move and a restart: %+v, want empty", qs)
	}
	dst.restart()
	if qi, _ := dst.s.Queue("orders"); qi.Depth != 3 { // the non-durable one is gone with the restart
		t.Fatalf("target orders after a restart: %+v, want 3 durable messages", qi)
	}
	for _, sub := range []string{"sub1", "sub2"} {
		if qi, ok := dst.s.Queue(sub); !ok || qi.Depth != 1 || qi.Routing != "multicast" || qi.Address != "t" {
			t.Fatalf("target %s: %+v", sub, qi)
		}
	}
	ds2 := dst.s.NewSession(false)
	got := newCollector()
	if _, err := ds2.CreateConsumer(context.Background(), queueDest("orders"), ConsumerOptions{Credit: -1}, got.handle); err != nil {
		t.Fatal(err)
	}
	ds := got.wait(t, 3)
	if string(ds[0].Message.Body) != "o1" || ds[0].DeliveryCount != 2 || ds[1].DeliveryCount != 1 {
		t.Fatalf("first deliveries %q count %d, %q count %d; want o1 with count 2 (delivered once before), o2 with 1",
			ds[0].Message.Body, ds[0].DeliveryCount, ds[1].Message.Body, ds[1].DeliveryCount)
	}
	if m := ds[1].Message; m.DuplicateID != "d2" || m.Timestamp != 2 || !reflect.DeepEqual(m.Properties, props) {
		t.Fatalf("moved message lost its fields: %+v", m)
	}
	// The moved duplicate IDs guard the target: a client's resend of d2
	// is a duplicate.
	if err := sendSync(t, ds2, queueDest("orders"), &Message{Durable: true, DuplicateID: "d2", Body: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	if qi, _ := dst.s.Queue("orders"); qi.Depth != 3 || qi.Enqueued != 0 {
		t.Fatalf("a resend of a moved message's duplicate ID was stored: %+v", qi)
	}
}

func depth(qs []QueueInfo) int64 {
	var n int64
	for _, q := range qs {
		n += q.Depth
	}
	return n
}

// TestScaleDownResendDropped: the source crashes after the target stored
// a batch and before it acked it locally: its next scale-down sends the
// same messages again (same IDs: the journal's IDs never go back), and
// the target, whose watermark is durable with the batch, drops them. A
// source whose epoch is older than one seen is refused.
func TestScaleDownResendDropped(t *testing.T) {
	src := newBroker(t, Options{})
	dst := newBroker(t, Options{})
	ss := src.s.NewSession(false)
	for i := 1; i <= 10; i++ {
		mustSend(t, ss, queueDest("q"), &Message{Durable: true, Body: fmt.Appendf(nil, "m%d", i)})
	}
	exp := exportAll(t, src.s)
	node := src.s.NodeID()
	first := &wire.ClusterMessages{Epoch: 3, Messages: exp[:6]}
	if _, err := dst.s.importMessages(context.Background(), clusterSource{node: node, stream: "scale-down"}, first); err != nil {
		t.Fatal(err)
	}
	// Crash of the source before its ack; the target restarts too.
	src.restart()
	dst.restart()
	if w, e := dst.s.ClusterMark(node, "scale-down"); w != exp[5].ID || e != 3 {
		t.Fatalf("target's mark after a restart: watermark %d epoch %d, want %d, 3", w, e, exp[5].ID)
	}
	exp2 := exportAll(t, src.s)
	if len(exp2) != 10 || exp2[0].ID != exp[0].ID {
		t.Fatalf("after the crash the source exports %d messages from ID %d, want the same 10", len(exp2), exp2[0].ID)
	}
	_, err := dst.s.importMessages(context.Background(), clusterSource{node: node, stream: "scale-down"}, &wire.ClusterMessages{Epoch: 2, Messages: exp2})
	if !errors.Is(err, errStaleSource) || clusterAck(importResult{}, err).Code != wire.CodeUnavailable {
		t.Fatalf("an import from an older epoch: %v, want errStaleSource (CodeUnavailable)", err)
	}
	res, err := dst.s.importMessages(context.Background(), clusterSource{node: node, stream: "scale-down"}, &wire.ClusterMessages{Epoch: 4, Messages: exp2})
	if err != nil {
		t.Fatal(err)
	}
	if res.stored != 4 || res.dropped != 6 {
		t.Fatalf("resend: %+v, want 4 stored and 6 dropped", res)
	}
	if qi, _ := dst.s.Queue("q"); qi.Depth != 10 {
		t.Fatalf("target holds %d, want 10 (each once)", qi.Depth)
	}
}

// TestScaleDownDuplicateFromClient: a message the client also sent to the
// target (its resend after losing the source) is stored once.
func TestScaleDownDuplicateFromClient(t *testing.T) {
	src := newBroker(t, Options{})
	dst := newBroker(t, Options{})
	mustSend(t, src.s.NewSession(false), queueDest("q"), &Message{Durable: true, DuplicateID: "x", Body: []byte("a")})
	mustSend(t, dst.s.NewSession(false), queueDest("q"), &Message{Durable: true, DuplicateID: "x", Body: []byte("a")})
	exp := exportAll(t, src.s)
	res, err := dst.s.importMessages(context.Background(), clusterSource{node: src.s.NodeID(), stream: "scale-down"}, &wire.ClusterMessages{Messages: exp})
	if err != nil || res.dropped != 1 {
		t.Fatalf("import: %+v %v, want the duplicate dropped", res, err)
	}
	if qi, _ := dst.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("target holds %d, want 1", qi.Depth)
	}
}

// TestScaleDownDuplicateIDCaches: the source's duplicate-ID caches (also
// the IDs of messages consumed there) reach the target and survive its
// restart.
func TestScaleDownDuplicateIDCaches(t *testing.T) {
	src := newBroker(t, Options{})
	dst := newBroker(t, Options{})
	ss := src.s.NewSession(false)
	for i := 1; i <= 3; i++ {
		mustSend(t, ss, queueDest("q"), &Message{Durable: true, DuplicateID: fmt.Sprintf("c%d", i), Body: []byte("x")})
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle); err != nil {
		t.Fatal(err)
	}
	for _, d := range col.wait(t, 3) {
		if err := ackSync(t, ss, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	cas := src.s.ExportDuplicateIDs()
	if len(cas) != 1 || !slices.Equal(cas[0].IDs, []string{"c1", "c2", "c3"}) || cas[0].Flags&wire.ClusterAnycast == 0 {
		t.Fatalf("exported caches %+v", cas)
	}
	res, err := dst.s.importDupIDs(context.Background(), &wire.ClusterDupIDs{Addresses: cas})
	if err != nil || res.stored != 3 {
		t.Fatalf("import: %+v %v", res, err)
	}
	dst.restart()
	if err := sendSync(t, dst.s.NewSession(false), queueDest("q"), &Message{Durable: true, DuplicateID: "c2", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if qi, _ := dst.s.Queue("q"); qi.Depth != 0 {
		t.Fatalf("a resend of a message consumed on the source was stored on the target: %+v", qi)
	}
}

// TestScaleDownPendingRecord: the record of a scale-down in progress
// survives a restart and goes once cleared.
func TestScaleDownPendingRecord(t *testing.T) {
	b := newBroker(t, Options{})
	if _, ok := b.s.PendingScaleDown(); ok {
		t.Fatal("a fresh broker has a pending scale-down")
	}
	if err := b.s.SetPendingScaleDown(context.Background(), PendingScaleDown{Target: "node-a", URL: "tcp://a:1", High: 10}); err != nil {
		t.Fatal(err)
	}
	want := PendingScaleDown{Target: "node-b", URL: "tcp://b:2", High: 20}
	if err := b.s.SetPendingScaleDown(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	b.restart()
	if p, ok := b.s.PendingScaleDown(); !ok || p != want {
		t.Fatalf("after a restart: %+v %v, want %+v", p, ok, want)
	}
	if err := b.s.ClearPendingScaleDown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.restart()
	if _, ok := b.s.PendingScaleDown(); ok {
		t.Fatal("a cleared scale-down record came back after a restart")
	}
}

// TestClusterRecordsRefuseGarbage: the cluster records' decoders name
// what is wrong and never panic.
func TestClusterRecordsRefuseGarbage(t *testing.T) {
	good := encodeClusterMark("n", "s", 1, 2)
	for i := range good {
		if _, _, _, _, err := decodeClusterMark(good[:i]); err == nil {
			t.Fatalf("a mark cut at %d bytes decoded", i)
		}
	}
	if _, _, _, _, err := decodeClusterMark(append([]byte{9}, good[1:]...)); err == nil {
		t.Fatal("an unknown mark format decoded")
	}
	p := encodePending(PendingScaleDown{Target: "n", URL: "u", High: 5})
	for i := range p {
		if _, err := decodePending(p[:i]); err == nil {
			t.Fatalf("a pending record cut at %d bytes decoded", i)
		}
	}
	if _, err := decodePending(append(p, 0)); err == nil {
		t.Fatal("a pending record with a trailing byte decoded")
	}
}

// TestFreezeStopsAutoDelete: an auto-created queue emptied by the export
// of a scale-down is not auto-deleted while frozen: a scale-down that
// fails puts its messages back, and the queue's record must still be
// there for them (a deleted queue's messages are dropped at the next
// load).
func TestFreezeStopsAutoDelete(t *testing.T) {
	b := newBroker(t, Options{AddressQueueScanPeriod: time.Hour}) // the test scans itself
	ss := b.s.NewSession(false)
	col := newCollector()
	c, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{}, col.handle)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		mustSend(t, ss, queueDest("q"), &Message{Durable: true, Body: []byte("x")})
	}
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	exportAll(t, b.s)
	b.s.reap(time.Now().Add(time.Hour)) // a scan during the scale-down
	b.s.RestoreExported()               // the scale-down failed
	if qi, ok := b.s.Queue("q"); !ok || qi.Depth != 3 {
		t.Fatalf("queue after a failed scale-down: %+v %v, want its 3 messages", qi, ok)
	}
	b.s.Release(nil)
	b.restart()
	if qi, ok := b.s.Queue("q"); !ok || qi.Depth != 3 {
		t.Fatalf("queue after a restart: %+v %v, want its 3 messages", qi, ok)
	}
}

// TestImportWhileFrozen: a broker scaling down itself takes no messages
// from another: the import is refused (CodeUnavailable) and nothing of it
// is stored.
func TestImportWhileFrozen(t *testing.T) {
	src := newBroker(t, Options{})
	dst := newBroker(t, Options{})
	mustSend(t, src.s.NewSession(false), queueDest("q"), &Message{Durable: true, Body: []byte("a")})
	exp := exportAll(t, src.s)
	if err := dst.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := dst.s.importMessages(context.Background(), clusterSource{node: src.s.NodeID(), stream: "scale-down"}, &wire.ClusterMessages{Messages: exp})
	if !errors.Is(err, ErrFrozen) || clusterAck(importResult{}, err).Code != wire.CodeUnavailable {
		t.Fatalf("import into a frozen broker: %v", err)
	}
	if _, ok := dst.s.Queue("q"); ok {
		t.Fatal("a frozen broker created a queue for moved messages")
	}
}
