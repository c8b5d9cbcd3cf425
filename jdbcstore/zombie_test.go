package jdbcstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// Environment of the holder process TestZombieFenced starts.
const (
	envHolder      = "TANDEM_JDBC_HOLDER"
	envHolderNM    = "TANDEM_JDBC_HOLDER_NM"
	envHolderTable = "TANDEM_JDBC_HOLDER_TABLE"
)

const (
	zombieExpiration = 2 * time.Second
	zombieRenew      = 400 * time.Millisecond
)

// TestHolderProcess is not a test: it is the lease holder that
// TestZombieFenced runs in a child process (this test binary re-executed).
// It takes the primary lease, loads the journal fenced at its epoch and
// appends from 4 writers until an append fails. It prints "epoch N",
// "ack ID" for every acknowledged append, "lost" when its lease monitor
// gives up, and "err MSG" (with "fenced" when the error is ErrFenced).
func TestHolderProcess(t *testing.T) {
	if os.Getenv(envHolder) != "1" {
		t.Skip("helper process for TestZombieFenced")
	}
	url, nmTable, table := pgURL(t), os.Getenv(envHolderNM), os.Getenv(envHolderTable)
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	ctx := context.Background()
	m, err := OpenNodeManager(ctx, NodeManagerOptions{URL: url, Table: nmTable, Group: "z", LockExpiration: zombieExpiration, RenewPeriod: zombieRenew})
	if err != nil {
		say("err %v", err)
		return
	}
	lease := m.Lease(LockPrimary)
	epoch, err := lease.Acquire(ctx, 50*time.Millisecond)
	if err != nil {
		say("err %v", err)
		return
	}
	say("epoch %d", epoch)
	go func() {
		_ = lease.Run(ctx)
		say("lost")
	}()
	j, err := Open(ctx, Options{URL: url, Table: table, Fence: Fence{Table: nmTable, Group: "z", Epoch: epoch}})
	if err != nil {
		say("err %v", err)
		return
	}
	if _, err := j.Load(ctx); err != nil {
		say("err %v", err)
		return
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); ; i++ {
				id := uint64(w+1)<<32 | i
				err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: []byte("zombie")})
				if err != nil {
					if errors.Is(err, ErrFenced) {
						say("err fenced: %v", err)
					} else {
						say("err %v", err)
					}
					return
				}
				say("ack %d", id)
			}
		}()
	}
	wg.Wait()
	_ = j.Close()
}

// TestZombieFenced is the lease test with two contenders as processes: a
// child holds the lease and writes; it is paused (SIGSTOP) past its lease's
// expiry; this process takes the lease over (a new epoch) and loads the
// journal; then the child continues (SIGCONT). Its next batch must be
// refused, and every append it ever acknowledged must be in what the new
// holder loaded: it acknowledges nothing after the takeover.
func TestZombieFenced(t *testing.T) {
	url := pgURL(t)
	nm, table := uniqueName("znm"), uniqueName("zombie")
	dropAtCleanup(t, url, table, nm)
	// Create the tables first so the child and this process do not race.
	openNM(t, url, nm, "z", zombieExpiration, zombieRenew)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHolderProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), envHolder+"=1", envHolderNM+"="+nm, envHolderTable+"="+table, "TANDEM_TEST_PG="+url)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testLogWriter{t: t, prefix: "holder: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1<<16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	acked := map[uint64]bool{}
	var childEpoch uint64
	var errLines []string
	handle := func(l string) {
		switch {
		case strings.HasPrefix(l, "ack "):
			id, err := strconv.ParseUint(l[4:], 10, 64)
			if err != nil {
				t.Fatalf("holder printed %q", l)
			}
			acked[id] = true
		case strings.HasPrefix(l, "epoch "):
			childEpoch, _ = strconv.ParseUint(l[6:], 10, 64)
		case strings.HasPrefix(l, "err "):
			errLines = append(errLines, l)
		}
	}
	deadline := time.After(30 * time.Second)
	for len(acked) < 200 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("holder exited early; errors: %v", errLines)
			}
			handle(l)
		case <-deadline:
			t.Fatalf("holder acknowledged only %d appends in 30 s; errors: %v", len(acked), errLines)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Logf("holder (epoch %d) stopped after %d acks", childEpoch, len(acked))

	// The successor: waits for the lease to expire by the database's clock.
	m := openNM(t, url, nm, "z", zombieExpiration, zombieRenew)
	lease := m.Lease(LockPrimary)
	actx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	epoch, err := lease.Acquire(actx, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if epoch <= childEpoch {
		t.Fatalf("takeover epoch %d not above the holder's %d", epoch, childEpoch)
	}
	j := openTable(t, url, table, func(o *Options) { o.Fence = Fence{Table: nm, Group: "z", Epoch: epoch} })
	res := mustLoad(t, j)
	loaded := map[uint64]bool{}
	for _, r := range res.Records {
		loaded[r.ID] = true
	}
	mustAppend(t, j, add(1<<60, "successor"))
	t.Logf("successor epoch %d loaded %d records", epoch, len(loaded))

	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(20 * time.Second)
	for open := true; open; {
		select {
		case l, ok := <-lines:
			if !ok {
				open = false
				break
			}
			handle(l)
		case <-timeout:
			t.Fatal("holder did not stop writing within 20 s of SIGCONT")
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	for id := range acked {
		if !loaded[id] {
			t.Fatalf("the paused holder acknowledged record %x, which the successor did not load", id)
		}
	}
	fenced := 0
	for _, l := range errLines {
		if strings.HasPrefix(l, "err fenced") {
			fenced++
		}
	}
	if len(errLines) == 0 {
		t.Fatal("the holder's appends did not fail after the takeover")
	}
	if fenced == 0 {
		// Possible only when the holder was paused in the middle of
		// sending a batch: the takeover then terminated its session.
		t.Logf("holder failed without ErrFenced (its session was terminated): %v", errLines)
	}
	t.Logf("holder acknowledged %d appends in all, all loaded by the successor; %d writers refused with ErrFenced", len(acked), fenced)

	// And nothing of the old epoch got in after the load.
	_ = j.Close()
	j2 := openTable(t, url, table, nil)
	res2 := mustLoad(t, j2)
	if len(res2.Records) != len(loaded)+1 {
		t.Fatalf("after the holder resumed the table has %d records, want %d", len(res2.Records), len(loaded)+1)
	}
}

// testLogWriter sends a child's stderr to the test log.
type testLogWriter struct {
	t      *testing.T
	prefix string
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}
