package broker

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/wire"
)

// TestCheckQuorum: the quorum examples pass Check (tandem run and config
// check run them); a quorum pair whose cluster connection names fewer
// than two other brokers is refused, naming what is missing.
func TestCheckQuorum(t *testing.T) {
	for _, name := range []string{"replication-quorum-master.xml", "replication-quorum-slave.xml"} {
		cfg, _, err := config.Load(filepath.Join("..", "etc", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if got := staticPeers(cfg, haAnnounceURL(cfg)); len(got) != 3 {
			t.Errorf("%s: static peers %v, want the backup and two other primaries", name, got)
		}
		cfg.ClusterConnections[0].StaticConnectors = cfg.ClusterConnections[0].StaticConnectors[:1]
		if err := Check(cfg); err == nil || !strings.Contains(err.Error(), "static connectors") {
			t.Errorf("%s with one static connector: %v, want a refusal naming the static connectors", name, err)
		}

		// A discovery group instead: it must be defined, the broker must
		// broadcast, and quorum-size must say how many grants.
		cfg.ClusterConnections[0].StaticConnectors = nil
		cfg.ClusterConnections[0].DiscoveryGroupRef = "dg"
		for _, tc := range []struct {
			setup func()
			want  string
		}{
			{func() {}, "does not define"},
			{func() {
				cfg.DiscoveryGroups = []config.DiscoveryGroup{{Name: "dg", GroupAddress: "127.255.255.255", GroupPort: 9876}}
			}, "broadcast-group"},
			{func() {
				cfg.BroadcastGroups = []config.BroadcastGroup{{Name: "bg", GroupAddress: "127.255.255.255", GroupPort: 9876, ConnectorRefs: []string{"artemis"}}}
			}, "quorum-size"},
			{func() { cfg.HA.QuorumSize = 4 }, ""},
		} {
			tc.setup()
			err := Check(cfg)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("%s with a discovery group: %v, want %q", name, err, tc.want)
			}
		}
	}
}

// TestQuorumWireRoundTrip: a request and an answer survive the wire
// frames with every field the vote decides on.
func TestQuorumWireRoundTrip(t *testing.T) {
	id := lockfile.NodeID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	req := hasm.QRequest{Kind: hasm.QLease, Node: id, From: 3, Seq: 4, Owner: 99, Lease: 2 * time.Second}
	b, err := wire.AppendFrame(nil, 7, toWireRequest(req, wire.QuorumMember{URL: "tcp://a:1"}))
	if err != nil {
		t.Fatal(err)
	}
	_, f, err := wire.NewDecoder(strings.NewReader(string(b))).Read()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fromWireRequest(f.(*wire.QuorumRequest))
	if err != nil || got.Kind != req.Kind || got.Node != req.Node || got.From != 3 || got.Seq != 4 || got.Owner != 99 || got.Lease != req.Lease {
		t.Fatalf("request %+v (%v), want %+v", got, err, req)
	}
	a := hasm.QAnswer{Verdict: hasm.QLiveAlive, Voter: 5, RetryAfter: 1500 * time.Millisecond,
		Entry: hasm.QEntry{Seq: 4, Owner: 99, From: 3, Leased: 4, LeasedOwner: 99}}
	p := hasm.QPeer{NodeID: id, Group: "g", Role: hasm.Backup, State: "active", URL: "tcp://b:2", Seq: 4, Replica: true}
	b, err = wire.AppendFrame(nil, 7, toWireAnswer(a, p))
	if err != nil {
		t.Fatal(err)
	}
	_, f, err = wire.NewDecoder(strings.NewReader(string(b))).Read()
	if err != nil {
		t.Fatal(err)
	}
	ga, gp := fromWireAnswer(f.(*wire.QuorumAnswer))
	p.Voter = 5
	if !reflect.DeepEqual(ga, a) || gp != p {
		t.Fatalf("answer %+v %+v, want %+v %+v", ga, gp, a, p)
	}

	// The membership fields: a departure with its register and grants,
	// a commit, an answer with a view and a register (a rejoin's).
	reg := map[lockfile.NodeID]hasm.QEntry{id: {Seq: 4, Owner: 99, From: 3, Leased: 4, LeasedOwner: 99}}
	for _, req := range []hasm.QRequest{
		{Kind: hasm.QDepart, Voter: 77, Register: reg, Grants: map[lockfile.NodeID]hasm.QGrant{id: {Owner: 99, Until: 1200 * time.Millisecond}},
			View: hasm.QView{Version: 2, Out: []hasm.QuorumVoterID{3, 9}}, Electorate: 6},
		{Kind: hasm.QCommitChange, View: hasm.QView{Version: 3, Out: []hasm.QuorumVoterID{3, 9, 77}}, Change: hasm.QChange{Version: 3, Voter: 77, Depart: true}},
	} {
		b, err := wire.AppendFrame(nil, 7, toWireRequest(req, wire.QuorumMember{}))
		if err != nil {
			t.Fatal(err)
		}
		_, f, err := wire.NewDecoder(strings.NewReader(string(b))).Read()
		if err != nil {
			t.Fatal(err)
		}
		got, err := fromWireRequest(f.(*wire.QuorumRequest))
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Fatalf("request %+v (%v), want %+v", got, err, req)
		}
	}
	ja := hasm.QAnswer{Verdict: hasm.QGranted, Voter: 5, View: hasm.QView{Version: 1, Out: []hasm.QuorumVoterID{77}}, Register: reg}
	b, err = wire.AppendFrame(nil, 7, toWireAnswer(ja, p))
	if err != nil {
		t.Fatal(err)
	}
	_, f, err = wire.NewDecoder(strings.NewReader(string(b))).Read()
	if err != nil {
		t.Fatal(err)
	}
	if ga, _ := fromWireAnswer(f.(*wire.QuorumAnswer)); !reflect.DeepEqual(ga, ja) {
		t.Fatalf("answer %+v, want %+v", ga, ja)
	}
}
