package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// The quorum vote fault tests (issue 14): three replicated pairs (six
// `tandem run` processes) with <replication> and no <manager>: every
// broker votes, the electorate is the six, a decision needs four.
// vote-retry-wait is 2 s (the lease a live holds at the voters), so a
// failover takes about that.

const quorumVoteRetryWaitMS = 2000

// quorumCluster is n replicated pairs coordinated by the quorum vote.
type quorumCluster struct {
	t     *testing.T
	pairs []*replPair
	// isolate: pair 0's primary reaches the others, and they (its
	// backup and its clients too) reach it, only through proxies (in:
	// in front of it, its announced address; out: one per other broker,
	// used by it alone).
	in  *testenv.Proxy
	out []*testenv.Proxy
}

// Proxy modes of newQuorumCluster for pair 0's primary.
const (
	quorumDirect  = iota
	quorumIsolate // every connection to or from it goes through proxies (in, out)
	quorumLink    // it announces the proxy in: its backup (and clients that learn the topology) go through it; votes do not
	quorumHeard   // no static connectors: the brokers find each other on a UDP discovery group; quorum-size 4
)

// newQuorumCluster writes the configurations of n pairs without starting
// anything; mode puts pair 0's primary behind proxies.
func newQuorumCluster(t *testing.T, n int, mode int) *quorumCluster {
	isolate := mode == quorumIsolate
	t.Helper()
	c := &quorumCluster{t: t}
	var all []*haMember
	for i := range n {
		p := &replPair{haPair: &haPair{t: t, work: t.TempDir()}, o: replOpts{journalType: "NIO", fileSize: "1M"},
			activeBy: map[uint64]string{}, group: fmt.Sprintf("%s-%d", testenv.UniqueName(t), i)}
		p.primary = &haMember{brokerProc: newBrokerProc(t), name: fmt.Sprintf("primary%d", i)}
		p.backup = &haMember{brokerProc: newBrokerProc(t), name: fmt.Sprintf("backup%d", i)}
		c.pairs = append(c.pairs, p)
		all = append(all, p.primary, p.backup)
	}
	addr := func(m *haMember) string { return fmt.Sprintf("127.0.0.1:%d", m.port) }
	reach := map[*haMember]string{} // how the others reach a member
	announce := map[*haMember]string{}
	for _, m := range all {
		reach[m], announce[m] = addr(m), addr(m)
	}
	p0 := c.pairs[0].primary
	udp := freePort(t)
	if mode != quorumDirect && mode != quorumHeard {
		c.in = testenv.StartProxy(t, addr(p0))
		announce[p0] = c.in.Addr()
	}
	if isolate {
		reach[p0] = c.in.Addr()
	}
	for _, p := range c.pairs {
		for _, m := range p.members() {
			var conns, refs strings.Builder
			for k, o := range all {
				if o == m {
					continue
				}
				target := reach[o]
				if m == p0 && isolate {
					px := testenv.StartProxy(t, addr(o))
					c.out = append(c.out, px)
					target = px.Addr()
				}
				fmt.Fprintf(&conns, "    <connector name=\"b%d\">tcp://%s</connector>\n", k, target)
				fmt.Fprintf(&refs, "<connector-ref>b%d</connector-ref>", k)
			}
			role := "primary"
			extra := "<check-for-live-server>true</check-for-live-server><vote-on-replication-failure>true</vote-on-replication-failure>"
			if m == p.backup {
				role = "backup"
				extra = "<allow-failback>true</allow-failback>"
			}
			cluster := fmt.Sprintf("<static-connectors>%s</static-connectors>", refs.String())
			groups := ""
			if mode == quorumHeard {
				conns.Reset()
				cluster = `<discovery-group-ref discovery-group-name="dg"/>`
				groups = fmt.Sprintf(`<broadcast-groups><broadcast-group name="bg"><group-address>127.255.255.255</group-address>
      <group-port>%d</group-port><broadcast-period>200</broadcast-period><connector-ref>artemis</connector-ref></broadcast-group></broadcast-groups>
  <discovery-groups><discovery-group name="dg"><group-address>127.255.255.255</group-address><group-port>%d</group-port>
      <refresh-timeout>3000</refresh-timeout></discovery-group></discovery-groups>`, udp, udp)
				extra += "<quorum-size>4</quorum-size>"
			}
			m.cfg = writeConfig(t, fmt.Sprintf(`<name>%s</name>
  <persistence-enabled>true</persistence-enabled>
  <journal-type>NIO</journal-type>
  <journal-file-size>1M</journal-file-size>
  <journal-min-files>2</journal-min-files>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%d</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://%s</connector>
%s  </connectors>
  <cluster-user>tandem-cluster</cluster-user>
  <cluster-password>e2e-secret</cluster-password>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      %s
    </cluster-connection>
  </cluster-connections>
  %s
  <connection-ttl-override>4000</connection-ttl-override>
  <ha-policy><replication><%s>
    <group-name>%s</group-name>
    %s
    <vote-retries>12</vote-retries>
    <vote-retry-wait>%d</vote-retry-wait>
    <quorum-vote-wait>5</quorum-vote-wait>
  </%s></replication></ha-policy>`, m.name, m.port, announce[m], conns.String(), cluster, groups, role, p.group, extra,
				quorumVoteRetryWaitMS, role))
		}
		p.startPoller()
	}
	return c
}

// startAll starts every broker (a primary needs a majority of the six to
// activate: the backups vote too), waits until each primary serves and
// each backup is its synced replica.
func (c *quorumCluster) startAll() {
	c.t.Helper()
	for _, p := range c.pairs {
		p.primary.start()
		p.backup.start()
	}
	for _, p := range c.pairs {
		p.primary.waitActive(c.t)
	}
	for _, p := range c.pairs {
		p.waitSynced(p.primary)
	}
}

func (c *quorumCluster) check() {
	for _, p := range c.pairs {
		p.checkActivations()
	}
}

// TestQuorumKillLive (F1, F15 with the quorum vote): three pairs; pair 0
// under an HA producer and a consumer; its live is killed with SIGKILL:
// the backup wins the vote (five of six brokers answer, four needed) once
// the dead live's lease ran out, and serves. The primary is restarted
// under load: it syncs from the backup and fails back. Nothing lost,
// unexpected or duplicated; each activation sequence activated by one
// broker.
func TestQuorumKillLive(t *testing.T) {
	c := newQuorumCluster(t, 3, quorumDirect)
	c.startAll()
	p := c.pairs[0]
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(200))
	l := p.startLoad("q", int(rate*6), 1+rand.IntN(16), rate)
	time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
	p.primary.kill()
	killed := time.Now()
	e1 := p.backup.waitActive(t)
	t.Logf("the backup serves epoch %d, %v after the kill (vote-retry-wait %d ms)", e1, time.Since(killed).Round(time.Millisecond), quorumVoteRetryWaitMS)
	if e1 <= e0 {
		t.Fatalf("the backup activated epoch %d after the primary's %d", e1, e0)
	}
	// The primary returns (check-for-live-server): it syncs from the
	// backup, asks it to fail back, and serves again (allow-failback).
	p.primary.start()
	e2 := p.primary.waitActive(t)
	p.waitSynced(p.primary)
	if e2 <= e1 {
		t.Fatalf("the primary failed back with epoch %d after the backup's %d", e2, e1)
	}
	r := l.finish(t)
	t.Logf("the primary failed back (epoch %d); %v", e2, r)
	c.check()
}

// TestQuorumLiveIsolated (F5, F13): pair 0's live loses every connection
// to every other broker (and its backup, whose replication connection
// goes through the same proxy) while an HA producer runs: it cannot renew
// its lease nor move the activation sequence on without its backup, so it
// halts (exit status 3) and acknowledges nothing the backup lacks; the
// backup wins the vote and serves. Nothing acknowledged is lost.
func TestQuorumLiveIsolated(t *testing.T) {
	c := newQuorumCluster(t, 3, quorumIsolate)
	c.startAll()
	p := c.pairs[0]
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(200))
	l := p.startLoad("i", int(rate*6), 1+rand.IntN(16), rate)
	time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
	cut := time.Now()
	c.in.Cut()
	for _, px := range c.out {
		px.Cut()
	}
	select {
	case <-p.primary.exited:
	case <-time.After(replLiveness):
		t.Fatalf("the isolated live still runs %v after the cut", replLiveness)
	}
	halted := time.Since(cut)
	if p.primary.exitCode != 3 {
		t.Fatalf("the isolated live exited %d, want 3 (halted)", p.primary.exitCode)
	}
	p.primary.cmd = nil
	e1 := p.backup.waitActive(t)
	t.Logf("isolated live halted %v after the cut; the backup serves epoch %d, %v after the cut", halted.Round(time.Millisecond), e1, time.Since(cut).Round(time.Millisecond))
	if e1 <= e0 {
		t.Fatalf("the backup activated epoch %d after the primary's %d", e1, e0)
	}
	r := l.finish(t)
	t.Logf("%v", r)
	c.check()
}

// TestQuorumStaleBackup (R24, I9): pair 0's backup is killed; the live
// moves the activation sequence on with the vote and acknowledges alone;
// then the live is killed and only the backup is started: the voters
// remember the newer sequence, so it stays passive and says why (never
// active, never syncing). When the primary returns it serves again, the
// backup syncs from it, and nothing acknowledged is lost.
func TestQuorumStaleBackup(t *testing.T) {
	c := newQuorumCluster(t, 3, quorumDirect)
	c.startAll()
	p := c.pairs[0]
	e0 := p.primary.rstatus().epoch
	l := p.startLoad("s", 1500, 1+rand.IntN(16), 300)
	waitLines(t, l.pids, 100)
	p.backup.kill()
	st := p.primary.waitStatus(t, "active and unreplicated with a newer epoch", func(s replStatus) bool {
		return s.state == "active" && s.repl == "none" && s.epoch > e0
	})
	n0 := len(readLines(t, l.pids))
	waitLines(t, l.pids, min(n0+100, l.count))
	p.primary.kill()
	for _, cp := range []*clientProc{l.prod, l.cons} {
		cp.cmd.Process.Signal(syscall.SIGKILL)
		<-cp.done
	}
	skip := p.backup.logSize()
	p.backup.start()
	for end := time.Now().Add(3 * time.Duration(quorumVoteRetryWaitMS) * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if bs := p.backup.rstatus(); !bs.up || bs.state != "waiting" {
			t.Fatalf("the stale backup, started alone, is not waiting: %v", bs)
		}
	}
	t.Logf("the live moved to %v; the stale backup waits: %s", st, p.backup.waitLog(t, "behind", skip))
	p.primary.start()
	e2 := p.primary.waitActive(t)
	if e2 <= st.epoch {
		t.Fatalf("the primary came back with epoch %d after %d", e2, st.epoch)
	}
	p.waitSynced(p.primary)
	r := l.drainCheck(t, false)
	t.Logf("%v", r)
	c.check()
}

// TestQuorumLinkCut (F5, F13): the replication connection of pair 0 is
// cut while both brokers run and reach every other broker, under an HA
// producer: the live moves the activation sequence on with the vote and
// keeps serving unreplicated; the backup never activates (the live keeps
// its lease at the voters). After the heal the backup syncs again.
// Nothing acknowledged is lost.
func TestQuorumLinkCut(t *testing.T) {
	c := newQuorumCluster(t, 3, quorumLink)
	c.startAll()
	p := c.pairs[0]
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(200))
	l := p.startLoad("c", int(rate*8), 1+rand.IntN(16), rate)
	time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
	c.in.Cut()
	st := p.primary.waitStatus(t, "active, unreplicated, with a newer epoch", func(s replStatus) bool {
		return s.state == "active" && s.repl == "none" && s.epoch > e0
	})
	// It acknowledges alone while the link is down, for longer than a
	// lease: the backup must not activate meanwhile.
	n0 := len(readLines(t, l.pids))
	waitLines(t, l.pids, min(n0+100, l.count))
	for end := time.Now().Add(2 * time.Duration(quorumVoteRetryWaitMS) * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if bs := p.backup.rstatus(); bs.state == "active" || bs.repl == "synced" {
			t.Fatalf("the backup, cut off from its live only: %v", bs)
		}
	}
	c.in.Heal()
	p.waitSynced(p.primary)
	r := l.finish(t)
	t.Logf("the live moved on: %v; %v", st, r)
	c.check()
	if acts := p.checkActivations(); len(acts) != 1 || acts[0].broker != "primary0" {
		t.Fatalf("activations %v, want the primary's only", acts)
	}
}

// TestQuorumTwoLivesKilled (R26): the lives of two of the three pairs
// are killed at once; four brokers of six remain, a majority: both
// backups win their votes and serve. Nothing acknowledged on pair 0 is
// lost.
func TestQuorumTwoLivesKilled(t *testing.T) {
	c := newQuorumCluster(t, 3, quorumDirect)
	c.startAll()
	p := c.pairs[0]
	rate := float64(200 + rand.IntN(200))
	l := p.startLoad("k", int(rate*6), 1+rand.IntN(16), rate)
	time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
	c.pairs[0].primary.kill()
	c.pairs[1].primary.kill()
	killed := time.Now()
	e0 := c.pairs[0].backup.waitActive(t)
	e1 := c.pairs[1].backup.waitActive(t)
	t.Logf("both backups serve (epochs %d, %d) %v after the kills", e0, e1, time.Since(killed).Round(time.Millisecond))
	r := l.finish(t)
	t.Logf("%v", r)
	c.check()
}

// TestQuorumCleanDepartures (issue 14, item 4): both brokers of pair 2
// are stopped cleanly (SIGTERM): each leaves the electorate, which goes
// from six brokers to four (a decision needs three). Then pair 0's live is
// killed under an HA producer: three brokers remain (its backup and pair
// 1), enough only because the departures lowered the quorum (four of six
// would be needed otherwise); the backup serves and nothing is lost.
// Pair 0's primary returns; then pair 2's brokers, started again, rejoin
// (every member accepts) and its primary serves again.
func TestQuorumCleanDepartures(t *testing.T) {
	c := newQuorumCluster(t, 3, quorumDirect)
	c.startAll()
	p, gone := c.pairs[0], c.pairs[2]
	for _, m := range []*haMember{gone.backup, gone.primary} {
		skip := m.logSize()
		if code := m.stop(); code != 0 {
			t.Fatalf("%s's SIGTERM: exit %d", m.name, code)
		}
		if line := m.logLine("left the cluster's electorate", skip); line == "" {
			t.Fatalf("%s stopped without leaving the electorate:\n%s", m.name, m.logLine("electorate", skip))
		} else {
			t.Logf("%s: %s", m.name, line)
		}
	}
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(200))
	l := p.startLoad("d", int(rate*6), 1+rand.IntN(16), rate)
	time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
	p.primary.kill()
	killed := time.Now()
	e1 := p.backup.waitActive(t)
	t.Logf("with 3 of the 4 brokers left, the backup serves epoch %d %v after the kill", e1, time.Since(killed).Round(time.Millisecond))
	if e1 <= e0 {
		t.Fatalf("the backup activated epoch %d after the primary's %d", e1, e0)
	}
	r := l.finish(t)
	t.Logf("%v", r)
	// A broker rejoins once every member of the electorate accepts: pair
	// 0's primary (killed, so still a member) comes back first and fails
	// back.
	p.primary.start()
	p.primary.waitActive(t)
	for _, m := range []*haMember{gone.primary, gone.backup} {
		skip := m.logSize()
		m.start()
		t.Logf("%s: %s", m.name, m.waitLog(t, "rejoined the cluster's electorate", skip))
	}
	gone.primary.waitActive(t)
	c.check()
}

// TestQuorumDiscovery: three pairs whose brokers find each other on a UDP
// discovery group (no static connectors), with quorum-size 4: the pairs
// form, pair 0's live is killed under an HA producer, its backup wins the
// vote among the brokers heard and serves; nothing is lost.
func TestQuorumDiscovery(t *testing.T) {
	c := newQuorumCluster(t, 3, quorumHeard)
	c.startAll()
	p := c.pairs[0]
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(200))
	l := p.startLoad("h", int(rate*6), 1+rand.IntN(16), rate)
	time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
	p.primary.kill()
	killed := time.Now()
	e1 := p.backup.waitActive(t)
	t.Logf("the backup serves epoch %d, %v after the kill", e1, time.Since(killed).Round(time.Millisecond))
	if e1 <= e0 {
		t.Fatalf("the backup activated epoch %d after the primary's %d", e1, e0)
	}
	r := l.finish(t)
	t.Logf("%v", r)
	c.check()
}
