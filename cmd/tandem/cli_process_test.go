package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// Process tests of `tandem producer` and `tandem consumer` against
// `tandem run`, all as real processes.

func startBroker(t *testing.T, bin, dataDir, addr string, memory bool) *testenv.Process {
	t.Helper()
	args := []string{"run", "--data", dataDir, "--listen", "tcp://" + addr, "--http", testenv.FreeAddr(t)}
	if memory {
		cfg := filepath.Join(t.TempDir(), "broker.xml")
		xml := `<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">` +
			`<persistence-enabled>false</persistence-enabled></core></configuration>`
		if err := os.WriteFile(cfg, []byte(xml), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", cfg)
	}
	p := testenv.Start(t, "broker", bin, args...)
	deadline := time.Now().Add(30 * time.Second)
	for !p.Exited() && time.Now().Before(deadline) {
		if strings.Contains(p.Log(), "acceptor:") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.Exited() && strings.Contains(p.Log(), "file journal is not available") {
		t.Skip("this build has no file journal: the kill test needs it")
	}
	testenv.WaitListening(t, p, addr, 30*time.Second)
	return p
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

func runTool(t *testing.T, bin, name string, args ...string) *testenv.Process {
	t.Helper()
	return testenv.Start(t, name, bin, args...)
}

// exitOf waits for p's exit code; it fails at once when one of the
// brokers (which must keep running) exits meanwhile.
func exitOf(t *testing.T, p *testenv.Process, timeout time.Duration, brokers ...*testenv.Process) int {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case <-p.Done():
			code, _ := p.ExitCode()
			return code
		case <-deadline:
			t.Fatalf("%s still running after %v; log:\n%s", p.Name, timeout, p.Tail(30))
		case <-time.After(50 * time.Millisecond):
		}
		for _, b := range brokers {
			if b.Exited() {
				t.Fatalf("the broker died while %s ran; broker log:\n%s", p.Name, b.Tail(30))
			}
		}
	}
}

func TestProcessRoundTrip(t *testing.T) {
	bin := testenv.BuildTandem(t)
	addr := testenv.FreeAddr(t)
	startBroker(t, bin, t.TempDir(), addr, true)
	dir := t.TempDir()
	pids, cids := filepath.Join(dir, "p.ids"), filepath.Join(dir, "c.ids")
	url := "tcp://" + addr
	p := runTool(t, bin, "producer", "producer", "--url", url, "--destination", "queue://proc", "--count", "500",
		"--window", "8", "--ids-out", pids)
	if code := exitOf(t, p, 60*time.Second); code != exitOK {
		t.Fatalf("producer exit %d:\n%s", code, p.Tail(20))
	}
	c := runTool(t, bin, "consumer", "consumer", "--url", url, "--destination", "queue://proc", "--count", "500", "--ids-out", cids)
	if code := exitOf(t, c, 60*time.Second); code != exitOK {
		t.Fatalf("consumer exit %d:\n%s", code, c.Tail(20))
	}
	a, b := readLines(t, pids), readLines(t, cids)
	if strings.Join(a, ",") != strings.Join(b, ",") || len(a) != 500 {
		t.Fatalf("produced %d IDs, consumed %d, sets differ", len(a), len(b))
	}
}

// TestProcessProducerSurvivesKill: SIGKILL the broker during a durable
// producer run with a reconnecting URL, restart it on the same data: the
// producer exits 0, and a drain finds every acknowledged ID once.
func TestProcessProducerSurvivesKill(t *testing.T) {
	bin := testenv.BuildTandem(t)
	for round := 0; round < 3; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			addr := testenv.FreeAddr(t)
			data := t.TempDir()
			broker := startBroker(t, bin, data, addr, false)
			dir := t.TempDir()
			pids, cids := filepath.Join(dir, "p.ids"), filepath.Join(dir, "c.ids")
			url := "tcp://" + addr + "?reconnectAttempts=-1&retryInterval=100&maxRetryInterval=500"
			const n = 3000
			p := runTool(t, bin, "producer", "producer", "--url", url, "--destination", "queue://kill", "--count", fmt.Sprint(n),
				"--window", "32", "--ids-out", pids)
			// kill once a random share of the run is acknowledged
			target := n/10 + rand.IntN(n/2)
			deadline := time.Now().Add(60 * time.Second)
			for countLines(pids) < target && !p.Exited() && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			if p.Exited() {
				t.Fatalf("producer ended before the kill:\n%s", p.Tail(10))
			}
			if err := broker.Kill(); err != nil {
				t.Fatal(err)
			}
			<-broker.Done()
			broker = startBroker(t, bin, data, addr, false)
			if code := exitOf(t, p, 120*time.Second, broker); code != exitOK {
				t.Fatalf("producer exit %d:\n%s", code, p.Tail(20))
			}
			t.Logf("killed after %d acknowledgements; producer:\n%s", target, p.Tail(6))
			c := runTool(t, bin, "consumer", "consumer", "--url", url, "--destination", "queue://kill", "--idle", "2s", "--ids-out", cids)
			if code := exitOf(t, c, 120*time.Second, broker); code != exitOK {
				t.Fatalf("consumer exit %d:\n%s", code, c.Tail(20))
			}
			acked, consumed := readLines(t, pids), readLines(t, cids)
			seen := map[string]int{}
			for _, id := range consumed {
				seen[strings.TrimSuffix(id, " ?")]++
			}
			lost, dup := 0, 0
			for _, id := range acked {
				switch {
				case seen[id] == 0:
					lost++
				case seen[id] > 1:
					dup++
				}
			}
			if len(acked) != n || lost > 0 || dup > 0 || len(seen) != n {
				t.Fatalf("acked %d of %d, consumed %d distinct: lost %d, duplicated %d", len(acked), n, len(seen), lost, dup)
			}
		})
	}
}

// TestProcessConsumerSurvivesKill: SIGKILL the broker while a consumer with
// a reconnecting URL drains, restart it: the consumer goes on; every
// produced ID is consumed, and an ID appears twice only when an earlier
// line for it said "?" (ack outcome unknown) or its ack was never sent.
func TestProcessConsumerSurvivesKill(t *testing.T) {
	bin := testenv.BuildTandem(t)
	addr := testenv.FreeAddr(t)
	data := t.TempDir()
	broker := startBroker(t, bin, data, addr, false)
	dir := t.TempDir()
	pids, cids := filepath.Join(dir, "p.ids"), filepath.Join(dir, "c.ids")
	url := "tcp://" + addr + "?reconnectAttempts=-1&retryInterval=100&maxRetryInterval=500"
	const n = 4000
	p := runTool(t, bin, "producer", "producer", "--url", url, "--destination", "queue://ckill", "--count", fmt.Sprint(n),
		"--window", "64", "--ids-out", pids)
	if code := exitOf(t, p, 120*time.Second, broker); code != exitOK {
		t.Fatalf("producer exit %d:\n%s", code, p.Tail(20))
	}
	c := runTool(t, bin, "consumer", "consumer", "--url", url, "--destination", "queue://ckill", "--idle", "3s",
		"--credit", "100", "--ids-out", cids)
	target := n/10 + rand.IntN(n/2)
	deadline := time.Now().Add(60 * time.Second)
	for countLines(cids) < target && !c.Exited() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if c.Exited() {
		t.Fatalf("consumer ended before the kill:\n%s", c.Tail(10))
	}
	if err := broker.Kill(); err != nil {
		t.Fatal(err)
	}
	<-broker.Done()
	broker = startBroker(t, bin, data, addr, false)
	if code := exitOf(t, c, 120*time.Second, broker); code != exitOK {
		t.Fatalf("consumer exit %d:\n%s", code, c.Tail(20))
	}
	t.Logf("killed after %d consumed; consumer:\n%s", target, c.Tail(5))
	seen, unsure := map[string]int{}, map[string]bool{}
	for _, line := range readLines(t, cids) {
		id, q := strings.CutSuffix(line, " ?")
		seen[id]++
		if q {
			unsure[id] = true
		}
	}
	lost, dup := 0, 0
	for _, id := range readLines(t, pids) {
		if seen[id] == 0 {
			lost++
		}
		if seen[id] > 1 && !unsure[id] {
			dup++
		}
	}
	if lost > 0 || dup > 0 || len(seen) != n {
		t.Fatalf("lost %d, duplicated after a confirmed ack %d, distinct consumed %d of %d", lost, dup, len(seen), n)
	}
}

// TestProcessNoBrokerHA: a producer or consumer with an ha=true URL and
// no broker up follows initialConnectAttempts (Artemis's default: one
// pass) and exits 1 with the dial error instead of waiting in silence;
// with more attempts it says what it waits for before each retry.
func TestProcessNoBrokerHA(t *testing.T) {
	bin := testenv.BuildTandem(t)
	addr := testenv.FreeAddr(t) // nothing listens there
	for _, tool := range []string{"producer", "consumer"} {
		args := []string{tool, "--url", "(tcp://" + addr + ")?ha=true", "--destination", "queue://q", "--count", "1"}
		p := runTool(t, bin, tool, args...)
		if code := exitOf(t, p, 60*time.Second); code != exitCannot || !strings.Contains(p.Log(), "connection refused") {
			t.Fatalf("%s, default initialConnectAttempts: exit %d, want 1 with the dial error:\n%s", tool, code, p.Tail(10))
		}
		args[2] = "tcp://" + addr + "?ha=true&initialConnectAttempts=3&retryInterval=10"
		p = runTool(t, bin, tool, args...)
		code := exitOf(t, p, 60*time.Second)
		if code != exitCannot || strings.Count(p.Log(), "retrying in") != 2 || !strings.Contains(p.Log(), addr) {
			t.Fatalf("%s, initialConnectAttempts=3: exit %d, want 1 after two notices naming %s:\n%s", tool, code, addr, p.Tail(10))
		}
	}
}
