package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// zkClasspath is where Debian's zookeeper package puts ZooKeeper and the
// log4j binding that makes it log (see scripts/test-services).
const zkClasspath = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"

// Ensemble is a private ZooKeeper ensemble of a test: real JVMs on
// loopback ports, whose nodes the test may kill and restart (the shared
// ensemble of TANDEM_TEST_ZK must never be harmed). Its tick is 500 ms, so
// sessions of 1-10 s are valid.
type Ensemble struct {
	t     testing.TB
	dir   string
	ports []int
	nodes []*Process
}

// StartEnsemble starts n ZooKeeper nodes (JVMs, about 70 MB each) and
// waits until they have a leader. It needs the Debian zookeeper package,
// which `make test` installs; without it the test skips (fails in CI).
func StartEnsemble(t testing.TB, n int) *Ensemble {
	t.Helper()
	if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil {
		skipOrFail(t, "a private ZooKeeper ensemble needs the Debian zookeeper package (make test installs it)")
	}
	if _, err := exec.LookPath("java"); err != nil {
		skipOrFail(t, "a private ZooKeeper ensemble needs java (make test installs it)")
	}
	e := &Ensemble{t: t, dir: TempDir(t, "zk")}
	var servers strings.Builder
	for i := 1; i <= n; i++ {
		e.ports = append(e.ports, FreePort(t))
		fmt.Fprintf(&servers, "server.%d=127.0.0.1:%d:%d\n", i, FreePort(t), FreePort(t))
	}
	for i := 1; i <= n; i++ {
		nd := filepath.Join(e.dir, fmt.Sprintf("zk%d", i))
		if err := os.MkdirAll(filepath.Join(nd, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nd, "data", "myid"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`tickTime=500
initLimit=20
syncLimit=10
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,stat,ruok,mntr,conf,cons
maxClientCnxns=0
%s`, filepath.Join(nd, "data"), e.ports[i-1], servers.String())
		if err := os.WriteFile(filepath.Join(nd, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.nodes = make([]*Process, n)
	for i := range n {
		e.Start(i)
	}
	e.WaitQuorum(90 * time.Second)
	return e
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatal(why)
	}
	t.Skip(why)
}

// Connect is the ensemble's connect string.
func (e *Ensemble) Connect() string {
	var addrs []string
	for _, p := range e.ports {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return strings.Join(addrs, ",")
}

// Start (re)starts node i (0-based).
func (e *Ensemble) Start(i int) {
	e.t.Helper()
	cfg := filepath.Join(e.dir, fmt.Sprintf("zk%d", i+1), "zoo.cfg")
	cmd := exec.Command("java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.root.logger=INFO,CONSOLE", "-Dzookeeper.jmx.log4j.disable=true",
		"-cp", zkClasspath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg)
	e.nodes[i] = StartCmd(e.t, fmt.Sprintf("zk%d", i+1), cmd)
}

// Kill kills node i with SIGKILL and waits for it to exit.
func (e *Ensemble) Kill(i int) {
	e.t.Helper()
	p := e.nodes[i]
	if p == nil || p.Exited() {
		return
	}
	p.Kill()
	if _, err := p.Wait(30 * time.Second); err != nil {
		e.t.Fatalf("zk%d did not exit after SIGKILL: %v", i+1, err)
	}
}

// Mode returns node i's "leader", "follower", or "" when it does not serve.
func (e *Ensemble) Mode(i int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := ZKMode(ctx, fmt.Sprintf("127.0.0.1:%d", e.ports[i]))
	if err != nil {
		return ""
	}
	return m
}

// WaitQuorum waits until every running node serves and one leads.
func (e *Ensemble) WaitQuorum(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		leaders, ok := 0, true
		for i, p := range e.nodes {
			if p == nil || p.Exited() {
				continue
			}
			switch e.Mode(i) {
			case "leader":
				leaders++
			case "follower":
			default:
				ok = false
			}
		}
		if ok && leaders == 1 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("private ZooKeeper ensemble has no quorum after %v", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
