package broker

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/wire"
)

// TestColocatedBackupConfig: a hosted backup runs with the requester's
// configuration: its acceptors and connectors shifted by
// backup-port-offset except the excludes (the announced one on the
// host's host name), a management address on an ephemeral port, the
// nested backup options, and the requester's shared store; with
// replication, the host's directories suffixed with the backup's name.
func TestColocatedBackupConfig(t *testing.T) {
	load := func(name string) *config.Config {
		t.Helper()
		cfg, _, err := config.Load(filepath.Join("..", "etc", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	req := load("colocated-shared-store.xml")
	host := load("colocated-shared-store.xml")
	host.Connectors[0].Host = "host-b"
	b, err := colocatedBackupConfig(req, host, "colocated_backup_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "colocated_backup_1" || b.Acceptors[0].Port != 61616+150 || b.ManagementAddress != "127.0.0.1:0" {
		t.Fatalf("name %q, acceptor %+v, management %q", b.Name, b.Acceptors[0], b.ManagementAddress)
	}
	conn := map[string]config.Connector{}
	for _, c := range b.Connectors {
		conn[c.Name] = c
	}
	if c := conn["artemis"]; c.Host != "host-b" || c.Port != 61766 {
		t.Fatalf("announced connector %+v, want host-b:61766", c)
	}
	if c := conn["peer"]; c.Port != 61626+150 {
		t.Fatalf("peer connector %+v, want shifted", c)
	}
	if c := conn["remote-connector"]; c.Host != "remote.example.com" || c.Port != 61616 {
		t.Fatalf("excluded connector %+v, want it unchanged", c)
	}
	if h := b.HA; h.Policy != config.PolicySharedStore || h.Role != config.RoleBackup || !h.FailoverOnShutdown || !h.AllowFailback || !h.RestartBackup || h.Colocated != nil {
		t.Fatalf("HA %+v", h)
	}
	if b.Dirs.Journal != req.Dirs.Journal || !strings.HasSuffix(b.Dirs.Journal, filepath.Join("shared-store", "journal")) {
		t.Fatalf("journal %q, want the requester's shared store %q", b.Dirs.Journal, req.Dirs.Journal)
	}
	if err := Check(b); err != nil {
		t.Fatalf("the derived configuration does not run: %v", err)
	}
	if req.Acceptors[0].Port != 61616 || req.Connectors[1].Port != 61626 {
		t.Fatal("deriving changed the requester's configuration")
	}

	rreq := load("colocated-replication.xml")
	rhost := load("colocated-replication.xml")
	rb, err := colocatedBackupConfig(rreq, rhost, "colocated_backup_2", 2)
	if err != nil {
		t.Fatal(err)
	}
	// Artemis appends the name to the host's directories, no separator.
	if rb.Dirs.Journal != rhost.Dirs.Journal+"colocated_backup_2" || rb.Dirs.NodeManagerLock != rhost.Dirs.NodeManagerLock+"colocated_backup_2" {
		t.Fatalf("replication dirs %+v, want the host's suffixed", rb.Dirs)
	}
	if rb.Acceptors[0].Port != 61616+2*150 {
		t.Fatalf("the second hosted backup's acceptor %+v, want shifted twice (Artemis: n * backup-port-offset)", rb.Acceptors[0])
	}
	if rb.HA.Policy != config.PolicyReplication || rb.HA.Role != config.RoleBackup || rb.HA.GroupName != "colocated-group" || rb.HA.MaxSavedReplicatedJournalsSize != 2 {
		t.Fatalf("replication HA %+v", rb.HA)
	}
	if err := Check(rreq); err != nil {
		t.Fatalf("the colocated-replication snippet does not run: %v", err)
	}
	if err := Check(rb); err != nil {
		t.Fatalf("the derived replication backup does not run: %v", err)
	}
	// The hosted backup's voters are the requester's real lives, not the
	// shifted connectors of its own configuration.
	requester, voters := replicationElectorate(rreq)
	if requester != "localhost:61616" || !slices.Equal(voters, []string{"localhost:61616", "localhost:61626", "localhost:61636"}) {
		t.Fatalf("electorate %q %q, want the requester and its static connectors unshifted", requester, voters)
	}
	if _, err := colocatedBackupConfig(host, host, "x", 1); err != nil {
		t.Fatal(err)
	}
	plain := load("shared-store-primary.xml")
	if _, err := colocatedBackupConfig(plain, host, "x", 1); err == nil {
		t.Fatal("a configuration without <colocated> was turned into a backup")
	}
}

// TestReplicaSlot: a replicating hosted backup gets the directories that
// already hold its requester's data, else the first free ones; never
// directories with another node's data (they may be its newest copy).
func TestReplicaSlot(t *testing.T) {
	host := &config.Config{}
	host.Dirs.NodeManagerLock = filepath.Join(t.TempDir(), "journal")
	write := func(name string, epoch uint64) string {
		t.Helper()
		m, err := lockfile.Open(host.Dirs.NodeManagerLock+name, lockfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if ok, err := m.TryAcquirePrimary(); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if err := m.WriteLocal(m.NodeID(), epoch, lockfile.StateActive); err != nil {
			t.Fatal(err)
		}
		return m.NodeID().String()
	}
	nodeC := write("colocated_backup_1", 5)
	const nodeD = "0a0b0c0d-0000-4000-8000-000000000001"
	if name, n, err := replicaSlot(host, nodeD, nil); err != nil || name != "colocated_backup_2" || n != 2 {
		t.Fatalf("another node's backup got %q %d %v, want colocated_backup_2 (1 holds node C's data)", name, n, err)
	}
	if name, n, err := replicaSlot(host, nodeC, nil); err != nil || name != "colocated_backup_1" || n != 1 {
		t.Fatalf("node C's backup got %q %d %v, want its own directories back", name, n, err)
	}
	if name, _, err := replicaSlot(host, nodeC, map[string]bool{"colocated_backup_1": true}); err != nil || name != "colocated_backup_2" {
		t.Fatalf("with colocated_backup_1 running: %q %v", name, err)
	}
}

// TestColocatedQuorumPin: in a colocated cluster every broker shares one
// group-name, so a vote answer from another node's live must not be
// taken for this pair's live (a fresh colocated live would replicate from
// another live; a hosted backup from the wrong one): the pinned
// transport hides what other nodes say of themselves, and keeps the
// pinned node's. A host answers a vote about a node whose hosted backup
// is active with that backup's self.
func TestColocatedQuorumPin(t *testing.T) {
	mine := lockfile.NodeID{1}
	other := lockfile.NodeID{2}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answerAs := make(chan lockfile.NodeID, 2)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			dec := wire.NewDecoder(nc)
			_, _, _ = dec.Read() // Hello
			hdr, _, err := dec.Read()
			if err == nil {
				p := hasm.QPeer{NodeID: <-answerAs, Group: "colocated-group", State: "active", URL: "tcp://x:1", Seq: 3}
				b, _ := wire.AppendFrame(nil, hdr.Corr, toWireAnswer(hasm.QAnswer{Verdict: hasm.QGranted, Voter: 9}, p))
				_, _ = nc.Write(b)
			}
			nc.Close()
		}
	}()
	h := newHABroker(&config.Config{}, slog.New(slog.DiscardHandler), hasm.Backup)
	tr := &quorumTransport{h: h, self: func() wire.QuorumMember { return wire.QuorumMember{} },
		pin: (&pairExtra{pinNode: mine.String()}).pinFor(h)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		node lockfile.NodeID
		want string
	}{{other, stateOtherNode}, {mine, "active"}} {
		answerAs <- tc.node
		a, p, err := tr.Ask(ctx, ln.Addr().String(), hasm.QRequest{Kind: hasm.QInfo})
		if err != nil || a.Verdict != hasm.QGranted {
			t.Fatalf("ask: %v %+v", err, a)
		}
		if p.State != tc.want {
			t.Errorf("a live of node %v seen as %q by a broker pinned to %v, want %q", tc.node, p.State, mine, tc.want)
		}
	}

	// The host's answer about a node it hosts an active backup of.
	bcfg := &config.Config{}
	c := &colocated{hosted: []*hostedBackup{{requesterNode: mine.String(), cfg: bcfg, done: make(chan struct{})}}}
	state := "waiting"
	hostedQuorumSelves.Store(bcfg, func() hasm.QPeer { return hasm.QPeer{NodeID: mine, State: state, URL: "tcp://host:61766"} })
	defer hostedQuorumSelves.Delete(bcfg)
	if _, ok := c.quorumPeerFor(mine); ok {
		t.Fatal("a waiting hosted backup was given as its node's live")
	}
	state = "active"
	if p, ok := c.quorumPeerFor(mine); !ok || p.URL != "tcp://host:61766" {
		t.Fatalf("the active hosted backup: %+v %v", p, ok)
	}
	if _, ok := c.quorumPeerFor(other); ok {
		t.Fatal("a backup of one node was given for another")
	}
}
