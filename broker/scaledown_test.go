package broker

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/internal/testenv"
)

// runningBroker is a broker run in this process by RunContext.
type runningBroker struct {
	t      *testing.T
	cfg    *config.Config
	port   int
	cancel context.CancelFunc
	done   chan int
}

// brokerXML is a broker on port with its data in dir, a connector
// "peer" to peerPort, a cluster connection probing it, and policy.
func brokerXML(name, dir string, port, mgmt, peerPort int, policy string) string {
	return fmt.Sprintf(`<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">
  <name>%[1]s</name>
  <journal-type>NIO</journal-type>
  <journal-directory>%[2]s/journal</journal-directory>
  <bindings-directory>%[2]s/bindings</bindings-directory>
  <journal-file-size>1M</journal-file-size>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%[3]d</acceptor></acceptors>
  <management-http-address>127.0.0.1:%[4]d</management-http-address>
  <connectors>
    <connector name="artemis">tcp://127.0.0.1:%[3]d</connector>
    <connector name="peer">tcp://127.0.0.1:%[5]d</connector>
  </connectors>
  <cluster-user>cu</cluster-user><cluster-password>cp</cluster-password>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>100</retry-interval>
      <static-connectors><connector-ref>peer</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  %[6]s
</core></configuration>`, name, dir, port, mgmt, peerPort, policy)
}

func loadXML(t *testing.T, xml string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "broker.xml")
	if err := os.WriteFile(p, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startBroker runs cfg with RunContext and waits until its acceptor
// answers.
func startBroker(t *testing.T, cfg *config.Config, port int) *runningBroker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &runningBroker{t: t, cfg: cfg, port: port, cancel: cancel, done: make(chan int, 1)}
	go func() { b.done <- RunContext(ctx, cfg) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		select {
		case code := <-b.done:
			t.Fatalf("broker %s exited with %d during start", cfg.Name, code)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker %s did not open port %d", cfg.Name, port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { b.stop() })
	return b
}

// stop asks for a clean stop and returns the exit status (-1 when it was
// stopped before).
func (b *runningBroker) stop() int {
	if b.cancel == nil {
		return -1
	}
	b.cancel()
	b.cancel = nil
	select {
	case code := <-b.done:
		return code
	case <-time.After(60 * time.Second):
		b.t.Fatalf("broker %s did not stop within 60s", b.cfg.Name)
		return -1
	}
}

func (b *runningBroker) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// TestLiveOnlyScaleDown: a live-only broker stopped cleanly moves its
// messages (a queue with a consumer holding unacked deliveries, a topic's
// durable subscription) to the broker its <scale-down><connectors> names,
// and an HA client connected to it alone goes on at the target, where
// every message is, once.
func TestLiveOnlyScaleDown(t *testing.T) {
	pS, pT := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	tcfg := loadXML(t, brokerXML("target", filepath.Join(dir, "t"), pT, testenv.FreePort(t), pS, ""))
	scfg := loadXML(t, brokerXML("source", filepath.Join(dir, "s"), pS, testenv.FreePort(t), pT,
		`<ha-policy><live-only><scale-down><connectors><connector-ref>peer</connector-ref></connectors>
		<commit-interval>7</commit-interval></scale-down></live-only></ha-policy>`))
	tb := startBroker(t, tcfg, pT)
	sb := startBroker(t, scfg, pS)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sb.url()+"?ha=true&reconnectAttempts=-1&retryInterval=50&maxRetryInterval=200")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.CreateConsumer(ctx, client.Topic("news"), client.QueueName("keep"), client.DurableQueue(true))
	if err != nil {
		t.Fatal(err)
	}
	sub.Close(ctx)
	p := s.CreateProducer(client.Queue("orders"))
	const n = 50
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("o-%d", i)
		if err := p.Send(ctx, &client.Message{Body: []byte(id), DuplicateID: id}); err != nil {
			t.Fatal(err)
		}
	}
	tp := s.CreateProducer(client.Topic("news"))
	if err := tp.Send(ctx, &client.Message{Body: []byte("n-1"), DuplicateID: "n-1"}); err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateConsumer(ctx, client.Queue("orders"), client.Credit(3))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // delivered, never acked: they move with a delivery count
		if _, err := k.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if code := sb.stop(); code != 0 {
		t.Fatalf("the source's clean stop: exit %d", code)
	}
	// The client follows the pushed topology to the target.
	if err := p.Send(ctx, &client.Message{Body: []byte("o-after"), DuplicateID: "o-after"}); err != nil {
		t.Fatalf("send after the scale-down: %v", err)
	}
	if c.Addr() != fmt.Sprintf("127.0.0.1:%d", pT) {
		t.Fatalf("the client is on %s, want the target", c.Addr())
	}
	acked := map[string]int{}
	for len(acked) < n+1 {
		m, err := k.Receive(ctx)
		if err != nil {
			t.Fatalf("acked %d of %d on the target: %v", len(acked), n+1, err)
		}
		if err := k.Ack(ctx, m); err != nil {
			continue // delivered by the source before it stopped: it comes again from the target
		}
		acked[string(m.Body)]++
		if acked[string(m.Body)] > 1 {
			t.Fatalf("%s acknowledged twice", m.Body)
		}
	}
	ks, err := s.CreateConsumer(ctx, client.Topic("news"), client.QueueName("keep"), client.DurableQueue(true))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ks.Receive(ctx); err != nil || string(m.Body) != "n-1" {
		t.Fatalf("the subscription's message on the target: %v %v", m, err)
	}
	if code := tb.stop(); code != 0 {
		t.Fatalf("target stop: exit %d", code)
	}
}

// TestScaleDownGroupMismatch: with <group-name>, a broker of another
// group is not a target: the source stops without scaling down, and its
// messages are still in its journal at its next start.
func TestScaleDownGroupMismatch(t *testing.T) {
	old := targetSearch
	targetSearch = time.Second
	t.Cleanup(func() { targetSearch = old }) // after the brokers' cleanups
	pS, pT := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	tcfg := loadXML(t, brokerXML("target", filepath.Join(dir, "t"), pT, testenv.FreePort(t), pS,
		`<ha-policy><live-only><scale-down><group-name>g2</group-name><enabled>false</enabled></scale-down></live-only></ha-policy>`))
	sxml := brokerXML("source", filepath.Join(dir, "s"), pS, testenv.FreePort(t), pT,
		`<ha-policy><live-only><scale-down><group-name>g1</group-name></scale-down></live-only></ha-policy>`)
	startBroker(t, tcfg, pT)
	sb := startBroker(t, loadXML(t, sxml), pS)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sb.url())
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := s.CreateProducer(client.Queue("q"))
	for i := 0; i < 5; i++ {
		if err := p.Send(ctx, &client.Message{Body: []byte("x"), DuplicateID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if code := sb.stop(); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	sb = startBroker(t, loadXML(t, sxml), pS)
	c, err = client.Dial(ctx, sb.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var st struct{ Depth int }
	if err := c.Manage(ctx, "queue.stat", map[string]string{"name": "q"}, &st); err != nil {
		t.Fatal(err)
	}
	if st.Depth != 5 {
		t.Fatalf("the source kept %d messages, want its 5 (no target in its group)", st.Depth)
	}
}
