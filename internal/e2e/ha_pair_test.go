package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// haPair is a shared-store primary/backup pair of `tandem run` processes
// on one machine, sharing a directory (or, with db set, a database store).
type haPair struct {
	t       *testing.T
	shared  string // shared store directory
	primary *haMember
	backup  *haMember
	work    string // ID files and client logs
	// urlOptions are appended to URL's options (e.g. a short
	// clientFailureCheckPeriod, so clients leave a paused live sooner).
	urlOptions string
}

// haMember is one broker of the pair and its config file.
type haMember struct {
	*brokerProc
	name string
	cfg  string
}

// haOpts shape the pair's configuration.
type haOpts struct {
	journalType        string // default NIO
	failoverOnShutdown bool   // primary's failover-on-shutdown
	noFailback         bool   // backup's allow-failback=false
	noRestartBackup    bool   // backup's restart-backup=false
	shared             string // shared directory (default a temp dir)
	store              string // a <store> element (database store) instead of the shared directory
	extraCore          string // more <core> elements (address settings, say)
}

// newHAPair writes both configurations (absolute shared directories,
// acceptors and connectors on free ports, a cluster connection naming the
// peer) without starting anything.
func newHAPair(t *testing.T, o haOpts) *haPair {
	t.Helper()
	if o.journalType == "" {
		o.journalType = "NIO"
	}
	if o.shared == "" {
		o.shared = filepath.Join(t.TempDir(), "shared")
	}
	p := &haPair{t: t, shared: o.shared, work: t.TempDir()}
	p.primary = &haMember{brokerProc: newBrokerProc(t), name: "primary"}
	p.backup = &haMember{brokerProc: newBrokerProc(t), name: "backup"}
	write := func(m, peer *haMember, policy string) {
		m.cfg = writeConfig(t, haCoreXML(m.name, o, p.storeXML(o), m.port, peer.port, policy))
	}
	write(p.primary, p.backup, fmt.Sprintf("<primary><failover-on-shutdown>%v</failover-on-shutdown></primary>", o.failoverOnShutdown))
	write(p.backup, p.primary, fmt.Sprintf("<backup><allow-failback>%v</allow-failback><restart-backup>%v</restart-backup></backup>",
		!o.noFailback, !o.noRestartBackup))
	return p
}

// haCoreXML is the <core> of one broker of a pair: its store, an
// acceptor and the "artemis" connector on port, a "peer" connector on
// peerPort, a cluster connection announcing artemis and probing peer, and
// the shared-store policy element.
func haCoreXML(name string, o haOpts, store string, port, peerPort int, policy string) string {
	return fmt.Sprintf(`<name>%s</name>
  <journal-type>%s</journal-type>
  %s
  `+o.extraCore+`
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%d</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://127.0.0.1:%d</connector>
    <connector name="peer">tcp://127.0.0.1:%d</connector>
  </connectors>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      <static-connectors><connector-ref>peer</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  <ha-policy><shared-store>%s</shared-store></ha-policy>`, name, o.journalType, store, port, port, peerPort, policy)
}

func (p *haPair) storeXML(o haOpts) string {
	if o.store != "" {
		return o.store
	}
	return fmt.Sprintf(`<journal-directory>%[1]s/journal</journal-directory>
  <bindings-directory>%[1]s/bindings</bindings-directory>
  <paging-directory>%[1]s/paging</paging-directory>
  <large-messages-directory>%[1]s/large-messages</large-messages-directory>`, o.shared)
}

// URL is the HA client URL of the pair (CLI.md's form).
func (p *haPair) URL() string {
	return fmt.Sprintf("(%s,%s)?ha=true&reconnectAttempts=-1%s", p.primary.URL(), p.backup.URL(), p.urlOptions)
}

func (p *haPair) members() []*haMember { return []*haMember{p.primary, p.backup} }

func (p *haPair) other(m *haMember) *haMember {
	if m == p.primary {
		return p.backup
	}
	return p.primary
}

// start runs the member's broker (it prints its banner and binds its port
// whether it activates or waits).
func (m *haMember) start() { m.brokerProc.start("--config", m.cfg) }

// running reports whether the member's process is up.
func (m *haMember) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// state returns the member's /status state and epoch ("" when it does
// not answer).
func (m *haMember) state() (string, uint64) {
	if !m.running() {
		return "", 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := fetchStatus(ctx, m.httpPort)
	if err != nil {
		return "", 0
	}
	s, _ := st["state"].(string)
	e, _ := st["epoch"].(float64)
	return s, uint64(e)
}

// waitActive waits (30 s) until exactly one member reports state active
// and returns it.
func (p *haPair) waitActive() *haMember {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var act []*haMember
		for _, m := range p.members() {
			if s, _ := m.state(); s == "active" {
				act = append(act, m)
			}
		}
		if len(act) == 1 {
			return act[0]
		}
		if len(act) > 1 {
			p.t.Fatalf("both brokers report state active")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatal("no broker of the pair became active within 30s")
	return nil
}

// waitState waits (30 s) until m reports state.
func (m *haMember) waitState(t *testing.T, state string) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s, e := m.state(); s == state {
			return e
		}
		time.Sleep(50 * time.Millisecond)
	}
	s, e := m.state()
	t.Fatalf("%s: state %q (epoch %d) after 30s, want %q", m.name, s, e, state)
	return 0
}

// waitExit waits (30 s) for the member's process to exit and returns its
// exit code.
func (m *haMember) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running after 30s", m.name)
	}
	m.cmd = nil
	return m.exitCode
}

// fetchStatus gets GET /status from the management port.
func fetchStatus(ctx context.Context, port int) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/status", port), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return st, nil
}

// clientProc is a `tandem producer` or `tandem consumer` process.
type clientProc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	code   int
	stderr string
}

// startClient runs `tandem ARGS...` with stderr to a file in the pair's
// work directory.
func (p *haPair) startClient(name string, args ...string) *clientProc {
	p.t.Helper()
	errPath := filepath.Join(p.work, name+".err")
	ef, err := os.Create(errPath)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(tandemBinary(p.t), args...)
	cmd.Stderr = ef
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	c := &clientProc{cmd: cmd, done: make(chan struct{}), stderr: errPath}
	go func() {
		err := cmd.Wait()
		ef.Close()
		if ee, ok := err.(*exec.ExitError); ok {
			c.code = ee.ExitCode()
		} else if err != nil {
			c.code = -1
		}
		close(c.done)
	}()
	p.t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			cmd.Process.Signal(syscall.SIGKILL)
			<-c.done
		}
	})
	return c
}

// wait waits up to d for the client and returns its exit code.
func (c *clientProc) wait(t *testing.T, what string, d time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
		out, _ := os.ReadFile(c.stderr)
		t.Fatalf("%s did not finish within %v:\n%s", what, d, tail(string(out), 3000))
	}
	return c.code
}

func (c *clientProc) errText() string {
	out, _ := os.ReadFile(c.stderr)
	return tail(string(out), 3000)
}

// producer starts `tandem producer` of count durable messages with IDs
// prefix-1..count to queue, writing acknowledged IDs to prefix.p.ids.
func (p *haPair) producer(queue, prefix string, count, window int, rate float64) (*clientProc, string) {
	ids := filepath.Join(p.work, prefix+".p.ids")
	args := []string{"producer", "--url", p.URL(), "--destination", "queue://" + queue, "--count", strconv.Itoa(count),
		"--window", strconv.Itoa(window), "--id-prefix", prefix, "--ids-out", ids, "--size", "256"}
	if rate > 0 {
		args = append(args, "--rate", strconv.FormatFloat(rate, 'f', 0, 64))
	}
	return p.startClient(prefix+".producer", args...), ids
}

// consumer starts `tandem consumer` on queue until it stayed empty for
// idle, writing outcomes to name.c.ids.
func (p *haPair) consumer(queue, name string, idle time.Duration) (*clientProc, string) {
	ids := filepath.Join(p.work, name+".c.ids")
	return p.startClient(name+".consumer", "consumer", "--url", p.URL(), "--destination", "queue://"+queue,
		"--idle", idle.String(), "--ids-out", ids), ids
}

// idReport classifies a run from ID files (RELIABILITY.md's checker).
type idReport struct {
	acked, consumed                      int
	lost, unexpected, duplicated, recovd []string
}

func (r idReport) ok() bool { return len(r.lost)+len(r.unexpected)+len(r.duplicated) == 0 }

func (r idReport) String() string {
	short := func(ids []string) string {
		if len(ids) > 10 {
			return strings.Join(ids[:10], " ") + fmt.Sprintf(" ... (%d)", len(ids))
		}
		return strings.Join(ids, " ")
	}
	return fmt.Sprintf("acknowledged %d, consumed %d; lost %d [%s], unexpected %d [%s], duplicated %d [%s], recovered %d",
		r.acked, r.consumed, len(r.lost), short(r.lost), len(r.unexpected), short(r.unexpected),
		len(r.duplicated), short(r.duplicated), len(r.recovd))
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// checkIDs compares the producer's acknowledged IDs with the consumers'
// lines (files in the order they were written): lost = acknowledged and
// never consumed; unexpected = consumed but not one of prefix-1..count;
// duplicated = a confirmed ack followed by another delivery of the same
// ID; an `ID ?` line (ack outcome unknown) followed by a redelivery is
// recovered.
func checkIDs(t *testing.T, producerIDs, prefix string, count int, consumerIDs ...string) idReport {
	t.Helper()
	acked := map[string]bool{}
	for _, id := range readLines(t, producerIDs) {
		acked[id] = true
	}
	valid := func(id string) bool {
		n, err := strconv.Atoi(strings.TrimPrefix(id, prefix+"-"))
		return strings.HasPrefix(id, prefix+"-") && err == nil && n >= 1 && n <= count
	}
	seen := map[string]int{}
	confirmed := map[string]bool{}
	unknownBefore := map[string]bool{}
	dup := map[string]bool{}
	var r idReport
	for _, f := range consumerIDs {
		for _, l := range readLines(t, f) {
			id, unknown := strings.CutSuffix(l, " ?")
			switch {
			case confirmed[id]:
				dup[id] = true // delivered again after a confirmed ack
			case unknownBefore[id] && seen[id] == 1:
				r.recovd = append(r.recovd, id)
			}
			if unknown {
				unknownBefore[id] = true
			} else {
				confirmed[id] = true
			}
			seen[id]++
		}
	}
	r.acked, r.consumed = len(acked), len(seen)
	for id := range acked {
		if seen[id] == 0 {
			r.lost = append(r.lost, id)
		}
	}
	for id := range seen {
		if !valid(id) {
			r.unexpected = append(r.unexpected, id)
		}
	}
	for id := range dup {
		r.duplicated = append(r.duplicated, id)
	}
	sort.Strings(r.lost)
	sort.Strings(r.unexpected)
	sort.Strings(r.duplicated)
	return r
}

// activation is an "active" log line of a broker: it started serving
// under epoch.
type activation struct {
	at     time.Time
	epoch  uint64
	broker string
}

var activeLine = regexp.MustCompile(`^time=(\S+) level=INFO msg=active .*\bepoch=(\d+)`)

// activations parses the members' logs (every start appends to the same
// file).
func (p *haPair) activations() []activation {
	p.t.Helper()
	var out []activation
	for _, m := range p.members() {
		for _, l := range readLines(p.t, m.logs.Name()) {
			sm := activeLine.FindStringSubmatch(l)
			if sm == nil {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, sm[1])
			if err != nil {
				p.t.Fatalf("%s: bad time in %q", m.name, l)
			}
			e, _ := strconv.ParseUint(sm[2], 10, 64)
			out = append(out, activation{at: at, epoch: e, broker: m.name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// checkEpochs: at most one activation per epoch, and epochs strictly
// increase in the order the brokers activated (I4, from the logs).
func (p *haPair) checkEpochs() []activation {
	p.t.Helper()
	acts := p.activations()
	byEpoch := map[uint64]string{}
	var last uint64
	for _, a := range acts {
		if b, ok := byEpoch[a.epoch]; ok {
			p.t.Fatalf("epoch %d activated twice (%s and %s)", a.epoch, b, a.broker)
		}
		byEpoch[a.epoch] = a.broker
		if a.epoch <= last {
			p.t.Fatalf("activation of epoch %d by %s at %v after epoch %d", a.epoch, a.broker, a.at, last)
		}
		last = a.epoch
	}
	return acts
}
