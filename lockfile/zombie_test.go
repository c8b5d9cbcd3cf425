package lockfile

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/faultfs"
)

const zombieEnv = "TANDEM_LOCKFILE_ZOMBIE_DIR"

var zombieOpts = Options{PollInterval: time.Millisecond, Lease: time.Second, CheckInterval: 20 * time.Millisecond}

// zombieChild holds the primary lock with a monitor and prints "ack <unix
// nanos>" whenever CanAck is true, until the monitor reports Lost.
func zombieChild(dir string) int {
	m, err := Open(dir, zombieOpts)
	if err == nil {
		_, err = m.TryAcquirePrimary()
	}
	var e uint64
	if err == nil {
		e, err = m.BumpEpoch(StateActive)
	}
	var mo *Monitor
	if err == nil {
		mo, err = m.StartMonitor(e, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "locked %d\n", e)
	w.Flush()
	for {
		select {
		case <-mo.Lost():
			fmt.Fprintf(w, "lost %v\n", mo.Err())
			w.Flush()
			return 0
		case <-time.After(2 * time.Millisecond):
		}
		if now := time.Now(); mo.CanAck(now) {
			fmt.Fprintf(w, "ack %d\n", now.UnixNano())
			w.Flush()
		}
	}
}

func processStopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'T'
}

// The zombie (RELIABILITY F7 with a file lock): the live is SIGSTOPped, its
// lock is lost silently meanwhile (FUSE) and another broker takes the lock
// and a newer epoch; when the old live resumes it must not find CanAck true
// even once, and its monitor must report Lost.
func TestZombieAcknowledgesNothingAfterResume(t *testing.T) {
	fsys := faultfs.New(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), zombieEnv+"="+fsys.Dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
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
		sc := bufio.NewScanner(out)
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
	if l := next(); !strings.HasPrefix(l, "locked ") {
		t.Fatalf("child: %q", l)
	}
	for range 5 { // it acknowledges while it holds the lock
		if l := next(); !strings.HasPrefix(l, "ack ") {
			t.Fatalf("child: %q", l)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !processStopped(cmd.Process.Pid); {
		if time.Now().After(deadline) {
			t.Fatal("child not stopped within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	fsys.Faults.Set(PrimaryFileName, faultfs.Fault{Lock: faultfs.LockLose})
	m := openT(t, fsys.Dir, zombieOpts)
	mustTry(t, m.TryAcquirePrimary, true)
	if _, err := m.BumpEpoch(StateActive); err != nil {
		t.Fatal(err)
	}
	// The fault being injected: a pause longer than the lease.
	time.Sleep(2 * zombieOpts.Lease)
	resumed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	acksBefore := 5
	for {
		l := next()
		if strings.HasPrefix(l, "lost ") {
			t.Logf("child: %s (%d acks allowed before the pause)", l, acksBefore)
			break
		}
		ns, err := strconv.ParseInt(strings.TrimPrefix(l, "ack "), 10, 64)
		if err != nil {
			t.Fatalf("child: %q", l)
		}
		if at := time.Unix(0, ns); !at.Before(resumed) {
			t.Fatalf("the old live could acknowledge at %v, after it resumed at %v", at, resumed)
		}
		acksBefore++
	}
	fsys.Faults.Clear()
}
