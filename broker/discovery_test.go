package broker

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/internal/testenv"
)

// TestDiscoveryLoopback: two listeners of one discovery group on this
// machine (the loopback broadcast address) both hear a broker's
// broadcast group; a datagram that is not an announcement is counted and
// ignored; the broker's own node ID is never a candidate; an entry goes
// once refresh-timeout passes without an announcement.
func TestDiscoveryLoopback(t *testing.T) {
	port := testenv.FreePort(t)
	log := slog.New(slog.DiscardHandler)
	dg := config.DiscoveryGroup{Name: "dg", GroupAddress: "127.255.255.255", GroupPort: port, RefreshTimeout: 300 * time.Millisecond}
	d1, err := listenDiscovery(dg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d1.close()
	d2, err := listenDiscovery(dg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.close()
	cfg := config.Default()
	cfg.Name = "b1"
	cfg.Connectors = []config.Connector{{Name: "me", Scheme: "tcp", Host: "127.0.0.1", Port: 61699}}
	cfg.BroadcastGroups = []config.BroadcastGroup{{Name: "bg", GroupAddress: "127.255.255.255", GroupPort: port,
		BroadcastPer: 50 * time.Millisecond, ConnectorRefs: []string{"me"}}}
	bc, err := startBroadcast(cfg, "node-1", log)
	if err != nil {
		t.Fatal(err)
	}
	junk, err := net.Dial("udp4", fmt.Sprintf("127.255.255.255:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	waitFor(t, "both listeners hear the broadcast", func() bool {
		junk.Write([]byte("not an announcement"))
		return slices.Equal(d1.addresses(), []string{"127.0.0.1:61699"}) && slices.Equal(d2.addresses(), []string{"127.0.0.1:61699"})
	})
	waitFor(t, "garbage counted", func() bool {
		d1.mu.Lock()
		defer d1.mu.Unlock()
		return d1.bad > 0
	})
	d2.setSelf("node-1")
	if a := d2.addresses(); len(a) != 0 {
		t.Fatalf("a listener lists its own node: %v", a)
	}
	bc.stop()
	waitFor(t, "the entry expires", func() bool { return len(d1.addresses()) == 0 })
}

// waitFor polls cond (every 20 ms, up to 30 s: liveness, not timing).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
