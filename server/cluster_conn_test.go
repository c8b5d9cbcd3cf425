package server

import (
	"bytes"
	"testing"

	"github.com/tandemmq/tandem/wire"
)

// TestClusterConnection: a cluster connection needs the cluster user and
// password (a client's credentials are not enough, and a broker without
// cluster credentials takes none); cluster frames on a client connection
// end it; a joined source gets this broker's node, group and its
// watermark, and a batch it sends is answered once stored.
func TestClusterConnection(t *testing.T) {
	b := newBroker(t, Options{ClusterUser: "cu", ClusterPassword: "cp", ClusterGroup: "g1"})
	a := listen(t, b, NetOptions{Users: map[string]string{"alice": "pw"}})

	bad := dialRaw(t, a)
	bad.write(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: wire.ClusterClientID, User: "alice", Password: "pw"})
	if e, ok := bad.expectClosed().(*wire.Error); !ok || e.Code != wire.CodeAuthFailed {
		t.Fatalf("a client's credentials on a cluster connection: %+v", e)
	}

	cl := dial(t, a, "alice", "pw")
	cl.write(cl.next(), &wire.ClusterJoin{NodeID: "n", Stream: "scale-down"})
	if e, ok := cl.expectClosed().(*wire.Error); !ok || e.Code != wire.CodeProtocol {
		t.Fatalf("a cluster frame on a client connection: %+v", e)
	}

	cc := dialRaw(t, a)
	cc.write(cc.next(), &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: wire.ClusterClientID, User: "cu", Password: "cp"})
	cc.expect(wire.TypeWelcome)
	cc.write(cc.next(), &wire.ClusterJoin{NodeID: "src-node", Name: "src", Epoch: 2, Stream: "scale-down"})
	j := cc.expect(wire.TypeClusterJoined).(*wire.ClusterJoined)
	if j.Code != wire.CodeOK || j.NodeID != b.s.NodeID() || j.Group != "g1" || j.Watermark != 0 {
		t.Fatalf("joined: %+v", j)
	}
	m := wire.ClusterMessage{ID: 7, Queues: []wire.ClusterQueue{{Name: "q", Address: "q", Routing: wire.RoutingAnycast, Flags: wire.ClusterDurable}},
		Message: wire.Message{Address: "q", Routing: wire.RoutingAnycast, Durable: true, Body: []byte("moved")}}
	cc.write(cc.next(), &wire.ClusterMessages{Epoch: 2, Messages: []wire.ClusterMessage{m}})
	if ack := cc.expect(wire.TypeClusterAck).(*wire.ClusterAck); ack.Code != wire.CodeOK || ack.Stored != 1 || ack.Watermark != 7 {
		t.Fatalf("ack: %+v", ack)
	}
	cc.write(cc.next(), &wire.BackupRequest{NodeID: "src-node"})
	if ans := cc.expect(wire.TypeBackupAnswer).(*wire.BackupAnswer); ans.Code != wire.CodeUnavailable {
		t.Fatalf("a backup request to a broker hosting none: %+v", ans)
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("queue %+v", qi)
	}
	if w, e := b.s.ClusterMark("src-node", "scale-down"); w != 7 || e != 2 {
		t.Fatalf("mark %d %d", w, e)
	}

	none := newBroker(t, Options{})
	na := listen(t, none, NetOptions{})
	nc := dialRaw(t, na)
	nc.write(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: wire.ClusterClientID, User: "", Password: ""})
	if e, ok := nc.expectClosed().(*wire.Error); !ok || e.Code != wire.CodeAuthFailed || !bytes.Contains([]byte(e.Message), []byte("cluster")) {
		t.Fatalf("a broker without cluster credentials took a cluster connection: %+v", e)
	}
}
