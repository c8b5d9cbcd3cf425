package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/internal/testenv"
)

// The replication fault tests (issue 13, RELIABILITY.md F1, F2, F7, F11,
// F13, F14): a primary/backup pair of `tandem run` processes with
// <ha-policy><replication> coordinated by a real ZooKeeper ensemble, each
// broker with its own data directory.

// replLoops is how many iterations the looped replication tests run:
// short by default (make test), longer on demand (-repl.loops 20).
var replLoops = flag.Int("repl.loops", 2, "iterations of the looped replication fault tests (TestReplKillLiveLoop)")

// replLiveness bounds every wait for the pair to serve again.
const replLiveness = 60 * time.Second

// replOpts shape a replicated pair's configuration.
type replOpts struct {
	// zk is the ensemble's connect string (default the shared one,
	// TANDEM_TEST_ZK; the test then owns the znodes under a namespace of
	// its own and deletes them at the end).
	zk string
	// sessionMS is session-ms (default 4000: valid with a tick of 500 or
	// 1000 ms); connection-ttl-override is set to the same.
	sessionMS int
	// journalType of both brokers (default NIO).
	journalType string
	// fileSize is journal-file-size (default 1M: a few segments to sync).
	fileSize string
	// proxy puts a userspace TCP proxy in front of the primary and makes
	// the primary announce it (connector-ref): a backup replicates from
	// the primary through it (and clients that learn the topology connect
	// through it too).
	proxy bool
	// backupData is the backup's data directory (default its own temp
	// directory), e.g. on a faultfs mount.
	backupData string
}

// replPair is a replicated primary/backup pair. It is an haPair (the
// clients, the ID checker and the activation log check are the same)
// whose members have their own data directories.
type replPair struct {
	*haPair
	o         replOpts
	namespace string
	group     string
	proxy     *testenv.Proxy

	pollMu    sync.Mutex
	activeBy  map[uint64]string // epoch -> the member seen active with it (/status)
	pollErr   string
	pollStop  context.CancelFunc
	pollDone  chan struct{}
	zkOnce    sync.Once
	zkConn    *zk.Conn
	zkConnErr error
}

// newReplPair writes both configurations without starting anything, and
// starts the /status poller that checks that no epoch is ever active on
// both brokers.
func newReplPair(t *testing.T, o replOpts) *replPair {
	t.Helper()
	if o.journalType == "" {
		o.journalType = "NIO"
	}
	if o.sessionMS == 0 {
		o.sessionMS = 4000
	}
	if o.fileSize == "" {
		o.fileSize = "1M"
	}
	p := &replPair{haPair: &haPair{t: t, work: t.TempDir()}, o: o, activeBy: map[uint64]string{}}
	if o.zk == "" {
		// The shared ensemble: a namespace of the test's own, deleted
		// (with the lock of a killed broker) when the test ends.
		p.o.zk = testenv.ZK(t)
		_, base := testenv.ZKConnect(t)
		p.namespace = strings.TrimPrefix(base, "/")
	} else {
		p.namespace = "tandem_e2e"
	}
	p.group = testenv.UniqueName(t)
	p.primary = &haMember{brokerProc: newBrokerProc(t), name: "primary"}
	p.backup = &haMember{brokerProc: newBrokerProc(t), name: "backup"}
	if o.backupData != "" {
		p.backup.data = o.backupData
	}
	announced := p.primary.port
	if o.proxy {
		p.proxy = testenv.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", p.primary.port))
		_, port, err := net.SplitHostPort(p.proxy.Addr())
		if err == nil {
			announced, err = strconv.Atoi(port)
		}
		if err != nil {
			t.Fatalf("proxy address %s: %v", p.proxy.Addr(), err)
		}
	}
	p.primary.cfg = writeConfig(t, p.coreXML(p.primary, announced, p.backup.port, "primary"))
	p.backup.cfg = writeConfig(t, p.coreXML(p.backup, p.backup.port, p.primary.port, "backup"))
	p.startPoller()
	return p
}

// coreXML is one member's <core>: an acceptor on its port, the announced
// "artemis" connector (announced), a "peer" connector for the cluster
// connection's probe, the cluster credentials, and the replication policy
// (role primary or backup) with its <manager>.
func (p *replPair) coreXML(m *haMember, announced, peerPort int, role string) string {
	policy := fmt.Sprintf(`<%[1]s>
      <manager>
        <class-name>org.apache.activemq.artemis.quorum.zookeeper.CuratorDistributedPrimitiveManager</class-name>
        <properties>
          <property key="connect-string" value="%[2]s"/>
          <property key="session-ms" value="%[3]d"/>
          <property key="namespace" value="%[4]s"/>
        </properties>
      </manager>
      <group-name>%[5]s</group-name>
    </%[1]s>`, role, p.o.zk, p.o.sessionMS, p.namespace, p.group)
	return fmt.Sprintf(`<name>%s</name>
  <persistence-enabled>true</persistence-enabled>
  <journal-type>%s</journal-type>
  <journal-file-size>%s</journal-file-size>
  <journal-min-files>2</journal-min-files>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%d</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://127.0.0.1:%d</connector>
    <connector name="peer">tcp://127.0.0.1:%d</connector>
  </connectors>
  <cluster-user>tandem-cluster</cluster-user>
  <cluster-password>e2e-secret</cluster-password>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      <static-connectors><connector-ref>peer</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  <connection-ttl-override>%d</connection-ttl-override>
  <ha-policy><replication>%s</replication></ha-policy>`,
		m.name, p.o.journalType, p.o.fileSize, m.port, announced, peerPort, p.o.sessionMS, policy)
}

// replStatus is the part of GET /status these tests read.
type replStatus struct {
	up          bool // the broker answered
	state       string
	epoch       uint64
	repl        string // replication.state: none, syncing, synced
	peer        string
	local       uint64 // activation_sequence (L)
	coordinated int64  // coordinated_sequence (C as last seen)
}

func (s replStatus) String() string {
	if !s.up {
		return "down"
	}
	return fmt.Sprintf("state %s, epoch %d, replication %s (peer %q), L %d, C %d", s.state, s.epoch, s.repl, s.peer, s.local, s.coordinated)
}

// rstatus fetches the member's /status (up = false when it does not
// answer within 2 s).
func (m *haMember) rstatus() replStatus {
	if !m.running() {
		return replStatus{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := fetchStatus(ctx, m.httpPort)
	if err != nil {
		return replStatus{}
	}
	num := func(v any) float64 { f, _ := v.(float64); return f }
	r := replStatus{up: true, epoch: uint64(num(st["epoch"])), local: uint64(num(st["activation_sequence"])),
		coordinated: int64(num(st["coordinated_sequence"]))}
	r.state, _ = st["state"].(string)
	if rp, ok := st["replication"].(map[string]any); ok {
		r.repl, _ = rp["state"].(string)
		r.peer, _ = rp["peer"].(string)
	}
	return r
}

// waitStatus waits (replLiveness) until the member's status satisfies ok.
func (m *haMember) waitStatus(t *testing.T, what string, ok func(replStatus) bool) replStatus {
	t.Helper()
	deadline := time.Now().Add(replLiveness)
	for {
		st := m.rstatus()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s after %v: %v", m.name, what, replLiveness, st)
		}
		if m.cmd != nil && !m.running() {
			t.Fatalf("%s exited (code %d) while waiting until %s", m.name, m.exitCode, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitActive waits until m serves and returns its epoch.
func (m *haMember) waitActive(t *testing.T) uint64 {
	t.Helper()
	return m.waitStatus(t, "active", func(s replStatus) bool { return s.state == "active" }).epoch
}

// waitSynced waits until live reports a synced replica and replica
// reports itself synced (and waiting).
func (p *replPair) waitSynced(live *haMember) {
	p.t.Helper()
	rep := p.other(live)
	live.waitStatus(p.t, "active with a synced replica", func(s replStatus) bool { return s.state == "active" && s.repl == "synced" })
	rep.waitStatus(p.t, "a synced replica", func(s replStatus) bool { return s.state == "waiting" && s.repl == "synced" })
}

// startSynced starts the primary, waits until it serves, starts the
// backup and waits until it is a synced replica.
func (p *replPair) startSynced() {
	p.t.Helper()
	p.primary.start()
	p.primary.requireFileStore()
	p.primary.waitActive(p.t)
	p.backup.start()
	p.waitSynced(p.primary)
}

// startPoller polls both members' /status until the test ends and
// records which member was seen active with which epoch: no epoch may be
// active on both brokers (I4). checkPoll reports a violation.
func (p *replPair) startPoller() {
	ctx, cancel := context.WithCancel(context.Background())
	p.pollStop, p.pollDone = cancel, make(chan struct{})
	go func() {
		defer close(p.pollDone)
		for ctx.Err() == nil {
			for _, m := range []*haMember{p.primary, p.backup} {
				st := m.pollStatus(ctx)
				if st.state != "active" {
					continue
				}
				p.pollMu.Lock()
				if other, ok := p.activeBy[st.epoch]; ok && other != m.name && p.pollErr == "" {
					p.pollErr = fmt.Sprintf("/status: epoch %d seen active on both %s and %s", st.epoch, other, m.name)
				}
				p.activeBy[st.epoch] = m.name
				p.pollMu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	p.t.Cleanup(p.stopPoller)
}

func (p *replPair) stopPoller() {
	p.pollStop()
	<-p.pollDone
}

// pollStatus is rstatus for the poller: by port, whatever the test does
// with m.cmd meanwhile (a member's process fields belong to the test's
// goroutine).
func (m *haMember) pollStatus(ctx context.Context) replStatus {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := fetchStatus(ctx, m.httpPort)
	if err != nil {
		return replStatus{}
	}
	s, _ := st["state"].(string)
	e, _ := st["epoch"].(float64)
	return replStatus{up: true, state: s, epoch: uint64(e)}
}

// checkActivations: each epoch was activated by one broker, in increasing
// order (the brokers' "active" log lines), and /status never showed one
// epoch active on both. It returns the activations.
func (p *replPair) checkActivations() []activation {
	p.t.Helper()
	p.pollMu.Lock()
	perr := p.pollErr
	p.pollMu.Unlock()
	if perr != "" {
		p.t.Fatal(perr)
	}
	acts := p.checkEpochs()
	var b strings.Builder
	for _, a := range acts {
		fmt.Fprintf(&b, " %s@%d", a.broker, a.epoch)
	}
	p.t.Logf("activations:%s", b.String())
	return acts
}

// zk returns a connection to the pair's ensemble (for reading the lock).
func (p *replPair) zk() *zk.Conn {
	p.t.Helper()
	p.zkOnce.Do(func() {
		conn, events, err := zk.Connect(strings.Split(p.o.zk, ","), 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			p.zkConnErr = err
			return
		}
		p.t.Cleanup(conn.Close)
		timeout := time.After(20 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.State == zk.StateHasSession {
					p.zkConn = conn
					return
				}
			case <-timeout:
				p.zkConnErr = errors.New("no session within 20 s")
				return
			}
		}
	})
	if p.zkConnErr != nil {
		p.t.Fatalf("ZooKeeper %s: %v", p.o.zk, p.zkConnErr)
	}
	return p.zkConn
}

// lockHeld reports whether the pair's lock znode exists.
func (p *replPair) lockHeld() bool {
	p.t.Helper()
	ok, _, err := p.zk().Exists(path.Join("/", p.namespace, p.group, "lock"))
	if err != nil {
		p.t.Fatalf("ZooKeeper: %v", err)
	}
	return ok
}

// waitLockFree waits until no broker holds the lock (a killed live's
// session expired).
func (p *replPair) waitLockFree() {
	p.t.Helper()
	deadline := time.Now().Add(replLiveness)
	for p.lockHeld() {
		if time.Now().After(deadline) {
			p.t.Fatalf("the ZooKeeper lock is still held after %v", replLiveness)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requirePassive checks that m, started alone with stale or no valid data,
// stays passive once the lock is free: it keeps reporting waiting (never
// active or syncing) while its coordinator polls the lock for another
// 3 s (6 polls), and says why in its log (a line containing why, after
// the log's first skip bytes: this start's) and in /status (L behind C,
// or L = 0).
func (p *replPair) requirePassive(m *haMember, why string, skip int64) replStatus {
	p.t.Helper()
	p.waitLockFree()
	var st replStatus
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		st = m.rstatus()
		if !st.up || st.state != "waiting" {
			p.t.Fatalf("%s, started alone with stale data, is not waiting: %v", m.name, st)
		}
	}
	if p.lockHeld() {
		p.t.Fatalf("%s took the ZooKeeper lock with stale data (/status %v)", m.name, st)
	}
	if st.local != 0 && int64(st.local) >= st.coordinated {
		p.t.Fatalf("%s: /status does not show why it waits: %v", m.name, st)
	}
	p.t.Logf("%s stays passive: %v; %s", m.name, st, m.waitLog(p.t, why, skip))
	return st
}

// logLine returns the member's first log line containing s after its
// first skip bytes ("" if none).
func (m *haMember) logLine(s string, skip int64) string {
	b, err := os.ReadFile(m.logs.Name())
	if err != nil {
		m.t.Fatal(err)
	}
	if int64(len(b)) <= skip {
		return ""
	}
	for _, l := range strings.Split(string(b[skip:]), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// waitLog waits (replLiveness) until the member's log has a line
// containing s after its first skip bytes, and returns it.
func (m *haMember) waitLog(t *testing.T, s string, skip int64) string {
	t.Helper()
	return m.waitLogEvery(t, s, skip, 20*time.Millisecond)
}

// waitLogEvery is waitLog reading the log every poll (a short poll for a
// test that must act right after a line).
func (m *haMember) waitLogEvery(t *testing.T, s string, skip int64, poll time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(replLiveness)
	for {
		if l := m.logLine(s, skip); l != "" {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log line %q after %v", m.name, s, replLiveness)
		}
		time.Sleep(poll)
	}
}

// logSize is the member's log size now (for waitLog's skip).
func (m *haMember) logSize() int64 {
	fi, err := os.Stat(m.logs.Name())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// load is a producer and a concurrent consumer on queue prefix.
type load struct {
	p            *replPair
	prefix       string
	count        int
	window       int
	rate         float64
	prod, cons   *clientProc
	pids, cids   string
	extraIDFiles []string
}

// startLoad starts a `tandem producer` of count durable messages (window
// and rate random unless given) and a `tandem consumer` on the same
// queue, both with the pair's HA URL.
func (p *replPair) startLoad(prefix string, count, window int, rate float64) *load {
	l := &load{p: p, prefix: prefix, count: count, window: window, rate: rate}
	l.prod, l.pids = p.producer("repl-"+prefix, prefix, count, window, rate)
	l.cons, l.cids = p.consumer("repl-"+prefix, prefix+"-live", 3*time.Second)
	return l
}

// finish waits for the producer (exit 0: every message acknowledged) and
// the consumer, drains the queue from the live, and checks the IDs:
// nothing lost, unexpected or duplicated, everything acknowledged.
func (l *load) finish(t *testing.T) idReport {
	t.Helper()
	if code := l.prod.wait(t, "producer", 3*replLiveness); code != 0 {
		t.Fatalf("producer exit %d, want 0:\n%s", code, l.prod.errText())
	}
	if code := l.cons.wait(t, "consumer", 3*replLiveness); code != 0 {
		t.Logf("concurrent consumer exit %d (the drain takes the rest):\n%s", code, l.cons.errText())
	}
	return l.drainCheck(t, true)
}

// drainCheck drains the queue and checks the IDs; with all, every one of
// the count IDs must have been acknowledged.
func (l *load) drainCheck(t *testing.T, all bool) idReport {
	t.Helper()
	drain, dids := l.p.consumer("repl-"+l.prefix, fmt.Sprintf("%s-drain%d", l.prefix, len(l.extraIDFiles)), 2*time.Second)
	if code := drain.wait(t, "drain", 3*replLiveness); code != 0 {
		t.Fatalf("drain exit %d, want 0:\n%s", code, drain.errText())
	}
	l.extraIDFiles = append(l.extraIDFiles, dids)
	files := append([]string{l.cids}, l.extraIDFiles...)
	r := checkIDs(t, l.pids, l.prefix, l.count, files...)
	if !r.ok() {
		t.Fatalf("%s (window %d, rate %.0f): %v", l.prefix, l.window, l.rate, r)
	}
	if all && r.acked != l.count {
		t.Fatalf("%s: producer exited 0 with %d of %d acknowledged IDs in its file", l.prefix, r.acked, l.count)
	}
	return r
}

// ackProbe is an in-process producer on one connection to one broker (no
// failover) that records when each acknowledgement arrived: a zombie
// broker's acknowledgements are visible in it.
type ackProbe struct {
	url, queue, prefix string
	l                  *Ledger
	mu                 sync.Mutex
	ackAt              map[string]time.Time
	err                error
	cancel             context.CancelFunc
	done               chan struct{}
}

// startAckProbe sends durable messages prefix-1, prefix-2, ... to queue at
// url, window in flight and one every 5 ms at most, until stop or the
// first failed send (the connection is gone). URL options keep the
// connection open for 2 minutes of silence (a paused broker's socket
// buffers the sends).
func startAckProbe(t *testing.T, url, queue, prefix string, window int) *ackProbe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &ackProbe{url: url, queue: queue, prefix: prefix, l: NewLedger(), ackAt: map[string]time.Time{}, cancel: cancel, done: make(chan struct{})}
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := client.Dial(dctx, url+"?clientFailureCheckPeriod=60000&connectionTTL=120000&callTimeout=120000")
	dcancel()
	if err != nil {
		cancel()
		t.Fatalf("ack probe: %v", err)
	}
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		cancel()
		conn.Close()
		t.Fatalf("ack probe: %v", err)
	}
	pr := sess.CreateProducer(client.Queue(queue), client.Window(window))
	go func() {
		defer close(a.done)
		defer conn.Close()
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			a.mu.Lock()
			failed := a.err != nil
			a.mu.Unlock()
			if failed {
				return
			}
			id := fmt.Sprintf("%s-%d", prefix, i)
			a.l.Sent(id)
			wg.Add(1)
			err := pr.SendAsync(ctx, &client.Message{DuplicateID: id, Body: []byte(id)}, func(err error) {
				defer wg.Done()
				at := time.Now()
				a.l.SendDone(id, err)
				a.mu.Lock()
				defer a.mu.Unlock()
				if err == nil {
					a.ackAt[id] = at
				} else if a.err == nil {
					a.err = err
				}
			})
			if err != nil {
				a.l.SendDone(id, err)
				wg.Done()
				a.mu.Lock()
				if a.err == nil {
					a.err = err
				}
				a.mu.Unlock()
				return
			}
		}
	}()
	return a
}

// stop ends the probe (sends in flight end with the connection) and
// waits for it.
func (a *ackProbe) stop() {
	a.cancel()
	<-a.done
}

// acks returns how many sends were acknowledged, and the last
// acknowledgement's time.
func (a *ackProbe) acks() (int, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var last time.Time
	for _, at := range a.ackAt {
		if at.After(last) {
			last = at
		}
	}
	return len(a.ackAt), last
}

// ackedAfter lists the IDs acknowledged after t.
func (a *ackProbe) ackedAfter(t time.Time) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for id, at := range a.ackAt {
		if at.After(t) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// drainCheck drains the probe's queue from url and checks its ledger:
// every acknowledged send consumed, nothing unexpected or duplicated.
func (a *ackProbe) drainCheck(t *testing.T, url string) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*replLiveness)
	defer cancel()
	if _, err := drain(ctx, url, a.queue, 2*time.Second, 0, a.l); err != nil {
		t.Fatalf("ack probe drain: %v", err)
	}
	r := a.l.Check()
	if !r.OK() {
		t.Fatalf("ack probe %s: %v", a.prefix, r)
	}
	return r
}

// running reports whether the client process is still running.
func (c *clientProc) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}
