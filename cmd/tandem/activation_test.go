package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/lockfile"
)

// `tandem activation` as a real process against the test ensemble.

// activationConfig writes a replication primary's broker.xml whose
// <manager> points at connect (namespace of the test's own) and returns
// its path and the namespace.
func activationConfig(t *testing.T, connect string, extra string) (string, string) {
	t.Helper()
	ns := testenv.UniqueName(t)
	path := filepath.Join(t.TempDir(), "broker.xml")
	writeFile(t, path, fmt.Sprintf(`<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">
<ha-policy><replication><primary>
  <manager><properties>
    <property key="connect-string" value="%s"/>
    <property key="session-ms" value="4000"/>
    <property key="namespace" value="%s"/>%s
  </properties></manager>
  <group-name>pair1</group-name>
</primary></replication></ha-policy>
</core></configuration>`, connect, ns, extra))
	return path, ns
}

func runActivationBin(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"activation"}, args...)...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("tandem activation %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// dataWithLocal makes a data directory whose server lock holds (id, l), as
// a stopped broker leaves it.
func dataWithLocal(t *testing.T, l uint64) (string, lockfile.NodeID) {
	t.Helper()
	data := t.TempDir()
	m, err := lockfile.Open(filepath.Join(data, "journal"), lockfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if ok, err := m.TryAcquirePrimary(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := m.WriteLocal(m.NodeID(), l, lockfile.StateActive); err != nil {
		t.Fatal(err)
	}
	return data, m.NodeID()
}

func zkCleanup(t *testing.T, ns string) {
	conn, _, err := zk.Connect(testenv.ZKServers(t), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer conn.Close()
		if err := testenv.ZKDeleteAll(conn, "/"+ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func TestActivationListAndSet(t *testing.T) {
	connect := testenv.ZK(t)
	bin := testenv.BuildTandem(t)
	cfg, ns := activationConfig(t, connect, "")
	zkCleanup(t, ns)
	data, id := dataWithLocal(t, 4)

	// Stopped broker, fresh group: local 4, coordinated 0, lock free.
	out, errOut, code := runActivationBin(t, bin, "list", "--config", cfg, "--data", data, "--json")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	var v struct {
		NodeID      string `json:"node_id"`
		Local       *uint64
		InUse       *bool `json:"in_use"`
		Coordinated *int64
		Znode       string
		LockFree    *bool `json:"lock_free"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if v.NodeID != id.String() || v.Local == nil || *v.Local != 4 || *v.InUse || v.Coordinated == nil || *v.Coordinated != 0 ||
		v.Znode != "/"+ns+"/pair1/activation-sequence" || !*v.LockFree {
		t.Fatalf("list --json: %s", out)
	}

	// set --remote, then list shows it (and ZooKeeper has it).
	if _, errOut, code := runActivationBin(t, bin, "set", "--remote", "9", "--config", cfg, "--data", data); code != 0 {
		t.Fatalf("set --remote: exit %d: %s", code, errOut)
	}
	out, errOut, code = runActivationBin(t, bin, "list", "--remote", "--config", cfg, "--data", data)
	if code != 0 || !strings.Contains(out, "coordinated:  9 (zookeeper /"+ns+"/pair1/activation-sequence)") || strings.Contains(out, "local:") {
		t.Fatalf("list --remote: exit %d: %s%s", code, out, errOut)
	}
	z, err := hasm.DialZK(context.Background(), hasm.ZKOptions{ConnectString: connect, SessionTimeout: 4 * time.Second,
		Namespace: ns, Group: "pair1", AllowOutOfRangeSession: true})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if c, err := z.ReadCoordinated(context.Background()); c != 9 || err != nil {
		t.Fatalf("ZooKeeper has %d, %v", c, err)
	}
	// A claim shows as such.
	if _, errOut, code := runActivationBin(t, bin, "set", "--remote", "-10", "--config", cfg); code != 0 {
		t.Fatalf("set --remote -10: exit %d: %s", code, errOut)
	}
	out, _, _ = runActivationBin(t, bin, "list", "--remote", "--config", cfg)
	if !strings.Contains(out, "10 claimed but not committed") {
		t.Fatalf("list after a claim: %s", out)
	}

	// set --local while a broker holds the directory: refused, nothing
	// written; once it is free: written.
	m, err := lockfile.Open(filepath.Join(data, "journal"), lockfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := m.TryAcquirePrimary(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	out, errOut, code = runActivationBin(t, bin, "list", "--local", "--config", cfg, "--data", data)
	if code != 0 || !strings.Contains(out, "local:        4") || !strings.Contains(out, "a broker holds it") {
		t.Fatalf("list --local while held: exit %d: %s%s", code, out, errOut)
	}
	_, errOut, code = runActivationBin(t, bin, "set", "--local", "7", "--config", cfg, "--data", data)
	if code != exitCannot || !strings.Contains(errOut, "a running broker holds") {
		t.Fatalf("set --local while held: exit %d: %s", code, errOut)
	}
	if r, _ := m.ReadState(); r.Epoch != 4 {
		t.Fatalf("a refused set wrote %d", r.Epoch)
	}
	m.Close()
	out, errOut, code = runActivationBin(t, bin, "set", "--local", "7", "--config", cfg, "--data", data)
	if code != 0 || !strings.Contains(out, "4 -> 7") {
		t.Fatalf("set --local: exit %d: %s%s", code, out, errOut)
	}
	r, err := lockfile.ReadStateFile(filepath.Join(data, "journal", lockfile.StateFileName))
	if err != nil || r.Epoch != 7 || r.NodeID != id {
		t.Fatalf("server.lock after set: %+v %v", r, err)
	}
}

// Without ZooKeeper, --remote exits 1 naming it; --local works.
func TestActivationZooKeeperUnreachable(t *testing.T) {
	bin := testenv.BuildTandem(t)
	cfg, _ := activationConfig(t, testenv.FreeAddr(t), `
    <property key="connection-ms" value="1000"/>`)
	data, _ := dataWithLocal(t, 3)
	for _, args := range [][]string{
		{"list", "--config", cfg, "--data", data},
		{"list", "--remote", "--config", cfg, "--data", data},
		{"set", "--remote", "5", "--config", cfg, "--data", data},
	} {
		_, errOut, code := runActivationBin(t, bin, args...)
		if code != exitCannot || !strings.Contains(errOut, "no ZooKeeper session") {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
	out, errOut, code := runActivationBin(t, bin, "list", "--local", "--config", cfg, "--data", data)
	if code != 0 || !strings.Contains(out, "local:        3") {
		t.Fatalf("list --local: exit %d: %s%s", code, out, errOut)
	}
}

func TestActivationUsage(t *testing.T) {
	var out, errb bytes.Buffer
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"show"},
		{"set", "--data", dir},
		{"set", "--local", "1", "--remote", "2", "--data", dir},
		{"set", "--local", "-1", "--data", dir},
		{"set", "--remote", "x", "--data", dir},
		{"list", "extra"},
		{"set", "--local", "3", "--data", dir}, // no server lock there
		{"list", "--remote", "--data", dir},    // no <manager> in the defaults
	} {
		errb.Reset()
		if rc := activationMain(args, &out, &errb); rc != exitCannot || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, rc, errb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "journal", lockfile.StateFileName)); err == nil {
		t.Error("a refused set created a server lock")
	}
}
