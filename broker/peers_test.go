package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/wire"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func parseCore(t *testing.T, core string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.xml", strings.NewReader(`<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">`+core+`</core></configuration>`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestHAAnnounceURL: the cluster connection's connector wins; else the
// first acceptor, a wildcard host replaced by the host name.
func TestHAAnnounceURL(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct{ core, want string }{
		{`<acceptors><acceptor name="a">tcp://0.0.0.0:61616</acceptor></acceptors>`, "tcp://" + net.JoinHostPort(host, "61616")},
		{`<acceptors><acceptor name="a">tcp://127.0.0.1:5000</acceptor></acceptors>`, "tcp://127.0.0.1:5000"},
		{`<acceptors><acceptor name="a">tcp://0.0.0.0:61616</acceptor></acceptors>
		  <connectors><connector name="me">tcp://broker-a:61616</connector></connectors>
		  <cluster-connections><cluster-connection name="c"><connector-ref>me</connector-ref></cluster-connection></cluster-connections>`, "tcp://broker-a:61616"},
	} {
		if got := haAnnounceURL(parseCore(t, tc.core)); got != tc.want {
			t.Errorf("haAnnounceURL = %q, want %q\n%s", got, tc.want, tc.core)
		}
	}
}

// TestHARefuserAndProbe: a waiting broker refuses a client with
// CodeUnavailable and answers a cluster probe with its own member first.
func TestHARefuserAndProbe(t *testing.T) {
	port := freeTCPPort(t)
	cfg := parseCore(t, fmt.Sprintf(`<acceptors><acceptor name="a">tcp://127.0.0.1:%d</acceptor></acceptors>
	  <security><users><user name="u" password="p" roles="amq"/></users></security>
	  <cluster-user>cu</cluster-user><cluster-password>cp</cluster-password>`, port))
	log := slog.New(slog.DiscardHandler)
	mgr, err := lockfile.Open(t.TempDir(), lockfile.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
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
	defer h.closeRefuser()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	_, err = client.Dial(ctx, "tcp://"+addr, client.WithCredentials("u", "p"))
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != wire.CodeUnavailable {
		t.Fatalf("client dial: %v, want CodeUnavailable", err)
	}
	m, ok := h.probe(ctx, addr)
	if !ok || m.Role != "backup" || m.State != "waiting" || m.NodeID != h.nodeID || m.URL != "tcp://"+addr {
		t.Fatalf("probe = %+v, %v; want this backup waiting", m, ok)
	}
	// Wrong cluster credentials: refused like a client.
	wrong := *cfg
	wrong.ClusterPassword = "wrong"
	if m, ok := (&haBroker{cfg: &wrong}).probe(ctx, addr); ok {
		t.Fatalf("probe with a wrong cluster password answered %+v", m)
	}
	// No listener: nothing.
	h.closeRefuser()
	if _, ok := h.probe(ctx, addr); ok {
		t.Fatal("probe of a closed port answered")
	}
}
