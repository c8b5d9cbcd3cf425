package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/wire"
)

// TestChooseTarget is the load-balancing decision for one binding: -1 is
// the local queue, i a peer's queue; a negative remote count is a peer
// that is not connected.
func TestChooseTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   LoadBalancing
		local  int
		remote []int
		want   []int // successive choices
	}{
		{"off keeps everything local", BalanceOff, 0, []int{3}, []int{-1, -1, -1}},
		{"off with redistribution keeps it local", BalanceOffWithRedistribution, 0, []int{3}, []int{-1, -1}},
		{"strict rotates without consumers", BalanceStrict, 0, []int{0, 0}, []int{-1, 0, 1, -1, 0, 1}},
		{"strict skips a disconnected peer", BalanceStrict, 1, []int{-1, 0}, []int{-1, 1, -1, 1}},
		{"on demand: no consumers anywhere stays local", BalanceOnDemand, 0, []int{0, 0}, []int{-1, -1, -1}},
		{"on demand: only a remote consumer", BalanceOnDemand, 0, []int{0, 2}, []int{1, 1, 1}},
		{"on demand: local and remote consumers rotate", BalanceOnDemand, 1, []int{1}, []int{-1, 0, -1, 0}},
		{"on demand: a disconnected peer is skipped", BalanceOnDemand, 0, []int{-1, 1}, []int{1, 1}},
		{"on demand: local only", BalanceOnDemand, 2, []int{0}, []int{-1, -1}},
		{"no peer", BalanceStrict, 0, nil, []int{-1, -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rr uint32
			for i, w := range tc.want {
				if got := chooseTarget(tc.mode, tc.local, tc.remote, &rr); got != w {
					t.Fatalf("choice %d = %d, want %d (all: %v)", i, got, w, tc.want)
				}
			}
		})
	}
}

func TestParseLoadBalancing(t *testing.T) {
	for in, want := range map[string]LoadBalancing{"OFF": BalanceOff, "STRICT": BalanceStrict, "ON_DEMAND": BalanceOnDemand,
		"": BalanceOnDemand, "OFF_WITH_REDISTRIBUTION": BalanceOffWithRedistribution} {
		if got, err := ParseLoadBalancing(in); err != nil || got != want {
			t.Errorf("ParseLoadBalancing(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLoadBalancing("ROUND_ROBIN"); err == nil || !strings.Contains(err.Error(), "ROUND_ROBIN") {
		t.Errorf("ParseLoadBalancing(ROUND_ROBIN) = %v, want an error naming it", err)
	}
}

// clusterPair is a source broker joined to a target as its peer.
func clusterPair(t *testing.T, mode LoadBalancing, opts Options) (src, dst *broker) {
	t.Helper()
	src, dst = newBroker(t, opts), newBroker(t, opts)
	src.s.SetLoadBalancing(mode)
	if err := src.s.PeerJoined(context.Background(), dst.s.NodeID(), "dst", 1); err != nil {
		t.Fatal(err)
	}
	src.s.SetPeerConnected(dst.s.NodeID(), true)
	return src, dst
}

// forwardAll moves what src's forwarding queue for dst holds into dst as
// the bridge does, and returns what dst answered.
func forwardAll(t *testing.T, src, dst *broker) importResult {
	t.Helper()
	node := dst.s.NodeID()
	var total importResult
	for {
		ms := src.s.TakeForward(node, 100, 1<<20)
		if ms == nil {
			return total
		}
		res, err := dst.s.importMessages(context.Background(), clusterSource{node: src.s.NodeID(), stream: wire.ForwardStream, epoch: 1},
			&wire.ClusterMessages{Epoch: 1, Messages: ms})
		if err != nil {
			src.s.ReturnForward(node)
			t.Fatal(err)
		}
		total.stored += res.stored
		total.dropped += res.dropped
		if err := src.s.AckForward(node); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStrictForwardsExactlyOnce: STRICT sends every other message to the
// peer's queue through the forwarding queue, which survives a restart of
// the source with its routes; a batch sent again (the answer was lost) is
// dropped by the target's duplicate-ID cache; acked, it leaves the source.
func TestStrictForwardsExactlyOnce(t *testing.T) {
	src, dst := clusterPair(t, BalanceStrict, Options{})
	node := dst.s.NodeID()
	ss := src.s.NewSession(false)
	mustSend(t, ss, queueDest("orders"), msg("m0", true)) // creates the queue: no binding yet, local
	src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{{Name: "orders", Address: "orders", Routing: wire.RoutingAnycast}})
	for i := 1; i <= 10; i++ {
		mustSend(t, ss, queueDest("orders"), msg(fmt.Sprintf("m%d", i), true))
	}
	if qi, _ := src.s.Queue("orders"); qi.Depth != 6 {
		t.Fatalf("local depth %d, want 6 (m0 and every other of 10)", qi.Depth)
	}
	if n := src.s.ForwardPending(node); n != 5 {
		t.Fatalf("forward pending %d, want 5", n)
	}
	src.restart() // the forwarding queue and its routes are in the journal
	if n := src.s.ForwardPending(node); n != 5 {
		t.Fatalf("after restart: forward pending %d, want 5", n)
	}
	ms := src.s.TakeForward(node, 100, 1<<20)
	if len(ms) != 5 {
		t.Fatalf("took %d, want 5", len(ms))
	}
	for _, m := range ms {
		if len(m.Queues) != 1 || m.Queues[0].Name != "orders" || !strings.HasPrefix(fwdID(m), "$tandem.fwd:"+src.s.NodeID()) || m.Message.DuplicateID != "" {
			t.Fatalf("forwarded %+v, want queue orders and a duplicate ID of the source", m)
		}
	}
	res, err := dst.s.importMessages(context.Background(), clusterSource{node: src.s.NodeID(), stream: wire.ForwardStream},
		&wire.ClusterMessages{Epoch: 1, Messages: ms})
	if err != nil || res.stored != 5 {
		t.Fatalf("import: %+v, %v; want 5 stored", res, err)
	}
	src.s.ReturnForward(node) // the answer was lost
	if got := forwardAll(t, src, dst); got.stored != 0 || got.dropped != 5 {
		t.Fatalf("resend: stored %d dropped %d, want 0 and 5", got.stored, got.dropped)
	}
	if n := src.s.ForwardPending(node); n != 0 {
		t.Fatalf("forward pending %d after the ack, want 0", n)
	}
	src.restart()
	if n := src.s.ForwardPending(node); n != 0 {
		t.Fatalf("after the ack and a restart: forward pending %d, want 0", n)
	}
	if qi, _ := dst.s.Queue("orders"); qi.Depth != 5 {
		t.Fatalf("target depth %d, want 5", qi.Depth)
	}
	if qi, _ := src.s.Queue("orders"); qi.Depth != 6 {
		t.Fatalf("source depth %d after restart, want 6", qi.Depth)
	}
}

// TestOnDemandFollowsConsumers: ON_DEMAND keeps messages local while no
// queue has consumers, sends them all to a peer whose queue has, rotates
// when both have, and keeps them local when the peer is away.
func TestOnDemandFollowsConsumers(t *testing.T) {
	src, dst := clusterPair(t, BalanceOnDemand, Options{})
	node := dst.s.NodeID()
	ss := src.s.NewSession(false)
	bind := func(consumers uint32) {
		src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast, Consumers: consumers}})
	}
	send := func(n int) {
		for i := 0; i < n; i++ {
			mustSend(t, ss, queueDest("q"), msg("x", true))
		}
	}
	depth := func() int64 { qi, _ := src.s.Queue("q"); return qi.Depth }
	send(1)
	bind(0)
	send(4)
	if d, p := depth(), src.s.ForwardPending(node); d != 5 || p != 0 {
		t.Fatalf("no consumers anywhere: local %d forwarded %d, want 5 and 0", d, p)
	}
	bind(1)
	send(4)
	if d, p := depth(), src.s.ForwardPending(node); d != 5 || p != 4 {
		t.Fatalf("remote consumer only: local %d forwarded %d, want 5 and 4", d, p)
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 0}, col.handle); err != nil {
		t.Fatal(err)
	}
	send(4)
	if d, p := depth(), src.s.ForwardPending(node); d != 7 || p != 6 {
		t.Fatalf("consumers on both: local %d forwarded %d, want 7 and 6", d, p)
	}
	src.s.SetPeerConnected(node, false)
	send(2)
	if d, p := depth(), src.s.ForwardPending(node); d != 9 || p != 6 {
		t.Fatalf("peer away: local %d forwarded %d, want 9 and 6", d, p)
	}
	if got := forwardAll(t, src, dst); got.stored != 6 {
		t.Fatalf("forwarded %d, want 6", got.stored)
	}
}

// TestOffNeverForwards: OFF keeps every message local whatever the peer
// has.
func TestOffNeverForwards(t *testing.T) {
	src, dst := clusterPair(t, BalanceOff, Options{})
	ss := src.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("x", true))
	src.s.SetRemoteBindings(dst.s.NodeID(), 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast, Consumers: 5}})
	for i := 0; i < 5; i++ {
		mustSend(t, ss, queueDest("q"), msg("x", true))
	}
	if p := src.s.ForwardPending(dst.s.NodeID()); p != 0 {
		t.Fatalf("OFF forwarded %d, want 0", p)
	}
	if n, err := src.s.Redistribute(time.Now(), 100); n != 0 || err != nil {
		t.Fatalf("OFF redistributed %d (%v), want 0", n, err)
	}
}

// TestRedistribute: with redistribution-delay 0, the messages of a queue
// without consumers move to the peer whose queue has consumers (one
// append per batch, kept across a restart), each with a duplicate ID of
// its own; a local consumer stops it.
func TestRedistribute(t *testing.T) {
	zero := time.Duration(0)
	opts := Options{AddressSettings: config.AddressSettings{{Match: "#", RedistributionDelay: &zero}}}
	src, dst := clusterPair(t, BalanceOnDemand, opts)
	node := dst.s.NodeID()
	ss := src.s.NewSession(false)
	for i := 0; i < 6; i++ {
		m := msg(fmt.Sprintf("m%d", i), true)
		m.DuplicateID = fmt.Sprintf("client-%d", i) // kept as the client's: consumers on the target see it
		mustSend(t, ss, queueDest("q"), m)
	}
	src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast}})
	if n, _ := src.s.Redistribute(time.Now(), 100); n != 0 {
		t.Fatalf("redistributed %d to a queue without consumers, want 0", n)
	}
	col := newCollector()
	cons, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 0}, col.handle)
	if err != nil {
		t.Fatal(err)
	}
	src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast, Consumers: 1}})
	if n, _ := src.s.Redistribute(time.Now(), 100); n != 0 {
		t.Fatalf("redistributed %d from a queue with a local consumer, want 0", n)
	}
	if err := ss.CloseConsumer(cons.ID()); err != nil {
		t.Fatal(err)
	}
	n, err := src.s.Redistribute(time.Now(), 4)
	if err != nil || n != 4 {
		t.Fatalf("redistributed %d (%v), want 4", n, err)
	}
	src.restart()
	if qi, _ := src.s.Queue("q"); qi.Depth != 2 {
		t.Fatalf("local depth %d after restart, want 2", qi.Depth)
	}
	if p := src.s.ForwardPending(node); p != 4 {
		t.Fatalf("forward pending %d after restart, want 4", p)
	}
	ms := src.s.TakeForward(node, 100, 1<<20)
	for _, m := range ms {
		if !strings.HasPrefix(fwdID(m), "$tandem.redist:") || m.Queues[0].Name != "q" || m.Message.DuplicateID != "client-"+strings.TrimPrefix(string(m.Message.Body), "m") {
			t.Fatalf("redistributed %+v, want a redistribution duplicate ID and queue q", m)
		}
	}
	src.s.ReturnForward(node)
	if got := forwardAll(t, src, dst); got.stored != 4 {
		t.Fatalf("stored %d on the target, want 4", got.stored)
	}
	if qi, _ := dst.s.Queue("q"); qi.Depth != 4 {
		t.Fatalf("target depth %d, want 4", qi.Depth)
	}
	col2 := newCollector()
	if _, err := dst.s.NewSession(false).CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 10}, col2.handle); err != nil {
		t.Fatal(err)
	}
	for _, d := range col2.wait(t, 4) {
		if !strings.HasPrefix(d.Message.DuplicateID, "client-") || len(d.Message.Properties) != 0 {
			t.Fatalf("delivered on the target: duplicate ID %q, properties %v; want the client's and none added",
				d.Message.DuplicateID, d.Message.Properties)
		}
	}
}

// TestForwardThenRedistributeSameMessage: a multicast message whose
// subscription s2 was forwarded to the peer, and whose s1 copy is later
// redistributed to the same peer, is stored there twice (once per
// subscription), not dropped as a duplicate of the first.
func TestForwardThenRedistributeSameMessage(t *testing.T) {
	zero := time.Duration(0)
	opts := Options{AddressSettings: config.AddressSettings{{Match: "#", RedistributionDelay: &zero}}}
	src, dst := clusterPair(t, BalanceOnDemand, opts)
	node := dst.s.NodeID()
	for _, s := range []*Server{src.s, dst.s} {
		for _, q := range []string{"s1", "s2"} {
			if _, err := s.CreateQueue(context.Background(), QueueConfig{Address: "news", Name: q, Routing: Multicast, Durable: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{
		{Name: "s1", Address: "news", Routing: wire.RoutingMulticast},
		{Name: "s2", Address: "news", Routing: wire.RoutingMulticast, Consumers: 1}})
	m := msg("one", true)
	m.DuplicateID = "client-1"
	mustSend(t, src.s.NewSession(false), topicDest("news"), m)
	if got := forwardAll(t, src, dst); got.stored != 1 {
		t.Fatalf("forward of s2's copy: %+v, want 1 stored", got)
	}
	src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{
		{Name: "s1", Address: "news", Routing: wire.RoutingMulticast, Consumers: 1},
		{Name: "s2", Address: "news", Routing: wire.RoutingMulticast, Consumers: 1}})
	if n, err := src.s.Redistribute(time.Now(), 10); n != 1 || err != nil {
		t.Fatalf("redistributed %d (%v), want s1's copy", n, err)
	}
	if got := forwardAll(t, src, dst); got.stored != 1 || got.dropped != 0 {
		t.Fatalf("redistribution of s1's copy: %+v, want 1 stored", got)
	}
	for _, q := range []string{"s1", "s2"} {
		if qi, _ := dst.s.Queue(q); qi.Depth != 1 {
			t.Fatalf("target %s depth %d, want 1", q, qi.Depth)
		}
	}
}

// TestForwardRouteRecordRefusesGarbage: a damaged route record is an
// error naming it, never a panic.
func TestForwardRouteRecordRefusesGarbage(t *testing.T) {
	good := encodeRoute(7, fwdRoute{redist: true, routing: Multicast, deliveries: 3, address: "a", queues: []string{"s1", "s2"}})
	qid, r, err := decodeRoute(good)
	if err != nil || qid != 7 || !r.redist || r.routing != Multicast || r.deliveries != 3 || r.address != "a" || len(r.queues) != 2 {
		t.Fatalf("decode(encode) = %d %+v %v", qid, r, err)
	}
	for i := 0; i < len(good); i++ {
		if _, _, err := decodeRoute(good[:i]); err == nil {
			t.Errorf("a route record cut at %d decoded", i)
		} else if !strings.Contains(err.Error(), "forward route record") {
			t.Errorf("error %q does not name the record", err)
		}
	}
	bad := append([]byte{}, good...)
	bad[0] = 9
	if _, _, err := decodeRoute(bad); err == nil {
		t.Error("unknown format decoded")
	}
	og := encodeOrigin("node-1")
	if n, err := decodeOrigin(og); err != nil || n != "node-1" {
		t.Fatalf("decodeOrigin(encodeOrigin) = %q, %v", n, err)
	}
	for i := 0; i < len(og); i++ {
		if _, err := decodeOrigin(og[:i]); err == nil || !strings.Contains(err.Error(), "message origin record") {
			t.Errorf("an origin record cut at %d: %v", i, err)
		}
	}
	if _, err := decodeOrigin(append(og, 0)); err == nil {
		t.Error("an origin record with trailing bytes decoded")
	}
}

// fwdID is a forwarded message's wire.ForwardIDProperty or
// wire.RedistIDProperty.
func fwdID(m wire.ClusterMessage) string {
	for _, p := range m.Message.Properties {
		if p.Key == wire.ForwardIDProperty || p.Key == wire.RedistIDProperty {
			return p.Str
		}
	}
	return ""
}

// TestScaleDownGivesBackForwardedMessage: a message a client sent to the
// source (its duplicate ID in the source's cache) and that load balancing
// forwarded to the peer comes back to the source when that peer scales
// down into it: the source's cache hit is its own forward, not a client's
// resend, so the message is stored, not dropped (it exists nowhere else).
func TestScaleDownGivesBackForwardedMessage(t *testing.T) {
	src, dst := clusterPair(t, BalanceStrict, Options{})
	ss := src.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("first", true))
	src.s.SetRemoteBindings(dst.s.NodeID(), 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast}})
	mustSend(t, ss, queueDest("q"), msg("local", true)) // STRICT: local, then the peer
	m := msg("forwarded", true)
	m.DuplicateID = "client-x"
	mustSend(t, ss, queueDest("q"), m)
	if got := forwardAll(t, src, dst); got.stored != 1 {
		t.Fatalf("forwarded %+v, want 1 stored", got)
	}
	dst.restart() // where the message came from survives a restart
	if err := dst.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp, err := dst.s.ExportMessages()
	if err != nil || len(exp) != 1 {
		t.Fatalf("export: %d messages, %v; want 1", len(exp), err)
	}
	res, err := src.s.importMessages(context.Background(), clusterSource{node: dst.s.NodeID(), stream: "scale-down", epoch: 1},
		&wire.ClusterMessages{Epoch: 1, Messages: exp})
	if err != nil || res.stored != 1 || res.dropped != 0 {
		t.Fatalf("scale-down import of the forwarded message: %+v, %v; want it stored", res, err)
	}
	// A client's resend of the same duplicate ID to the source is still
	// dropped.
	again := msg("resent", true)
	again.DuplicateID = "client-x"
	mustSend(t, ss, queueDest("q"), again)
	if qi, _ := src.s.Queue("q"); qi.Depth != 3 {
		t.Fatalf("source depth %d, want 3 (two local and the one given back; the resend dropped)", qi.Depth)
	}
}

// TestReclaimAfterPeerScaledDown: the peer scales down into this broker
// while messages for it wait here, one batch of them stored there already
// (its answer was lost). Taken back, the ones the peer had are dropped
// (its scale-down moved them, and its duplicate-ID caches, here) and the
// others stored: every message once.
func TestReclaimAfterPeerScaledDown(t *testing.T) {
	src, dst := clusterPair(t, BalanceStrict, Options{})
	node := dst.s.NodeID()
	ss := src.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("m0", true))
	src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast}})
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			m := msg(fmt.Sprintf("m%d", i), true)
			m.DuplicateID = fmt.Sprintf("c-%d", i)
			mustSend(t, ss, queueDest("q"), m)
		}
	}
	send(1, 8) // 4 local, 4 for the peer
	if got := forwardAll(t, src, dst); got.stored != 4 {
		t.Fatalf("forwarded %+v, want 4", got)
	}
	send(9, 12) // 2 local, 2 for the peer: stored there, answer lost
	ms := src.s.TakeForward(node, 100, 1<<20)
	if _, err := dst.s.importMessages(context.Background(), clusterSource{node: src.s.NodeID(), stream: wire.ForwardStream},
		&wire.ClusterMessages{Epoch: 1, Messages: ms}); err != nil || len(ms) != 2 {
		t.Fatalf("import of %d: %v", len(ms), err)
	}
	src.s.ReturnForward(node)
	send(13, 16) // 2 local, 2 for the peer, never sent
	// The peer scales down into src: its messages, then its caches.
	if err := dst.s.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp, err := dst.s.ExportMessages()
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.s.importMessages(context.Background(), clusterSource{node: node, stream: "scale-down", epoch: 1},
		&wire.ClusterMessages{Epoch: 1, Messages: exp})
	if err != nil || res.stored != 6 {
		t.Fatalf("scale-down import: %+v, %v; want the peer's 6 stored", res, err)
	}
	if _, err := src.s.importDupIDs(context.Background(), &wire.ClusterDupIDs{Epoch: 1, Addresses: dst.s.ExportDuplicateIDs()}); err != nil {
		t.Fatal(err)
	}
	n, err := src.s.ReclaimForward(context.Background(), node, src.s.NodeID())
	if err != nil || n != 4 {
		t.Fatalf("reclaimed %d (%v), want the 4 waiting", n, err)
	}
	if p := src.s.ForwardPending(node); p != 0 {
		t.Fatalf("forward pending %d after the reclaim, want 0", p)
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 100}, col.handle); err != nil {
		t.Fatal(err)
	}
	col.wait(t, 17)
	got := map[string]int{}
	for _, d := range col.settle() { // all of them, after a quiet period
		got[string(d.Message.Body)]++
	}
	for i := 0; i <= 16; i++ {
		if b := fmt.Sprintf("m%d", i); got[b] != 1 {
			t.Errorf("%s delivered %d times, want once (all: %v)", b, got[b], got)
		}
	}
}

// TestForwardedKeepsClientDuplicateID: the target of a forward keeps the
// client's duplicate ID too: the client's resend of it to the target (it
// failed over there, not knowing the outcome) is dropped, and a message a
// client had sent there first is not stored again by the forward.
func TestForwardedKeepsClientDuplicateID(t *testing.T) {
	src, dst := clusterPair(t, BalanceStrict, Options{})
	node := dst.s.NodeID()
	ss := src.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("m0", true))
	src.s.SetRemoteBindings(node, 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast}})
	for i, id := range []string{"", "x1", "", "x2"} { // x1 and x2 go to the peer
		m := msg(fmt.Sprintf("m%d", i+1), true)
		m.DuplicateID = id
		if id == "" {
			m.DuplicateID = fmt.Sprintf("local-%d", i)
		}
		mustSend(t, ss, queueDest("q"), m)
	}
	dss := dst.s.NewSession(false)
	first := msg("x2 sent to the peer first", true)
	first.DuplicateID = "x2"
	mustSend(t, dss, queueDest("q"), first)
	if got := forwardAll(t, src, dst); got.stored != 1 || got.dropped != 1 {
		t.Fatalf("forward: %+v, want x1 stored and x2 dropped (the peer has it)", got)
	}
	resend := msg("x1 resent to the peer", true)
	resend.DuplicateID = "x1"
	mustSend(t, dss, queueDest("q"), resend)
	if qi, _ := dst.s.Queue("q"); qi.Depth != 2 {
		t.Fatalf("peer depth %d, want 2 (x2 from its client, x1 forwarded; the resend dropped)", qi.Depth)
	}
}

// TestNoConsumerOnForwardingQueue: a client cannot consume from a
// forwarding queue (it would take messages on their way to a peer).
func TestNoConsumerOnForwardingQueue(t *testing.T) {
	src, dst := clusterPair(t, BalanceStrict, Options{})
	name := ForwardQueuePrefix + dst.s.NodeID()
	if _, ok := src.s.Queue(name); !ok {
		t.Fatalf("no forwarding queue %q", name)
	}
	_, err := src.s.NewSession(false).CreateConsumer(context.Background(), queueDest(name), ConsumerOptions{Credit: 1}, func(Delivery) {})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) {
		t.Fatalf("consumer on %q: %v, want ErrInvalid naming it", name, err)
	}
}

// BenchmarkSendBalanced is BenchmarkSendDurable with ON_DEMAND load
// balancing active (a peer's queue of the same name without consumers):
// every send takes the decision and stays local.
func BenchmarkSendBalanced(b *testing.B) {
	br := newBrokerB(b)
	br.s.SetLoadBalancing(BalanceOnDemand)
	if err := br.s.PeerJoined(context.Background(), "peer-node", "peer", 1); err != nil {
		b.Fatal(err)
	}
	br.s.SetPeerConnected("peer-node", true)
	ss := br.s.NewSession(false)
	mustSendB := func(m *Message) {
		ch := make(chan error, 1)
		ss.Send(context.Background(), queueDest("q"), m, func(err error) { ch <- err })
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
	}
	mustSendB(&Message{Durable: true, Body: body1K}) // creates q
	br.s.SetRemoteBindings("peer-node", 1, []wire.ClusterBinding{{Name: "q", Address: "q", Routing: wire.RoutingAnycast}})
	sem := make(chan struct{}, 256)
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		<-sem
	}
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		m := &Message{Durable: true, DuplicateID: fmt.Sprint("p-", i), Body: body1K}
		ss.Send(context.Background(), queueDest("q"), m, done)
	}
	for i := 0; i < cap(sem); i++ {
		sem <- struct{}{}
	}
}
