package client

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// epochBroker is an in-process broker announcing itself under an epoch,
// as `tandem run` does.
func epochBroker(t *testing.T, epoch uint64) (*server.Server, *server.Acceptor) {
	t.Helper()
	mj, bj := journal.NewMemoryStore().Open(), journal.NewMemoryStore().Open()
	s := server.New(server.Options{Messages: mj, Bindings: bj, Epoch: epoch, Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := s.Serve(ln, server.NetOptions{})
	s.SetTopology(server.Topology{Epoch: epoch, Members: []server.Member{{NodeID: s.NodeID(), Role: "primary", State: "active",
		URL: "tcp://" + ln.Addr().String(), Epoch: epoch}}})
	t.Cleanup(func() {
		acc.Close(wire.CodeShuttingDown, "test ends")
		s.Close()
		mj.Close()
		bj.Close()
	})
	return s, acc
}

// TestFailoverToScaleDownTarget: a live-only broker that scaled down
// pushes a topology naming its target (another node, whose epoch is its
// own, here lower) and disconnects its clients; an HA client that knew
// only the stopping broker follows the topology to the target and goes
// on there. Epochs of different node IDs are not comparable: the
// target's lower epoch is not a stale broker of the same pair.
func TestFailoverToScaleDownTarget(t *testing.T) {
	src, srcAcc := epochBroker(t, 9)
	dst, dstAcc := epochBroker(t, 2)
	c := dial(t, "tcp://"+srcAcc.Addr().String()+"?ha=true&reconnectAttempts=-1&retryInterval=20&maxRetryInterval=100")
	s := session(t, c)
	p := s.CreateProducer(Queue("sd"))
	ctx := testCtx(t)
	if err := p.Send(ctx, &Message{Body: []byte("before"), DuplicateID: "b1"}); err != nil {
		t.Fatal(err)
	}
	dstURL := "tcp://" + dstAcc.Addr().String()
	src.SetTopology(server.Topology{Epoch: 9, Members: []server.Member{{NodeID: dst.NodeID(), Role: "primary", State: "active",
		URL: dstURL, Epoch: 2}}})
	deadline := time.Now().Add(10 * time.Second)
	for len(c.Topology().Members) != 1 || c.Topology().Members[0].NodeID != dst.NodeID() {
		if time.Now().After(deadline) {
			t.Fatalf("the client did not learn the pushed topology: %+v", c.Topology())
		}
		time.Sleep(5 * time.Millisecond)
	}
	srcAcc.Close(wire.CodeUnavailable, "scaled down to "+dstURL)
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.Send(sctx, &Message{Body: []byte("after"), DuplicateID: "a1"}); err != nil {
		t.Fatalf("send after the scale-down: %v (connected to %s)", err, c.Addr())
	}
	if c.Addr() != dstAcc.Addr().String() || c.NodeID() != dst.NodeID() {
		t.Fatalf("connected to %s (node %s), want the target %s (node %s)", c.Addr(), c.NodeID(), dstAcc.Addr(), dst.NodeID())
	}
	if q, _ := dst.Queue("sd"); q.Depth != 1 {
		t.Fatalf("target queue %+v, want the message sent after the scale-down", q)
	}
	if tp := c.Topology(); tp.Epoch != 2 {
		t.Fatalf("topology after moving to the target: %+v, want the target's (epoch 2)", tp)
	}
}
