package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// lbOpts shape a two-live cluster with message load balancing.
type lbOpts struct {
	mode         string // message-load-balancing
	redistribute int    // redistribution-delay in ms; -1: off
	// policyA and policyB are the members' <ha-policy> content ("": none).
	policyA, policyB string
}

// newLBCluster writes the configurations of two live brokers (no HA
// policy) of one cluster connection, each naming the other as its static
// connector, on free ports, without starting anything: A is the pair's
// primary, B its backup (the names only).
func newLBCluster(t *testing.T, o lbOpts) *haPair {
	t.Helper()
	p := &haPair{t: t, work: t.TempDir()}
	p.primary = &haMember{brokerProc: newBrokerProc(t), name: "A"}
	p.backup = &haMember{brokerProc: newBrokerProc(t), name: "B"}
	write := func(m, peer *haMember, policy string) {
		if policy != "" {
			policy = "<ha-policy>" + policy + "</ha-policy>"
		}
		m.cfg = writeConfig(t, fmt.Sprintf(`%s<name>%s</name>
  <journal-type>NIO</journal-type>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%d</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://127.0.0.1:%d</connector>
    <connector name="peer">tcp://127.0.0.1:%d</connector>
  </connectors>
  <cluster-user>lb-cluster</cluster-user><cluster-password>lb-secret</cluster-password>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      <message-load-balancing>%s</message-load-balancing>
      <static-connectors><connector-ref>peer</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  <address-settings><address-setting match="#">
    <auto-delete-queues>false</auto-delete-queues>
    <redistribution-delay>%d</redistribution-delay>
  </address-setting></address-settings>`, policy, m.name, m.port, m.port, peer.port, o.mode, o.redistribute))
	}
	write(p.primary, p.backup, o.policyA)
	write(p.backup, p.primary, o.policyB)
	return p
}

// clusterPeer returns the first peer of m's /status cluster section (nil
// while none joined).
func clusterPeer(m *haMember) map[string]any {
	st := m.status()
	c, _ := st["cluster"].(map[string]any)
	if c == nil {
		return nil
	}
	ps, _ := c["peers"].([]any)
	if len(ps) == 0 {
		return nil
	}
	p, _ := ps[0].(map[string]any)
	return p
}

// queueDepth is the depth of queue name in m's /status (-1: absent).
func queueDepth(m *haMember, name string) int {
	qs, _ := m.status()["queues"].([]any)
	for _, q := range qs {
		if q, _ := q.(map[string]any); q["name"] == name {
			d, _ := q["depth"].(float64)
			return int(d)
		}
	}
	return -1
}

// waitFor polls cond (every 50 ms, up to a generous deadline) and fails
// with what when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * replLiveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, 3*replLiveness)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRemote waits until m sees its peer connected with at least queues
// remote queues and consumers remote consumers.
func waitRemote(t *testing.T, m *haMember, queues, consumers int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s sees %d remote queues with %d consumers", m.name, queues, consumers), func() bool {
		p := clusterPeer(m)
		if p == nil {
			return false
		}
		q, _ := p["remote_queues"].(float64)
		c, _ := p["remote_consumers"].(float64)
		return p["connected"] == true && int(q) >= queues && int(c) >= consumers
	})
}

// waitForwarded waits until m's forwarding queue is empty.
func waitForwarded(t *testing.T, m *haMember) {
	t.Helper()
	waitFor(t, m.name+" forwarded everything", func() bool {
		p := clusterPeer(m)
		n, _ := p["pending"].(float64)
		return p != nil && n == 0
	})
}

// produceOn sends count durable messages (IDs prefix-N) to queue lb on m
// and waits until every one is acknowledged.
func produceOn(t *testing.T, p *haPair, m *haMember, prefix string, count int) string {
	t.Helper()
	ids := filepath.Join(p.work, prefix+".p.ids")
	pr := p.startClient(prefix+".producer", "producer", "--url", m.URL(), "--destination", "queue://lb", "--count", strconv.Itoa(count),
		"--window", "32", "--id-prefix", prefix, "--ids-out", ids, "--size", "256")
	if code := pr.wait(t, "producer", 3*replLiveness); code != 0 {
		t.Fatalf("producer exit %d:\n%s", code, pr.errText())
	}
	return ids
}

// consumeOn starts a consumer of queue lb on m (count 0: until idle).
func consumeOn(p *haPair, m *haMember, name string, count int, idle time.Duration) (*clientProc, string) {
	ids := filepath.Join(p.work, name+".c.ids")
	args := []string{"consumer", "--url", m.URL(), "--destination", "queue://lb", "--idle", idle.String(), "--ids-out", ids}
	if count > 0 {
		args = append(args, "--count", strconv.Itoa(count))
	}
	return p.startClient(name+".consumer", args...), ids
}

func waitClient(t *testing.T, c *clientProc, what string) {
	t.Helper()
	if code := c.wait(t, what, 3*replLiveness); code != 0 {
		t.Fatalf("%s exit %d:\n%s", what, code, c.errText())
	}
}

// TestClusterOnDemand: ON_DEMAND, a producer on A and a consumer only on
// B: every message reaches B's consumer, once.
func TestClusterOnDemand(t *testing.T) {
	p := newLBCluster(t, lbOpts{mode: "ON_DEMAND", redistribute: -1})
	a, b := p.primary, p.backup
	a.start()
	b.start()
	cons, cids := consumeOn(p, b, "b", 0, 15*time.Second)
	waitRemote(t, a, 1, 1)
	const n = 3000
	pids := produceOn(t, p, a, "od", n)
	waitClient(t, cons, "B's consumer")
	r := checkIDs(t, pids, "od", n, cids)
	t.Logf("ON_DEMAND: %v; A: %v", r, clusterPeer(a))
	if !r.ok() || r.acked != n || r.consumed != n {
		t.Fatalf("ON_DEMAND: %v (want all %d consumed on B once)", r, n)
	}
	if d := queueDepth(a, "lb"); d != 0 {
		t.Fatalf("A's queue holds %d, want 0 (every message went to B's consumer)", d)
	}
}

// TestClusterStrict: STRICT, no consumer anywhere: the messages sent to
// A are split evenly between A's queue and B's; drained from both, every
// one is there once.
func TestClusterStrict(t *testing.T) {
	p := newLBCluster(t, lbOpts{mode: "STRICT", redistribute: -1})
	a, b := p.primary, p.backup
	a.start()
	b.start()
	mk, _ := consumeOn(p, b, "mk", 0, 500*time.Millisecond) // creates B's queue (kept: no auto-delete)
	waitClient(t, mk, "B's queue creation")
	waitRemote(t, a, 1, 0)
	const n = 2000
	pids := produceOn(t, p, a, "st", n)
	waitForwarded(t, a)
	da, db := queueDepth(a, "lb"), queueDepth(b, "lb")
	t.Logf("STRICT: A holds %d, B holds %d; A: %v", da, db, clusterPeer(a))
	if da != n/2 || db != n/2 {
		t.Fatalf("STRICT split %d on A and %d on B, want %d each", da, db, n/2)
	}
	ca, caids := consumeOn(p, a, "a", 0, 3*time.Second)
	cb, cbids := consumeOn(p, b, "b", 0, 3*time.Second)
	waitClient(t, ca, "A's drain")
	waitClient(t, cb, "B's drain")
	r := checkIDs(t, pids, "st", n, caids, cbids)
	if !r.ok() || r.consumed != n {
		t.Fatalf("STRICT: %v", r)
	}
}

// TestClusterRedistribution: redistribution-delay 0: a consumer on A
// takes part of A's messages and closes; a consumer on B then gets the
// rest (A's queue moves them there); none lost or duplicated.
func TestClusterRedistribution(t *testing.T) {
	p := newLBCluster(t, lbOpts{mode: "ON_DEMAND", redistribute: 0})
	a, b := p.primary, p.backup
	a.start()
	b.start()
	waitFor(t, "A joined B", func() bool { return clusterPeer(a) != nil })
	const n = 2000
	pids := produceOn(t, p, a, "rd", n) // no consumer anywhere: all on A
	ca, caids := consumeOn(p, a, "a", 300, 10*time.Second)
	waitClient(t, ca, "A's consumer")
	cb, cbids := consumeOn(p, b, "b", 0, 10*time.Second)
	waitClient(t, cb, "B's consumer")
	r := checkIDs(t, pids, "rd", n, caids, cbids)
	t.Logf("redistribution: %v; A: %v", r, clusterPeer(a))
	if !r.ok() || r.acked != n || r.consumed != n {
		t.Fatalf("redistribution: %v (want all %d consumed once)", r, n)
	}
	if got := len(readLines(t, cbids)); got < n-300 {
		t.Fatalf("B's consumer took %d, want the %d A's consumer left", got, n-300)
	}
}

// TestClusterKillSourceWhileForwarding: A is killed (SIGKILL) while it
// forwards to B's consumer, in the worst window (the test hook stalls A's
// bridge after B confirmed a batch A has not acked). Restarted, A sends
// that batch again: B's duplicate-ID cache drops it; nothing is lost or
// duplicated.
func TestClusterKillSourceWhileForwarding(t *testing.T) {
	p := newLBCluster(t, lbOpts{mode: "ON_DEMAND", redistribute: -1})
	a, b := p.primary, p.backup
	a.env = []string{"TANDEM_TEST_FORWARD_STALL_AFTER=3"}
	a.start()
	a.requireFileStore()
	b.start()
	cons, cids := consumeOn(p, b, "b", 0, 20*time.Second)
	waitRemote(t, a, 1, 1)
	const n = 3000
	skip := a.logSize()
	pids := produceOn(t, p, a, "kl", n)
	t.Logf("%s", a.waitLog(t, "forward stalled", skip))
	dupsBefore := stat(b, "duplicates")
	a.kill()
	a.env = nil
	a.start()
	waitForwarded(t, a)
	if d := stat(b, "duplicates") - dupsBefore; d == 0 {
		t.Fatalf("B dropped no duplicate: the stalled batch was not sent again")
	} else {
		t.Logf("B dropped %.0f resent messages", d)
	}
	waitClient(t, cons, "B's consumer")
	r := checkIDs(t, pids, "kl", n, cids)
	t.Logf("kill while forwarding: %v", r)
	if !r.ok() || r.acked != n || r.consumed != n {
		t.Fatalf("kill while forwarding: %v (want all %d consumed on B once)", r, n)
	}
}

// stat is a counter of m's /status stats.
func stat(m *haMember, name string) float64 {
	s, _ := m.status()["stats"].(map[string]any)
	v, _ := s[name].(float64)
	return v
}

// TestClusterScaleDownGivesBack: live-only A (scale-down to B) holds
// messages B forwarded to A's consumer (ON_DEMAND); A's consumer leaves
// and A is stopped: its scale-down gives them back to B, whose
// duplicate-ID cache holds their IDs from the producer's sends to B; B
// stores them (their origin is B), none lost or duplicated.
func TestClusterScaleDownGivesBack(t *testing.T) {
	p := newLBCluster(t, lbOpts{mode: "ON_DEMAND", redistribute: -1,
		policyA: `<live-only><scale-down><connectors><connector-ref>peer</connector-ref></connectors></scale-down></live-only>`,
		policyB: `<live-only><scale-down><enabled>false</enabled></scale-down></live-only>`})
	a, b := p.primary, p.backup
	a.start()
	a.requireFileStore()
	b.start()
	ca, caids := consumeOn(p, a, "a", 300, 20*time.Second)
	waitRemote(t, b, 1, 1)
	const n = 2000
	pids := produceOn(t, p, b, "sd", n)
	waitClient(t, ca, "A's consumer")
	waitForwarded(t, b)
	t.Logf("before the scale-down: A holds %d, B holds %d", queueDepth(a, "lb"), queueDepth(b, "lb"))
	skip := a.logSize()
	if code := a.stop(); code != 0 {
		t.Fatalf("A's SIGTERM: exit %d", code)
	}
	t.Logf("%s", a.waitLog(t, "scale-down complete", skip))
	cb, cbids := consumeOn(p, b, "b", 0, 3*time.Second)
	waitClient(t, cb, "B's drain")
	r := checkIDs(t, pids, "sd", n, caids, cbids)
	t.Logf("scale-down of a forwarding target: %v", r)
	if !r.ok() || r.acked != n || r.consumed != n {
		t.Fatalf("scale-down of a forwarding target: %v (want all %d consumed once)", r, n)
	}
}

// TestClusterScaleDownReclaim: B's bridge to A is stalled (the test hook)
// with a batch A stored and B did not ack, and more messages wait in B's
// forwarding queue for A, when A (live-only) scales down into B. A's
// scale-down moves its messages and duplicate-ID caches to B and tells B;
// B takes back what waited for A: the stalled batch is dropped (A moved
// it already), the rest stored. Every message is consumed once.
func TestClusterScaleDownReclaim(t *testing.T) {
	p := newLBCluster(t, lbOpts{mode: "ON_DEMAND", redistribute: -1,
		policyA: `<live-only><scale-down><connectors><connector-ref>peer</connector-ref></connectors></scale-down></live-only>`,
		policyB: `<live-only><scale-down><enabled>false</enabled></scale-down></live-only>`})
	a, b := p.primary, p.backup
	b.env = []string{"TANDEM_TEST_FORWARD_STALL_AFTER=2"}
	a.start()
	a.requireFileStore()
	b.start()
	// A's consumer stays until it has had nothing for a while (a count
	// would end it early under load, when the first batches are large:
	// B then keeps the rest local, ON_DEMAND, and never stalls).
	ca, caids := consumeOn(p, a, "a", 0, 20*time.Second)
	waitRemote(t, b, 1, 1)
	skipB := b.logSize()
	const n = 2000
	pids := produceOn(t, p, b, "rc", n)
	t.Logf("%s", b.waitLog(t, "forward stalled", skipB))
	waitClient(t, ca, "A's consumer")
	pending, _ := clusterPeer(b)["pending"].(float64)
	t.Logf("before the scale-down: A holds %d, B holds %d, %0.f wait in B for A", queueDepth(a, "lb"), queueDepth(b, "lb"), pending)
	if pending == 0 {
		t.Fatal("nothing waits in B for A: the test would not take anything back")
	}
	skipA := a.logSize()
	if code := a.stop(); code != 0 {
		t.Fatalf("A's SIGTERM: exit %d", code)
	}
	t.Logf("%s", a.waitLog(t, "scale-down complete", skipA))
	t.Logf("%s", b.waitLog(t, "what waited for it goes to its target", skipB))
	cb, cbids := consumeOn(p, b, "b", 0, 3*time.Second)
	waitClient(t, cb, "B's drain")
	r := checkIDs(t, pids, "rc", n, caids, cbids)
	t.Logf("reclaim after a scale-down: %v; B dropped %.0f duplicates", r, stat(b, "duplicates"))
	if !r.ok() || r.acked != n || r.consumed != n {
		t.Fatalf("reclaim after a scale-down: %v (want all %d consumed once)", r, n)
	}
}

// TestClusterKillSourceRandom: A is killed (SIGKILL) at a random moment
// while a producer sends to it and its bridge forwards to B's consumer;
// restarted, A serves the producer again (it reconnects and resends what
// had no answer, with the same duplicate IDs) and forwards the rest.
// Nothing acknowledged is lost, nothing duplicated.
func TestClusterKillSourceRandom(t *testing.T) {
	p := newLBCluster(t, lbOpts{mode: "ON_DEMAND", redistribute: -1})
	a, b := p.primary, p.backup
	a.start()
	a.requireFileStore()
	b.start()
	cons, cids := consumeOn(p, b, "b", 0, 20*time.Second)
	waitRemote(t, a, 1, 1)
	const n = 3000
	pids := filepath.Join(p.work, "kr.p.ids")
	pr := p.startClient("kr.producer", "producer", "--url", a.URL()+"?reconnectAttempts=-1", "--destination", "queue://lb",
		"--count", strconv.Itoa(n), "--window", "16", "--rate", "800", "--id-prefix", "kr", "--ids-out", pids, "--size", "256")
	at := 300 + rand.IntN(1200)
	waitFor(t, fmt.Sprintf("A forwarded %d", at), func() bool {
		f, _ := clusterPeer(a)["forwarded"].(float64)
		return int(f) >= at
	})
	a.kill()
	t.Logf("A killed after forwarding at least %d", at)
	a.start()
	waitClient(t, pr, "producer")
	waitForwarded(t, a)
	waitClient(t, cons, "B's consumer")
	r := checkIDs(t, pids, "kr", n, cids)
	t.Logf("random kill while forwarding: %v", r)
	if !r.ok() || r.acked != n || r.consumed != n {
		t.Fatalf("random kill while forwarding: %v (want all %d acknowledged and consumed on B once)", r, n)
	}
}
