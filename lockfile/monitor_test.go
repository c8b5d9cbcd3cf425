package lockfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Short check interval, long lease: the monitor verifies often, and a
// starved test machine never expires the lease by accident.
var monOpts = Options{PollInterval: time.Millisecond, CheckInterval: 5 * time.Millisecond, Lease: 30 * time.Second}

func startLive(t *testing.T, dir string) (*Manager, *Monitor) {
	t.Helper()
	m := openT(t, dir, monOpts)
	mustTry(t, m.TryAcquirePrimary, true)
	e, err := m.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	mo, err := m.StartMonitor(e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mo.Stop)
	return m, mo
}

func waitLost(t *testing.T, mo *Monitor) error {
	t.Helper()
	select {
	case <-mo.Lost():
	case <-time.After(30 * time.Second):
		t.Fatal("monitor did not report the loss within 30 s")
	}
	if mo.CanAck(time.Now()) {
		t.Fatal("CanAck after Lost")
	}
	return mo.Err()
}

func TestMonitorCanAckWithinLease(t *testing.T) {
	_, mo := startLive(t, t.TempDir())
	now := time.Now()
	if !mo.CanAck(now) {
		t.Fatal("fresh monitor cannot ack")
	}
	if mo.CanAck(mo.Last().Start.Add(monOpts.Lease)) {
		t.Fatal("CanAck one lease after the last verification")
	}
	mo.Stop()
	if mo.CanAck(time.Now()) {
		t.Fatal("CanAck after Stop")
	}
}

func TestMonitorHeartbeats(t *testing.T) {
	dir := t.TempDir()
	m, mo := startLive(t, dir)
	first := mo.Last().Start
	deadline := time.Now().Add(30 * time.Second)
	for !mo.Last().Start.After(first) {
		if time.Now().After(deadline) {
			t.Fatal("no second verification within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	hb, err := ReadStateFile(filepath.Join(dir, PrimaryFileName))
	if err != nil || hb.Seq < 2 || hb.Epoch != mo.Epoch() || hb.NodeID != m.NodeID() {
		t.Fatalf("heartbeat %+v, %v: want seq >= 2 and our epoch", hb, err)
	}
	// The monitor never writes server.lock.
	r, err := ReadStateFile(filepath.Join(dir, StateFileName))
	if err != nil || r.Seq != 2 || r.State != StateActive {
		t.Fatalf("record %+v, %v: want the bump's write (seq 2) only", r, err)
	}
}

// Another broker activating (a newer epoch in server.lock, as after a
// silently lost lock) is detected.
func TestMonitorEpochSuperseded(t *testing.T) {
	dir := t.TempDir()
	m, mo := startLive(t, dir)
	p := filepath.Join(dir, StateFileName)
	r, err := ReadStateFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r.Epoch++
	if err := os.WriteFile(p, r.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	err = waitLost(t, mo)
	var ee *EpochError
	if !errors.As(err, &ee) || ee.Found != mo.Epoch()+1 || !errors.Is(err, ErrLockLost) {
		t.Fatalf("got %v, want EpochError found %d", err, mo.Epoch()+1)
	}
	_ = m
}

// Replacing or removing the lock file makes our lock guard nothing.
func TestMonitorFileReplaced(t *testing.T) {
	for _, name := range []string{PrimaryFileName, StateFileName} {
		for _, remove := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "/replaced", true: "/removed"}[remove], func(t *testing.T) {
				dir := t.TempDir()
				_, mo := startLive(t, dir)
				p := filepath.Join(dir, name)
				if remove {
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				} else {
					b, _ := os.ReadFile(p)
					tmp := p + ".tmp"
					if err := os.WriteFile(tmp, b, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, p); err != nil {
						t.Fatal(err)
					}
				}
				if err := waitLost(t, mo); !errors.Is(err, ErrLockLost) {
					t.Fatalf("got %v, want ErrLockLost", err)
				}
			})
		}
	}
}

func TestMonitorReportsVerifications(t *testing.T) {
	dir := t.TempDir()
	m := openT(t, dir, monOpts)
	mustTry(t, m.TryAcquirePrimary, true)
	e, err := m.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Verification, 100)
	mo, err := m.StartMonitor(e, func(v Verification, err error) {
		if err == nil {
			select {
			case got <- v:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mo.Stop()
	select {
	case v := <-got:
		if v.Epoch != e || v.State != StateActive {
			t.Fatalf("verification %+v", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no report within 30 s")
	}
	// A starting primary writes F: the live keeps its lease and sees F.
	other := openT(t, dir, monOpts)
	if err := other.WriteState(StateFailingBack); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case v := <-got:
			if v.State == StateFailingBack {
				if !mo.CanAck(time.Now()) {
					t.Fatal("F must not stop the live by itself")
				}
				return
			}
		case <-deadline:
			t.Fatal("F not seen within 30 s")
		}
	}
}

func TestStartMonitorWithoutLock(t *testing.T) {
	m := openT(t, t.TempDir(), monOpts)
	if _, err := m.StartMonitor(1, nil); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("got %v, want ErrNotHeld", err)
	}
}

// A newer epoch in primary.lock's heartbeat (a new live's bump) is a loss
// even when server.lock shows ours (written back over by a writer whose
// lock on it was lost).
func TestMonitorNewerHeartbeatEpoch(t *testing.T) {
	dir := t.TempDir()
	m, mo := startLive(t, dir)
	// The new live rewrites its heartbeat every check, as the old one
	// does: keep writing it until the old one notices.
	hb := Record{State: StateActive, NodeID: m.NodeID(), Epoch: mo.Epoch() + 1, Seq: 1}
	deadline := time.After(30 * time.Second)
	for lost := false; !lost; {
		if err := os.WriteFile(filepath.Join(dir, PrimaryFileName), hb.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case <-mo.Lost():
			lost = true
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatal("not lost within 30 s")
		}
	}
	err := waitLost(t, mo)
	var ee *EpochError
	if !errors.As(err, &ee) || ee.Found != mo.Epoch()+1 {
		t.Fatalf("got %v, want EpochError found %d", err, mo.Epoch()+1)
	}
}
