package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// secureInstance writes an instance with tandem create (admin user
// "admin"), its acceptor on addr, a short security-invalidation-interval,
// and returns its broker.xml.
func secureInstance(t *testing.T, addr, httpAddr string, extra ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(t.TempDir(), "broker")
	var out, errb bytes.Buffer
	args := append([]string{dir, "--host", host, "--port", port, "--http", httpAddr}, extra...)
	if rc := runCreate(args, &out, &errb); rc != exitOK {
		t.Fatalf("create: exit %d: %s", rc, errb.String())
	}
	file := filepath.Join(dir, "etc", "broker.xml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("</core>"), []byte("<security-invalidation-interval>100</security-invalidation-interval>\n</core>"), 1)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func userCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := runUser(args, strings.NewReader(""), &out, &errb); rc != exitOK {
		t.Fatalf("tandem user %v: exit %d: %s", args, rc, errb.String())
	}
	return out.String()
}

// produceAs runs tandem producer (one message) as user/password and
// returns its exit code and output.
func produceAs(t *testing.T, bin, url, user, password string, broker *testenv.Process) (int, string) {
	t.Helper()
	p := runTool(t, bin, "producer", "producer", "--url", url, "--destination", "queue://sec", "--count", "1",
		"--user", user, "--password", password)
	code := exitOf(t, p, 60*time.Second, broker)
	return code, p.Log()
}

// eventually polls f (a command against a broker process, which reads
// the users file within its interval) until it holds.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never within 30 s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUserCommandsAgainstBroker: an instance from tandem create requires
// a login; a wrong password exits 1 naming the user, never the password;
// tandem user add, rm and passwd change who gets in on the running
// broker, without a restart.
func TestUserCommandsAgainstBroker(t *testing.T) {
	bin := testenv.BuildTandem(t)
	addr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := secureInstance(t, addr, httpAddr, "--user", "admin", "--password", "adm-pw")
	broker := testenv.Start(t, "broker", bin, "run", "--config", cfg)
	testenv.WaitListening(t, broker, addr, 30*time.Second)
	if strings.Contains(broker.Log(), "WARNING") || !strings.Contains(broker.Log(), "login required, 1 users configured") {
		t.Errorf("banner:\n%s", broker.Log())
	}
	url := "tcp://" + addr

	code, out := produceAs(t, bin, url, "admin", "s3cr3t-guess", broker)
	if code != exitCannot || !strings.Contains(out, `user "admin"`) || strings.Contains(out, "s3cr3t-guess") {
		t.Fatalf("wrong password: exit %d:\n%s", code, out)
	}
	if code, out := produceAs(t, bin, url, "", "", broker); code != exitCannot || !strings.Contains(out, "requires a user name and password") {
		t.Fatalf("anonymous: exit %d:\n%s", code, out)
	}
	if code, out := produceAs(t, bin, url, "admin", "adm-pw", broker); code != exitOK {
		t.Fatalf("admin: exit %d:\n%s", code, out)
	}

	userCmd(t, "add", "--config", cfg, "--user", "bob", "--password", "bob-pw", "--role", "amq")
	if ls := userCmd(t, "ls", "--config", cfg); !strings.Contains(ls, "bob") || !strings.Contains(ls, "admin") || strings.Contains(ls, "bob-pw") {
		t.Errorf("ls:\n%s", ls)
	}
	eventually(t, "bob logs in after tandem user add", func() bool {
		code, _ := produceAs(t, bin, url, "bob", "bob-pw", broker)
		return code == exitOK
	})
	userCmd(t, "rm", "--config", cfg, "--user", "bob")
	eventually(t, "bob is refused after tandem user rm", func() bool {
		code, _ := produceAs(t, bin, url, "bob", "bob-pw", broker)
		return code == exitCannot
	})
	userCmd(t, "passwd", "--config", cfg, "--user", "admin", "--password", "new-pw")
	eventually(t, "the new password works after tandem user passwd", func() bool {
		code, _ := produceAs(t, bin, url, "admin", "new-pw", broker)
		return code == exitOK
	})
	if code, _ := produceAs(t, bin, url, "admin", "adm-pw", broker); code != exitCannot {
		t.Error("the old password still works")
	}
	if strings.Contains(broker.Log(), "s3cr3t-guess") || strings.Contains(broker.Log(), "bob-pw") {
		t.Errorf("a password reached the broker's log:\n%s", broker.Log())
	}
}

// TestAnonymousBeyondLoopbackWarns: a broker that lets anonymous clients in
// on a wildcard address says so in its banner and log; the same on
// loopback does not.
func TestAnonymousBeyondLoopbackWarns(t *testing.T) {
	bin := testenv.BuildTandem(t)
	port := testenv.FreePort(t)
	cfg := secureInstance(t, net.JoinHostPort("0.0.0.0", strconv.Itoa(port)), testenv.FreeAddr(t), "--allow-anonymous")
	broker := testenv.Start(t, "broker", bin, "run", "--config", cfg)
	broker.WaitLog(t, "acceptor:", 30*time.Second)
	broker.WaitLog(t, "WARNING:     anonymous clients are let in on acceptors beyond this machine", 30*time.Second)

	addr := testenv.FreeAddr(t)
	cfg = secureInstance(t, addr, testenv.FreeAddr(t), "--allow-anonymous")
	local := testenv.Start(t, "broker-local", bin, "run", "--config", cfg)
	testenv.WaitListening(t, local, addr, 30*time.Second)
	local.WaitLog(t, "security:    anonymous access allowed", 30*time.Second)
	if strings.Contains(local.Log(), "WARNING") {
		t.Errorf("a loopback broker warns:\n%s", local.Log())
	}
}

func TestUserCommandErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "--file", file}, "--user NAME is required"},
		{[]string{"add", "--file", file, "--user", "a b", "--password", "x"}, "user name"},
		{[]string{"add", "--file", file, "--user", "a", "--password", "x", "--role", "r:1"}, "role"},
		{[]string{"rm", "--file", file, "--user", "nobody"}, `no user "nobody"`},
		{[]string{"add", "--file", file, "--user", "a"}, "no --password, and no password line on stdin"},
		{[]string{"ls"}, "no ./etc/broker.xml here"},
		{[]string{"bogus"}, "unknown subcommand"},
	} {
		var out, errb bytes.Buffer
		if rc := runUser(tc.args, strings.NewReader(""), &out, &errb); rc != exitCannot || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q, want %q", tc.args, rc, errb.String(), tc.want)
		}
	}
	// A password on stdin, as a script gives it.
	var out, errb bytes.Buffer
	if rc := runUser([]string{"add", "--file", file, "--user", "c", "--role", "amq"}, strings.NewReader("from-stdin\n"), &out, &errb); rc != exitOK {
		t.Fatalf("stdin password: %d %s", rc, errb.String())
	}
	if rc := runUser([]string{"add", "--file", file, "--user", "c", "--password", "x"}, strings.NewReader(""), &out, &errb); rc != exitCannot {
		t.Error("adding an existing user succeeded")
	}
}
