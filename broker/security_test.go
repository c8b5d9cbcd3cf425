package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/internal/testcerts"
	"github.com/tandemmq/tandem/lockfile"
)

// waitingBroker opens the refuser of a waiting backup configured by core.
func waitingBroker(t *testing.T, core string) *haBroker {
	t.Helper()
	cfg := parseCore(t, core)
	log := slog.New(slog.DiscardHandler)
	mgr, err := lockfile.Open(t.TempDir(), lockfile.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	h := newHABroker(cfg, log, hasm.Backup)
	c, err := hasm.NewFileLockCoordinator(mgr, hasm.DefaultConfig(hasm.Backup, hasm.FileLock), hasm.Hooks{
		LoadStore: func(context.Context, uint64) error { return nil }, StartServing: func(uint64) {}, StopServing: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	h.runner, h.act, h.nodeID = c.Runner, c.Runner, mgr.NodeID().String()
	if err := h.openRefuser(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.closeRefuser)
	return h
}

// TestProbeNeedsClusterUser: a waiting broker that lets anonymous clients
// in still tells its topology only to a probe with the cluster user and
// password (it answered any probe before).
func TestProbeNeedsClusterUser(t *testing.T) {
	port := freeTCPPort(t)
	core := fmt.Sprintf(`<acceptors><acceptor name="a">tcp://127.0.0.1:%d</acceptor></acceptors>
	  <cluster-user>cu</cluster-user><cluster-password>cp</cluster-password>`, port)
	h := waitingBroker(t, core)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, ok := h.probe(ctx, addr); !ok {
		t.Fatal("the cluster user's probe was refused")
	}
	wrong := parseCore(t, strings.Replace(core, "<cluster-password>cp<", "<cluster-password>guess<", 1))
	if m, ok := (&haBroker{cfg: wrong, log: h.log}).probe(ctx, addr); ok {
		t.Fatalf("a probe with a wrong cluster password on an anonymous broker answered %+v", m)
	}
}

// TestProbeOverTLS: a waiting broker whose acceptor has sslEnabled
// refuses and answers in TLS; a peer probes it with the TLS parameters of
// its connector (trusting the CA), and a peer that does not trust it gets
// nothing.
func TestProbeOverTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "cluster")
	other := testcerts.NewCA(t, "other")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	port := freeTCPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	h := waitingBroker(t, fmt.Sprintf(`<acceptors><acceptor name="a">tcp://127.0.0.1:%d?sslEnabled=true;keyStorePath=%s</acceptor></acceptors>
	  <cluster-user>cu</cluster-user><cluster-password>cp</cluster-password>`, port, srv.File))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peer := func(trust string) *haBroker {
		return &haBroker{log: h.log, cfg: parseCore(t, fmt.Sprintf(`<connectors><connector name="me">tcp://127.0.0.1:1</connector>
		  <connector name="b">tcp://%s?sslEnabled=true;trustStorePath=%s</connector></connectors>
		  <cluster-connections><cluster-connection name="c"><connector-ref>me</connector-ref><static-connectors><connector-ref>b</connector-ref></static-connectors></cluster-connection></cluster-connections>
		  <cluster-user>cu</cluster-user><cluster-password>cp</cluster-password>`, addr, trust))}
	}
	if m, ok := peer(ca.File).probe(ctx, addr); !ok || m.Role != "backup" {
		t.Fatalf("TLS probe: %+v %v", m, ok)
	}
	if m, ok := peer(other.File).probe(ctx, addr); ok {
		t.Fatalf("a peer that does not trust the broker's certificate got %+v", m)
	}
	plain := parseCore(t, `<cluster-user>cu</cluster-user><cluster-password>cp</cluster-password>`)
	if m, ok := (&haBroker{cfg: plain, log: h.log}).probe(ctx, addr); ok {
		t.Fatalf("a plain probe of a TLS acceptor answered %+v", m)
	}
}
