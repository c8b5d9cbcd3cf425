package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/bench"
	"github.com/tandemmq/tandem/internal/testenv"
)

// benchBroker is a `tandem run` process for the bench and cluster tests.
type benchBroker struct {
	url, http, store string
}

// startBenchBroker runs `tandem run` on free ports with a fresh data
// directory: on the file journal, or on memory when this build has no file
// journal yet (said in the test log).
func startBenchBroker(t *testing.T, bin string) benchBroker {
	t.Helper()
	for _, memory := range []bool{false, true} {
		addr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
		args := []string{"run", "--data", filepath.Join(t.TempDir(), "data"), "--listen", "tcp://" + addr, "--http", httpAddr}
		store := "file"
		if memory {
			cfg := filepath.Join(t.TempDir(), "broker.xml")
			xml := `<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">` +
				`<persistence-enabled>false</persistence-enabled></core></configuration>`
			if err := os.WriteFile(cfg, []byte(xml), 0o644); err != nil {
				t.Fatal(err)
			}
			args, store = append(args, "--config", cfg), "memory"
		}
		p := testenv.Start(t, "broker-"+store, bin, args...)
		deadline := time.Now().Add(30 * time.Second)
		for !p.Exited() && !strings.Contains(p.Log(), "management:") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if p.Exited() && !memory && strings.Contains(p.Log(), "file journal is not available") {
			t.Log("this build has no file journal: benchmarking the memory store")
			continue
		}
		testenv.WaitListening(t, p, addr, 30*time.Second)
		testenv.WaitListening(t, p, httpAddr, 30*time.Second)
		return benchBroker{url: "tcp://" + addr, http: httpAddr, store: store}
	}
	panic("unreachable")
}

// runCLI runs the tandem binary and returns its stdout, stderr and exit code.
func runCLI(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("tandem %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// benchJSON is the part of the --json object the tests check, with
// pointers where docs/cli.md allows null.
type benchJSON struct {
	Produced       *int64   `json:"produced"`
	Consumed       *int64   `json:"consumed"`
	ProducedPerSec *float64 `json:"produced_per_sec"`
	ConsumedPerSec *float64 `json:"consumed_per_sec"`
	SendP50us      *float64 `json:"send_p50_us"`
	SendP99us      *float64 `json:"send_p99_us"`
	SendP999us     *float64 `json:"send_p999_us"`
	Lost           *int64   `json:"lost"`
	Duplicated     *int64   `json:"duplicated"`
	BrokerCPU      *float64 `json:"broker_cpu_us_per_msg"`
}

func TestBenchAgainstTandemRun(t *testing.T) {
	bin := testenv.BuildTandem(t)
	b := startBenchBroker(t, bin)
	tests := []struct {
		name string
		args []string
		n    int64
	}{
		{"sync", []string{"--count", "300"}, 300},
		{"sync producers", []string{"--count", "400", "--producers", "4", "--consumers", "2"}, 400},
		{"windowed", []string{"--count", "2000", "--window", "64", "--http", b.http}, 2000},
		{"windowed producers non-durable", []string{"--count", "1000", "--window", "16", "--producers", "3", "--non-durable", "--size", "100"}, 1000},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"bench", "--url", b.url, "--destination", fmt.Sprintf("queue://shape%d", i), "--json"}, tc.args...)
			out, errOut, code := runCLI(t, bin, args...)
			if code != exitOK {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if errOut != "" {
				t.Errorf("stderr not empty without a terminal: %q", errOut)
			}
			var r benchJSON
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %q", err, out)
			}
			if r.Produced == nil || *r.Produced != tc.n || r.Consumed == nil || *r.Consumed != tc.n ||
				r.Lost == nil || *r.Lost != 0 || r.Duplicated == nil || *r.Duplicated != 0 {
				t.Fatalf("counts: %s", out)
			}
			if r.ProducedPerSec == nil || *r.ProducedPerSec <= 0 || r.ConsumedPerSec == nil || *r.ConsumedPerSec <= 0 ||
				r.SendP50us == nil || r.SendP99us == nil || r.SendP999us == nil || *r.SendP50us <= 0 {
				t.Fatalf("rates and latencies: %s", out)
			}
			if hasHTTP := strings.Contains(strings.Join(tc.args, " "), "--http"); hasHTTP != (r.BrokerCPU != nil) {
				t.Fatalf("broker_cpu_us_per_msg with --http=%v: %s", hasHTTP, out)
			}
		})
	}

	t.Run("produce then consume", func(t *testing.T) {
		dest := "queue://phases"
		out, errOut, code := runCLI(t, bin, "bench", "--url", b.url, "--destination", dest, "--json",
			"--phase", "produce", "--count", "1500", "--window", "32", "--producers", "2")
		var r benchJSON
		if code != exitOK || json.Unmarshal([]byte(out), &r) != nil || *r.Produced != 1500 || *r.Consumed != 0 || r.Lost != nil {
			t.Fatalf("produce: exit %d: %s %s", code, out, errOut)
		}
		out, errOut, code = runCLI(t, bin, "bench", "--url", b.url, "--destination", dest, "--json",
			"--phase", "consume", "--count", "1500", "--consumers", "1", "--http", b.http)
		r = benchJSON{}
		if code != exitOK || json.Unmarshal([]byte(out), &r) != nil || *r.Consumed != 1500 || *r.Duplicated != 0 ||
			r.Lost != nil || r.SendP50us != nil || r.BrokerCPU == nil {
			t.Fatalf("consume: exit %d: %s %s", code, out, errOut)
		}
		// the queue is empty now: not all consumed, exit 2
		out, errOut, code = runCLI(t, bin, "bench", "--url", b.url, "--destination", dest, "--json",
			"--phase", "consume", "--count", "1", "--idle", "200ms")
		if code != exitFailed {
			t.Fatalf("consume from an empty queue: exit %d, want 2: %s %s", code, out, errOut)
		}
	})

	t.Run("text output", func(t *testing.T) {
		out, _, code := runCLI(t, bin, "bench", "--url", b.url, "--count", "50", "--window", "4")
		if code != exitOK || !strings.Contains(out, "lost 0, duplicated 0") || !strings.Contains(out, "produced:   50") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("cluster status", func(t *testing.T) {
		for _, args := range [][]string{{"--http", b.http}, {"--url", b.url}, {"--url", b.url, "--http", b.http}} {
			out, errOut, code := runCLI(t, bin, append([]string{"cluster", "status"}, args...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != exitOK || len(lines) < 2 || !strings.HasPrefix(lines[0], "NODE") ||
				!strings.Contains(out, "primary") || !strings.Contains(out, "active") || !strings.Contains(out, b.url) {
				t.Fatalf("cluster status %q: exit %d:\n%s%s", args, code, out, errOut)
			}
			if args[0] == "--http" && !strings.Contains(lines[1], b.store) {
				t.Fatalf("cluster status %q: store %q not in %q", args, b.store, lines[1])
			}
		}
	})
}

func TestBenchAndClusterUsage(t *testing.T) {
	tests := [][]string{
		{"--count", "0"},
		{"--window", "0"},
		{"--producers", "0"},
		{"--phase", "sideways"},
		{"--destination", "bench"},
		{"--url", "http://x:1"},
		{"--size", "-1"},
		{"--idle", "0s"},
		{"--bogus"},
		{"extra"},
		{"--url", "tcp://127.0.0.1:1", "--count", "1"}, // nothing listens: could not run
		{"--protocol", "stomp", "--stomp-header", "no-colon"},
		{"--protocol", "stomp", "--stomp-header", ":value"},
		{"--stomp-header", "x-queue-type:quorum"}, // STOMP only
		{"--stomp-destination", "/queue/bench"},   // STOMP only
		{"--protocol", "amqp", "--stomp-destination", "/queue/bench"},
	}
	for _, args := range tests {
		if code := runBench(args); code != exitCannot {
			t.Errorf("bench %q: exit %d, want 1", args, code)
		}
	}
	for _, args := range [][]string{{}, {"state"}, {"status", "--http", "127.0.0.1:1"}, {"status", "--url", "tcp://127.0.0.1:1"}, {"status", "x", "--http", "a:1"}} {
		if code := runCluster(args); code != exitCannot {
			t.Errorf("cluster %q: exit %d, want 1", args, code)
		}
	}
}

// statusRows on a backup's view: the topology lists both members; the
// answering broker's row gets its store.
func TestClusterStatusRows(t *testing.T) {
	st := &bench.BrokerStatus{NodeID: "n1", Role: "backup", State: "waiting", Epoch: 3, Store: "file",
		Acceptors: []string{"tcp://b:2"},
		Peers: []bench.Peer{
			{NodeID: "n1", Role: "primary", State: "active", URL: "tcp://a:1", Epoch: 3},
			{NodeID: "n1", Role: "backup", State: "waiting", URL: "tcp://b:2", Epoch: 3},
		}}
	rows := statusRows(st)
	if len(rows) != 2 || rows[0].Store != "" || rows[1].Store != "file" || !rows[1].Self || rows[0].Self {
		t.Fatalf("%+v", rows)
	}
	// a broker whose topology does not list it comes first
	st.Peers = st.Peers[:1]
	rows = statusRows(st)
	if len(rows) != 2 || !rows[0].Self || rows[0].Address != "tcp://b:2" || rows[0].Store != "file" {
		t.Fatalf("%+v", rows)
	}
	var sb strings.Builder
	printClusterTable(&sb, rows)
	if !strings.Contains(sb.String(), "tcp://a:1") || !strings.Contains(sb.String(), "-") {
		t.Fatalf("table:\n%s", sb.String())
	}
}

// TestClusterStatusDown: a peer /status shows as down, which the wire's
// topology no longer lists, is a row of the table (state down) when both
// --url and --http are given.
func TestClusterStatusDown(t *testing.T) {
	st := &bench.BrokerStatus{NodeID: "n1", Role: "primary", State: "active", Epoch: 4, Store: "file",
		Acceptors: []string{"tcp://a:1"},
		Peers: []bench.Peer{
			{NodeID: "n1", Role: "primary", State: "active", URL: "tcp://a:1", Epoch: 4},
			{NodeID: "n1", Role: "backup", State: "down", URL: "tcp://b:2", Epoch: 3},
		}}
	wire := []clusterRow{{Node: "n1", Role: "primary", State: "active", Epoch: 4, Address: "tcp://a:1", Self: true}}
	rows := mergeRows(wire, statusRows(st))
	if len(rows) != 2 || rows[0].Store != "file" || rows[1].State != "down" || rows[1].Address != "tcp://b:2" || rows[1].Self {
		t.Fatalf("%+v", rows)
	}
	var sb strings.Builder
	printClusterTable(&sb, rows)
	if !strings.Contains(sb.String(), "down") {
		t.Fatalf("table without the down member:\n%s", sb.String())
	}
}

// TestClusterBridgeTable: the bridges of /status's cluster section are a
// second table, one row per peer.
func TestClusterBridgeTable(t *testing.T) {
	var sb strings.Builder
	printBridgeTable(&sb, &bench.ClusterBridges{LoadBalancing: "ON_DEMAND", Peers: []bench.Bridge{
		{NodeID: "n2", Name: "B", Connected: true, Forwarded: 1700, Pending: 3, RemoteQueues: 2, RemoteConsumers: 1}}})
	out := sb.String()
	for _, want := range []string{"ON_DEMAND", "n2", "B", "true", "1700", "PENDING"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bridge table lacks %q:\n%s", want, out)
		}
	}
}
