package testenv_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// TestServicesScriptRun runs scripts/test-services run with a command that
// fails, in a scratch directory of its own, and checks the contract make
// test relies on: the command sees both variables, the script exits with
// the command's code, and everything it started is gone afterwards.
func TestServicesScriptRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second PostgreSQL and ZooKeeper ensemble; skipped with -short")
	}
	// Only where make test already made sure the packages are installed.
	testenv.PG(t)
	testenv.ZK(t)
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // mode 0700: also exercises the cluster-under-/tmp fallback as root
	cmd := exec.Command(filepath.Join(root, "scripts", "test-services"), "run", "--",
		"sh", "-c", `echo "PG=$TANDEM_TEST_PG"; echo "ZK=$TANDEM_TEST_ZK"; exit 7`)
	cmd.Env = append(os.Environ(), "TANDEM_SERVICES_DIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("test-services run -- (exit 7) = %v, want exit status 7\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	var pg, zk string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "PG="); ok {
			pg = v
		}
		if v, ok := strings.CutPrefix(line, "ZK="); ok {
			zk = v
		}
	}
	if !strings.HasPrefix(pg, "postgres://postgres@127.0.0.1:") || !strings.Contains(pg, "/tandem?sslmode=disable") {
		t.Errorf("TANDEM_TEST_PG = %q", pg)
	}
	zkAddrs := strings.Split(zk, ",")
	if len(zkAddrs) != 3 {
		t.Errorf("TANDEM_TEST_ZK = %q, want 3 servers", zk)
	}
	if pg == os.Getenv(testenv.EnvPG) || zk == os.Getenv(testenv.EnvZK) {
		t.Errorf("the run reused the services of the environment (%s, %s)", pg, zk)
	}

	// Everything is stopped: no process mentions the directory, and
	// nothing listens on the ports any more.
	addrs := zkAddrs
	if h := strings.TrimPrefix(pg, "postgres://postgres@"); h != pg {
		addrs = append(addrs, strings.SplitN(h, "/", 2)[0])
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after run", a)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(dir)) {
			t.Errorf("process %s still runs: %s", filepath.Base(filepath.Dir(p)), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "env")); !os.IsNotExist(err) {
		t.Errorf("env file left behind: %v", err)
	}
}
