package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// colocatedLive is one live of a colocated cluster: its process, its
// shared store, and the port its backup (hosted by the other live) serves
// on.
type colocatedLive struct {
	*haMember
	shared     string
	backupPort int
}

// newColocatedPair writes two lives that back each other up with
// colocated shared-store backups (each hosts the other's), on free
// ports: each live's backup-port-offset shifts its acceptor to a port
// picked free.
func newColocatedPair(t *testing.T) (a, b *colocatedLive, work string) {
	t.Helper()
	work = t.TempDir()
	mk := func(name string) *colocatedLive {
		m := &haMember{brokerProc: newBrokerProc(t), name: name}
		q := freePort(t)
		for q <= m.port {
			q = freePort(t)
		}
		return &colocatedLive{haMember: m, shared: filepath.Join(t.TempDir(), "shared"), backupPort: q}
	}
	a, b = mk("live1"), mk("live2")
	write := func(m, peer *colocatedLive) {
		m.cfg = writeConfig(t, fmt.Sprintf(`<name>%[1]s</name>
  <journal-type>NIO</journal-type>
  <journal-directory>%[2]s/journal</journal-directory>
  <bindings-directory>%[2]s/bindings</bindings-directory>
  <paging-directory>%[2]s/paging</paging-directory>
  <large-messages-directory>%[2]s/large-messages</large-messages-directory>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%[3]d</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://127.0.0.1:%[3]d</connector>
    <connector name="peer">tcp://127.0.0.1:%[4]d</connector>
  </connectors>
  <cluster-user>colo</cluster-user><cluster-password>colo-secret</cluster-password>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      <static-connectors><connector-ref>peer</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  <ha-policy><shared-store><colocated>
    <request-backup>true</request-backup>
    <max-backups>1</max-backups>
    <backup-request-retries>-1</backup-request-retries>
    <backup-request-retry-interval>300</backup-request-retry-interval>
    <backup-port-offset>%[5]d</backup-port-offset>
    <master><failover-on-shutdown>true</failover-on-shutdown></master>
    <slave><allow-failback>true</allow-failback><restart-backup>true</restart-backup></slave>
  </colocated></shared-store></ha-policy>`, m.name, m.shared, m.port, peer.port, m.backupPort-m.port))
	}
	write(a, b)
	write(b, a)
	return a, b, work
}

// colocatedState is what /status says of a live's colocated backups.
type colocatedState struct {
	state, backupHost string
	hosted            []map[string]any
}

func (m *colocatedLive) colocated() colocatedState {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := fetchStatus(ctx, m.httpPort)
	if err != nil {
		return colocatedState{}
	}
	var cs colocatedState
	cs.state, _ = st["state"].(string)
	cs.backupHost, _ = st["colocated_backup_host"].(string)
	hs, _ := st["colocated_backups"].([]any)
	for _, h := range hs {
		if x, ok := h.(map[string]any); ok {
			cs.hosted = append(cs.hosted, x)
		}
	}
	return cs
}

// waitColocated polls /status (liveness, 60 s) until ok.
func waitColocated(t *testing.T, m *colocatedLive, what string, ok func(colocatedState) bool) colocatedState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cs := m.colocated()
		if ok(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s within 60s: %+v", m.name, what, cs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestColocatedKillLive (R40-R43): two lives back each other up with
// colocated shared-store backups. Under producer and consumer load on
// both, live1 is killed (SIGKILL): its backup, running in live2's
// process, takes over live1's store on the offset port and live1's
// clients (which knew live1's address only; the topology told them where
// its backup is) go on there; live2 keeps serving its own clients
// throughout. Nothing is lost or duplicated on either. Restarted, live1
// takes its store back (failback) and is backed up again by the same
// hosted backup.
func TestColocatedKillLive(t *testing.T) {
	l1, l2, work := newColocatedPair(t)
	l1.start()
	l1.requireFileStore()
	l2.start()
	hosted := func(cs colocatedState) bool { return len(cs.hosted) == 1 && cs.hosted[0]["state"] == "waiting" }
	for _, m := range []*colocatedLive{l1, l2} {
		if st := m.status(); st["policy"] != "colocated" {
			t.Fatalf("%s: /status policy %v, want colocated", m.name, st["policy"])
		}
		cs := waitColocated(t, m, "hosting the other's waiting backup", hosted)
		t.Logf("%s hosts %v", m.name, cs.hosted)
		waitColocated(t, m, "backed up", func(cs colocatedState) bool { return cs.backupHost != "" })
	}
	// live1's clients learn its backup from the topology: wait until it
	// is in live1's peers (what its Welcome carries).
	waitPeer(t, l1.haMember, fmt.Sprintf("tcp://127.0.0.1:%d", l1.backupPort))

	p := &haPair{t: t, work: work}
	urlOf := func(m *colocatedLive) string {
		return fmt.Sprintf("tcp://127.0.0.1:%d?ha=true&reconnectAttempts=-1", m.port)
	}
	type run struct {
		prefix     string
		count      int
		prod, cons *clientProc
		pids, cids string
	}
	start := func(m *colocatedLive, prefix string, count int) *run {
		r := &run{prefix: prefix, count: count, pids: filepath.Join(work, prefix+".p.ids"), cids: filepath.Join(work, prefix+".c.ids")}
		r.prod = p.startClient(prefix+".producer", "producer", "--url", urlOf(m), "--destination", "queue://"+prefix,
			"--count", strconv.Itoa(count), "--window", strconv.Itoa(1+rand.IntN(16)), "--rate", strconv.Itoa(200+rand.IntN(200)),
			"--id-prefix", prefix, "--ids-out", r.pids, "--size", "256")
		r.cons = p.startClient(prefix+".consumer", "consumer", "--url", urlOf(m), "--destination", "queue://"+prefix,
			"--idle", "3s", "--ids-out", r.cids)
		return r
	}
	r1 := start(l1, "c1", 1500)
	r2 := start(l2, "c2", 1500)
	waitLines(t, r1.pids, 300)
	l1.kill()
	t.Logf("killed live1 after %d acknowledged sends", len(readLines(t, r1.pids)))
	waitColocated(t, l2, "serving live1's store with the backup it hosts", func(cs colocatedState) bool {
		return len(cs.hosted) == 1 && cs.hosted[0]["state"] == "active"
	})
	finish := func(r *run, drainURL string) {
		t.Helper()
		if code := r.prod.wait(t, r.prefix+" producer", 3*replLiveness); code != 0 {
			t.Fatalf("%s producer exit %d:\n%s", r.prefix, code, r.prod.errText())
		}
		if code := r.cons.wait(t, r.prefix+" consumer", 3*replLiveness); code != 0 {
			t.Logf("%s consumer exit %d (the drain takes the rest):\n%s", r.prefix, code, r.cons.errText())
		}
		dids := filepath.Join(work, r.prefix+".d.ids")
		d := p.startClient(r.prefix+".drain", "consumer", "--url", drainURL, "--destination", "queue://"+r.prefix,
			"--idle", "2s", "--ids-out", dids)
		if code := d.wait(t, r.prefix+" drain", 3*replLiveness); code != 0 {
			t.Fatalf("%s drain exit %d:\n%s", r.prefix, code, d.errText())
		}
		rep := checkIDs(t, r.pids, r.prefix, r.count, r.cids, dids)
		t.Logf("%s: %v", r.prefix, rep)
		if !rep.ok() || rep.acked != r.count {
			t.Fatalf("%s: %v (acknowledged %d of %d)", r.prefix, rep, rep.acked, r.count)
		}
	}
	finish(r1, fmt.Sprintf("tcp://127.0.0.1:%d?ha=true&reconnectAttempts=-1", l1.backupPort))
	finish(r2, urlOf(l2))
	if !l2.running() {
		t.Fatal("live2 stopped")
	}
	if cs := l2.colocated(); cs.state != "active" {
		t.Fatalf("live2 is %q after live1's kill, want active", cs.state)
	}
	// live1 returns: the backup hands its store back (allow-failback)
	// and waits again (restart-backup), and live1 is backed up by it.
	l1.start()
	waitColocated(t, l1, "active again", func(cs colocatedState) bool { return cs.state == "active" })
	waitColocated(t, l2, "hosting live1's backup waiting again", hosted)
	waitColocated(t, l1, "backed up again", func(cs colocatedState) bool { return cs.backupHost != "" })
}

// waitPeer waits (60 s) until m's /status lists a peer at url.
func waitPeer(t *testing.T, m *haMember, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := fetchStatus(ctx, m.httpPort)
		cancel()
		if err == nil {
			ps, _ := st["peers"].([]any)
			for _, p := range ps {
				if x, ok := p.(map[string]any); ok && x["url"] == url && x["state"] != "down" {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no peer %s in /status within 60s", m.name, url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
