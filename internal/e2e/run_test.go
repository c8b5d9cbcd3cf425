package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, core string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "broker.xml")
	xml := `<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">` + core + `</core></configuration>`
	if err := os.WriteFile(p, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunBannerAndMemoryStore: the banner names everything CLI.md lists;
// persistence-enabled=false runs on memory and keeps nothing.
func TestRunBannerAndMemoryStore(t *testing.T) {
	cfg := writeConfig(t, `<name>mem1</name><persistence-enabled>false</persistence-enabled>`)
	b := newBrokerProc(t)
	b.start("--config", cfg)
	banner := strings.Join(b.banner, "\n")
	for _, want := range []string{"node ID:", "role:", "primary", "state:", "active", "store:", "memory", "acceptor:", b.URL(), "management:", "limits:", "open files", "anonymous access allowed"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", b.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"tandem_messages_in_total", "tandem_connections", "go_gc_duration_seconds", "process_cpu_seconds_total"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	st := b.status()
	if st["store"] != "memory" || st["name"] != "mem1" || st["role"] != "primary" || st["state"] != "active" {
		t.Fatalf("status %v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := NewLedger()
	if err := produce(ctx, b.URL(), "m", "m", 10, 4, l); err != nil {
		t.Fatal(err)
	}
	if code := b.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	b.start("--config", cfg)
	if qs, _ := b.status()["queues"].([]any); len(qs) != 0 {
		t.Fatalf("memory store kept queues across a restart: %v", qs)
	}
}

// TestRunUsers: with users configured the banner does not offer anonymous
// access and a client without credentials is refused.
func TestRunUsers(t *testing.T) {
	cfg := writeConfig(t, `<persistence-enabled>false</persistence-enabled>
<security><users><user name="alice" password="s3cret" roles="admin"/></users></security>`)
	b := newBrokerProc(t)
	b.start("--config", cfg)
	if banner := strings.Join(b.banner, "\n"); strings.Contains(banner, "anonymous") {
		t.Fatalf("banner offers anonymous access with users configured:\n%s", banner)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := produce(ctx, b.URL(), "u", "u", 1, 1, NewLedger()); err == nil {
		t.Fatal("anonymous client accepted with users configured")
	}
}

func TestRunUsageErrors(t *testing.T) {
	bin := tandemBinary(t)
	bad := writeConfig(t, `<bogus-element/>`)
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"run", "--nope"}},
		{"stray argument", []string{"run", "extra"}},
		{"bad listen URL", []string{"run", "--listen", "http://x:1"}},
		{"bad config", []string{"run", "--config", bad}},
		{"missing config", []string{"run", "--config", "/nonexistent/broker.xml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1; output:\n%s", err, out)
			}
		})
	}
}

// TestRunDataDirectoryLocked: a second broker on the same data directory
// refuses to start (exit 1) while the first runs; the node ID (server.lock)
// and a growing epoch survive restarts.
func TestRunDataDirectoryLocked(t *testing.T) {
	b := newBrokerProc(t)
	b.start()
	st := b.status()
	node, epoch := st["node_id"], st["epoch"].(float64)
	if epoch < 1 {
		t.Fatalf("epoch %v, want >= 1", epoch)
	}
	cmd := exec.Command(b.bin, "run", "--data", b.data, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)),
		"--http", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "another broker is active") {
		t.Fatalf("second broker on the same data: %v\n%s", err, out)
	}
	if code := b.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	b.start()
	st = b.status()
	if st["node_id"] != node || st["epoch"].(float64) <= epoch {
		t.Fatalf("after restart node %v epoch %v; before %v %v", st["node_id"], st["epoch"], node, epoch)
	}
}
