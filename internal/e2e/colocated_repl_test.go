package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// newColocatedReplCluster writes three lives that back each other up with
// colocated replicating backups (each hosts one backup of another) and
// vote with each other (the quorum vote needs three lives): the seed's
// etc/examples/colocated-replication.xml with its ports, paths and
// timings rewritten. Each live's static connectors name the other two in
// ring order (live1: live2, live3; live2: live3, live1; ...), so each
// asks the next one first. backup-port-offset shifts each live's
// acceptor to a port picked free.
func newColocatedReplCluster(t *testing.T) (lives []*colocatedLive, work string) {
	t.Helper()
	work = t.TempDir()
	for i := range 3 {
		m := &haMember{brokerProc: newBrokerProc(t), name: fmt.Sprintf("live%d", i+1)}
		q := freePort(t)
		for q <= m.port {
			q = freePort(t)
		}
		lives = append(lives, &colocatedLive{haMember: m, backupPort: q})
	}
	for i, m := range lives {
		next, after := lives[(i+1)%3], lives[(i+2)%3]
		m.cfg = writeConfig(t, fmt.Sprintf(`<name>%[1]s</name>
  <persistence-enabled>true</persistence-enabled>
  <journal-type>NIO</journal-type>
  <journal-file-size>1M</journal-file-size>
  <journal-min-files>2</journal-min-files>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%[2]d</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://127.0.0.1:%[2]d</connector>
    <connector name="peer">tcp://127.0.0.1:%[3]d</connector>
    <connector name="peer2">tcp://127.0.0.1:%[4]d</connector>
    <connector name="remote-connector">tcp://remote.example.com:61616</connector>
  </connectors>
  <cluster-user>tandem-cluster</cluster-user>
  <cluster-password>colo-secret</cluster-password>
  <cluster-connections>
    <cluster-connection name="tandem-cluster">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      <static-connectors><connector-ref>peer</connector-ref><connector-ref>peer2</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  <connection-ttl-override>4000</connection-ttl-override>
  <ha-policy><replication><colocated>
    <request-backup>true</request-backup>
    <max-backups>1</max-backups>
    <backup-request-retries>-1</backup-request-retries>
    <backup-request-retry-interval>1000</backup-request-retry-interval>
    <backup-port-offset>%[5]d</backup-port-offset>
    <excludes><connector-ref>remote-connector</connector-ref></excludes>
    <primary>
      <group-name>colocated-group</group-name>
      <check-for-active-server>true</check-for-active-server>
      <vote-retry-wait>%[6]d</vote-retry-wait>
      <quorum-vote-wait>5</quorum-vote-wait>
    </primary>
    <backup>
      <group-name>colocated-group</group-name>
      <allow-failback>true</allow-failback>
      <max-saved-replicated-journals-size>2</max-saved-replicated-journals-size>
      <vote-retry-wait>%[6]d</vote-retry-wait>
      <quorum-vote-wait>5</quorum-vote-wait>
    </backup>
  </colocated></replication></ha-policy>`, m.name, m.port, next.port, after.port, m.backupPort-m.port, quorumVoteRetryWaitMS))
	}
	return lives, work
}

// hostedReplState is the replication state of a hosted backup in /status.
func hostedReplState(b map[string]any) string {
	r, _ := b["replication"].(map[string]any)
	s, _ := r["state"].(string)
	return s
}

// TestColocatedReplicationKillLive (R40-R43, colocated replication):
// three lives each host a replicating backup of another and are backed
// up by one; the backups vote with the lives. Under producer and
// consumer load on all three, one live is SIGKILLed: its backup, in
// another live's process, wins the vote and serves on the offset port;
// the killed live's HA clients (which knew its address only) go on there
// and the other lives' clients keep being acknowledged. Nothing is lost,
// duplicated or unexpected. Restarted, the killed live syncs from its
// backup and takes over again (check-for-active-server, allow-failback),
// and its backup replicates from it again.
func TestColocatedReplicationKillLive(t *testing.T) {
	lives, work := newColocatedReplCluster(t)
	for _, m := range lives {
		m.start()
	}
	synced := func(cs colocatedState) bool {
		return cs.state == "active" && cs.backupHost != "" && len(cs.hosted) == 1 && hostedReplState(cs.hosted[0]) == "synced"
	}
	hostOf := map[string]*colocatedLive{} // requester node -> host
	for _, m := range lives {
		cs := waitColocated(t, m, "active, backed up, and hosting a synced backup", synced)
		t.Logf("%s hosts %v; its own backup runs in %s", m.name, cs.hosted, cs.backupHost)
		hostOf[cs.hosted[0]["requester_node"].(string)] = m
		if st := m.status(); st["policy"] != "colocated" {
			t.Fatalf("%s: /status policy %v, want colocated", m.name, st["policy"])
		}
		if b := cs.hosted[0]; b["role"] != "backup" || b["state"] == "active" || !strings.HasPrefix(b["name"].(string), "colocated_backup_") {
			t.Fatalf("%s: hosted backup %v", m.name, b)
		}
	}
	victim := lives[0]
	host := hostOf[victim.status()["node_id"].(string)]
	if host == nil || host == victim {
		t.Fatalf("no other live hosts %s's backup: %v", victim.name, hostOf)
	}
	// The victim's clients learn its backup from the topology.
	waitPeer(t, victim.haMember, fmt.Sprintf("tcp://127.0.0.1:%d", victim.backupPort))

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
	var runs []*run
	for i, m := range lives {
		n := 1000
		if m == victim {
			n = 2000
		}
		runs = append(runs, start(m, fmt.Sprintf("c%d", i+1), n))
	}
	waitLines(t, runs[0].pids, 300)
	victim.kill()
	t.Logf("killed %s after %d acknowledged sends; its backup runs in %s", victim.name, len(readLines(t, runs[0].pids)), host.name)
	took := waitColocated(t, host, "serving the killed live's data with the backup it hosts", func(cs colocatedState) bool {
		return cs.state == "active" && len(cs.hosted) == 1 && cs.hosted[0]["state"] == "active"
	})
	tookEpoch, _ := took.hosted[0]["epoch"].(float64)
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
	finish(runs[0], fmt.Sprintf("tcp://127.0.0.1:%d?ha=true&reconnectAttempts=-1", victim.backupPort))
	for i, m := range lives[1:] {
		finish(runs[i+1], urlOf(m))
		if cs := m.colocated(); cs.state != "active" {
			t.Fatalf("%s is %q after %s's kill, want active", m.name, cs.state, victim.name)
		}
	}

	// The killed live returns: it syncs from its backup, which hands
	// over (failback); the backup replicates from it again.
	victim.start()
	waitColocated(t, victim, "active again", func(cs colocatedState) bool { return cs.state == "active" })
	if e, _ := victim.status()["epoch"].(float64); e <= tookEpoch {
		t.Fatalf("%s serves again at epoch %v, not after its backup's %v: it did not take over from it", victim.name, e, tookEpoch)
	}
	waitColocated(t, host, "hosting the returned live's backup, synced again", func(cs colocatedState) bool {
		return len(cs.hosted) == 1 && cs.hosted[0]["state"] != "active" && hostedReplState(cs.hosted[0]) == "synced"
	})
	waitColocated(t, victim, "backed up again", func(cs colocatedState) bool { return cs.backupHost != "" })
}
