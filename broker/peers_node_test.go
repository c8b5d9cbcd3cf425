package broker

import (
	"log/slog"
	"testing"

	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/server"
)

// recordingAct is an activation that records what it is told.
type recordingAct struct{ announced []hasm.Peer }

func (a *recordingAct) Status() hasm.Status {
	return hasm.Status{Role: "primary", State: "active", Phase: "live", Epoch: 3}
}
func (a *recordingAct) Epoch() uint64             { return 3 }
func (a *recordingAct) PeerAnnounced(p hasm.Peer) { a.announced = append(a.announced, p) }

// TestPeersOfAnotherNode: a cluster connection's static connectors may
// name brokers of other nodes (colocated lives backing each other up,
// several pairs in one cluster). Such a broker is not this pair's other
// member: an active one with a newer epoch must not fence this live (the
// activation hears only peers of its own node ID), and clients are not
// sent there on failover (the topology they get lists this node's
// members only: failing over to another node's store would store an
// in-flight send twice). /status still lists every peer.
func TestPeersOfAnotherNode(t *testing.T) {
	cfg := parseCore(t, `<acceptors><acceptor name="a">tcp://127.0.0.1:1</acceptor></acceptors>`)
	h := newHABroker(cfg, slog.New(slog.DiscardHandler), hasm.Primary)
	act := &recordingAct{}
	h.act, h.nodeID = act, "node-a"
	h.setPeer("127.0.0.1:2", server.Member{NodeID: "node-b", Role: "primary", State: "active", URL: "tcp://127.0.0.1:2", Epoch: 9}, true)
	h.setPeer("127.0.0.1:3", server.Member{NodeID: "node-a", Role: "backup", State: "waiting", URL: "tcp://127.0.0.1:3", Epoch: 3}, true)
	for _, p := range act.announced {
		if p.Epoch == 9 {
			t.Fatalf("another node's live was announced to the activation: %+v", act.announced)
		}
	}
	for _, m := range h.topology().Members {
		if m.NodeID != "node-a" {
			t.Fatalf("clients' topology lists another node's broker: %+v", h.topology().Members)
		}
	}
	if n := len(h.topology().Members); n != 2 {
		t.Fatalf("clients' topology %+v, want this broker and its backup", h.topology().Members)
	}
	if n := len(h.members(true)); n != 3 {
		t.Fatalf("/status peers %+v, want all three", h.members(true))
	}
}
