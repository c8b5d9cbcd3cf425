package ha

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/jdbcstore"
)

// Short database leases for the test; nothing asserts timing.
const (
	testDBExpiry = 3 * time.Second
	testDBRenew  = 300 * time.Millisecond
)

func startDBNode(t *testing.T, url, table string, role Role, hooks Hooks) *runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nm, err := jdbcstore.OpenNodeManager(ctx, jdbcstore.NodeManagerOptions{
		URL: url, Table: table, LockExpiration: testDBExpiry, RenewPeriod: testDBRenew,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nm.Close() })
	if hooks.Logger == nil {
		hooks.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	c, err := NewDBLeaseCoordinator(nm, DBLeaseConfig(role, testDBExpiry, testDBRenew), hooks)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{c: &FileLockCoordinator{Runner: c}, done: make(chan error, 1)}
	rctx, rcancel := context.WithCancel(context.Background())
	go func() { r.done <- c.Run(rctx) }()
	t.Cleanup(func() { rcancel(); <-r.done })
	return r
}

// The database lease with two brokers against PostgreSQL: the primary
// serves, stops with failover (releasing the lease), the backup takes
// over with a newer epoch, the primary returns and writes F, the backup
// sees it on a renewal and hands back.
func TestDBLeaseFailoverAndFailback(t *testing.T) {
	url := testenv.PG(t)
	table := "ha_" + testenv.UniqueName(t)
	log := newServeLog(t)
	p := startDBNode(t, url, table, Primary, log.hooks("primary"))
	e1 := log.waitServing("primary")
	b := startDBNode(t, url, table, Backup, log.hooks("backup"))

	p.c.Stop(FailoverYes)
	if err := p.wait(t); err != nil {
		t.Fatalf("primary stop: %v", err)
	}
	e2 := log.waitServing("backup")
	if e2 <= e1 || !b.c.CanAck() {
		t.Fatalf("backup epoch %d after %d, can ack %v", e2, e1, b.c.CanAck())
	}
	startDBNode(t, url, table, Primary, log.hooks("primary"))
	if e3 := log.waitServing("primary"); e3 <= e2 {
		t.Fatalf("failback epoch %d after %d", e3, e2)
	}
}

const dbChildEnv = "TANDEM_HA_DB_CHILD" // "<table> <pgx URL>"

// dbZombieChild runs a primary on the database lease and prints "serving",
// then "ack <unix nanos>" every few milliseconds while CanAck, and
// "halted <err>" when Run returns.
func dbZombieChild(spec string) int {
	table, url, _ := strings.Cut(spec, " ")
	ctx := context.Background()
	nm, err := jdbcstore.OpenNodeManager(ctx, jdbcstore.NodeManagerOptions{
		URL: url, Table: table, LockExpiration: testDBExpiry, RenewPeriod: testDBRenew,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := make(chan string, 1024)
	hooks := Hooks{
		LoadStore:    func(context.Context, uint64) error { return nil },
		StartServing: func(uint64) { out <- "serving" },
		StopServing:  func() {},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	r, err := NewDBLeaseCoordinator(nm, DBLeaseConfig(Primary, testDBExpiry, testDBRenew), hooks)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	w := bufio.NewWriter(os.Stdout)
	for {
		select {
		case l := <-out:
			fmt.Fprintln(w, l)
		case err := <-done:
			fmt.Fprintf(w, "halted %v\n", err)
			w.Flush()
			return 3
		case <-time.After(2 * time.Millisecond):
			if now := time.Now(); r.CanAck() {
				fmt.Fprintf(w, "ack %d\n", now.UnixNano())
			}
		}
		w.Flush()
	}
}

// RELIABILITY F7 on the database lease: the live is SIGSTOPped past its
// lease, the backup takes over after the lease expired by the database's
// clock; when the old live resumes it finds CanAck false at once and halts
// (its renewal finds another holder).
func TestDBLeaseZombie(t *testing.T) {
	url := testenv.PG(t)
	table := "ha_" + testenv.UniqueName(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dbChildEnv+"="+table+" "+url)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1<<16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child exited early")
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("child silent for 30 s")
		}
		return ""
	}
	if l := next(); l != "serving" {
		t.Fatalf("child: %q", l)
	}
	for range 5 {
		if l := next(); !strings.HasPrefix(l, "ack ") {
			t.Fatalf("child: %q", l)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	log := newServeLog(t)
	startDBNode(t, url, table, Backup, log.hooks("backup"))
	log.waitServing("backup") // only after the paused live's lease expired
	resumed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for {
		l := next()
		if strings.HasPrefix(l, "halted ") {
			t.Logf("old live: %s", l)
			break
		}
		ns, err := strconv.ParseInt(strings.TrimPrefix(l, "ack "), 10, 64)
		if err != nil {
			t.Fatalf("child: %q", l)
		}
		if at := time.Unix(0, ns); !at.Before(resumed) {
			t.Fatalf("the old live could acknowledge at %v, after it resumed at %v", at, resumed)
		}
	}
}

// BenchmarkDBLeaseFailoverSIGKILL measures, with the test's lease timing
// (expiration 3 s, renew 300 ms), the time from SIGKILL of a live primary
// process to the in-process backup serving: the lease must first expire by
// the database's clock. Needs TANDEM_TEST_PG.
//
//	go test -run '^$' -bench DBLeaseFailover -benchtime 3x ./ha/
func BenchmarkDBLeaseFailoverSIGKILL(b *testing.B) {
	url := testenv.PG(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		table := "ha_" + testenv.UniqueName(b)
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), dbChildEnv+"="+table+" "+url)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "serving\n" {
			b.Fatalf("child: %q %v", l, err)
		}
		serving := make(chan time.Time, 1)
		hooks := Hooks{
			LoadStore:    func(context.Context, uint64) error { return nil },
			StartServing: func(uint64) { serving <- time.Now() },
			StopServing:  func() {},
			Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		ctx, cancel := context.WithCancel(context.Background())
		nm, err := jdbcstore.OpenNodeManager(ctx, jdbcstore.NodeManagerOptions{
			URL: url, Table: table, LockExpiration: testDBExpiry, RenewPeriod: testDBRenew,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		r, err := NewDBLeaseCoordinator(nm, DBLeaseConfig(Backup, testDBExpiry, testDBRenew), hooks)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		for r.Phase() != PhaseWaitPrimary {
			time.Sleep(time.Millisecond)
		}
		killed := time.Now()
		cmd.Process.Kill()
		cmd.Wait()
		select {
		case at := <-serving:
			total += at.Sub(killed)
		case <-time.After(30 * time.Second):
			b.Fatal("backup not serving within 30 s")
		}
		cancel()
		<-done
		nm.Close()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}
