package e2e

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/faultfs"
)

// faultPair is a pair whose shared directory is on a fault-injecting FUSE
// mount (NIO journal: O_DIRECT is not available through it).
func faultPair(t *testing.T) (*haPair, *faultfs.Mount) {
	t.Helper()
	m := faultfs.New(t)
	p := newHAPair(t, haOpts{shared: filepath.Join(m.Dir, "shared"), journalType: "NIO"})
	p.primary.start()
	p.primary.requireFileStore()
	p.backup.start()
	if p.waitActive() != p.primary {
		t.Fatal("the backup activated first")
	}
	p.backup.waitState(t, "waiting")
	return p, m
}

// TestHAStorageFaults (F9, F11, I8): under producer and consumer load a
// fault hits the live's storage; it must halt (exit 3) and the backup
// take over; nothing acknowledged is lost, nothing duplicated, and each
// epoch is activated once.
//   - lock-eio: writes and fsyncs of primary.lock fail with EIO (the
//     monitor's heartbeat; what a dead NFS mount gives).
//   - journal-eio: writes and fsyncs of the journal segments fail with EIO.
//   - lock-lost: the primary lock is dropped silently and granted to the
//     backup (an NFS lease that expired): the backup takes a new epoch and
//     the live sees it at its next verification.
//
// The I/O faults hit only the live's process (its mount of the shared
// storage died, the backup's did not): the backup may take the lock as
// soon as the live lets go of it, before the live's process is gone.
// Every fault is cleared once the live has exited.
func TestHAStorageFaults(t *testing.T) {
	faults := []struct {
		name    string
		pattern string
		fault   faultfs.Fault
		halt    string // in the live's "halting" log line
	}{
		{"lock-eio", "primary.lock", faultfs.Fault{WriteErr: syscall.EIO, FsyncErr: syscall.EIO}, "input/output error"},
		{"journal-eio", "*.tj", faultfs.Fault{WriteErr: syscall.EIO, FsyncErr: syscall.EIO}, "storage error"},
		{"lock-lost", "primary.lock", faultfs.Fault{Lock: faultfs.LockLose}, "epoch"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			p, m := faultPair(t)
			at := time.Duration(100+rand.IntN(400)) * time.Millisecond
			r := p.haLoad(t, "x", 400, func() {
				time.Sleep(at)
				ft := f.fault
				if ft.Lock == faultfs.LockNormal {
					ft.PID = p.primary.cmd.Process.Pid
				}
				if err := m.Faults.Set(f.pattern, ft); err != nil {
					t.Fatal(err)
				}
				code := p.primary.waitExit(t)
				m.Faults.Clear()
				if code != 3 {
					t.Errorf("live exit %d after the fault, want 3 (halted)", code)
				}
				p.backup.waitState(t, "active")
			})
			t.Logf("fault after %v; %v", at, r)
			p.primary.requireHalt(t, f.halt)
			p.replayCheck(t, "x", f.fault.Lock != faultfs.LockLose)
			p.checkEpochs()
		})
	}
}

// TestHAZombieLostLock (F7 with a file lock): the live is stopped with
// SIGSTOP (it keeps its OS lock), its lock is then lost in the FUSE layer
// and the backup takes over with a new epoch; when the old live resumes it
// must acknowledge nothing more and halt (exit 3).
func TestHAZombieLostLock(t *testing.T) {
	p, m := faultPair(t)
	at := time.Duration(100+rand.IntN(400)) * time.Millisecond
	r := p.haLoad(t, "z", 400, func() {
		time.Sleep(at)
		if err := p.primary.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if err := m.Faults.Set("primary.lock", faultfs.Fault{Lock: faultfs.LockLose}); err != nil {
			t.Fatal(err)
		}
		p.backup.waitState(t, "active")
		m.Faults.Clear()
		if err := p.primary.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if code := p.primary.waitExit(t); code != 3 {
			t.Errorf("resumed zombie exit %d, want 3 (halted)", code)
		}
	})
	t.Logf("SIGSTOP after %v; %v", at, r)
	fenced := 0
	for _, l := range readLines(t, p.primary.logs.Name()) {
		if strings.Contains(l, "write to the shared store refused") {
			fenced++
		}
	}
	t.Logf("the resumed zombie logged %d refused writes", fenced)
	p.primary.requireHalt(t, "")
	p.replayCheck(t, "z", false)
	p.checkEpochs()
}

// requireHalt finds the member's "halting" log line and checks that it
// names why (want, if not "").
func (m *haMember) requireHalt(t *testing.T, want string) {
	t.Helper()
	for _, l := range readLines(t, m.logs.Name()) {
		if strings.Contains(l, "msg=halting") {
			t.Logf("%s: %s", m.name, l)
			if !strings.Contains(l, want) {
				t.Fatalf("%s halted for another reason than %q", m.name, want)
			}
			return
		}
	}
	t.Fatalf("%s: no halting line in its log", m.name)
}

// replayCheck restarts the halted primary, which takes over again: it
// replays the whole shared journal, including anything the old live wrote
// after the takeover. The queue was drained: it must stay empty (a record
// the old live wrote late must not bring a consumed message back, nor
// corrupt the store). With realLock the backup hands back (failback);
// after a LockLose fault the backup's own lock was only simulated, so the
// returning primary really gets the lock, takes a newer epoch, and the
// backup halts on seeing it (exit 3), which is right too.
func (p *haPair) replayCheck(t *testing.T, prefix string, realLock bool) {
	t.Helper()
	p.primary.start()
	p.primary.waitState(t, "active")
	if realLock {
		p.backup.waitState(t, "waiting")
	} else if code := p.backup.waitExit(t); code != 3 {
		t.Fatalf("backup exit %d after the primary took a newer epoch, want 3", code)
	}
	c, ids := p.consumer("ha-"+prefix, prefix+"-replay", time.Second)
	if code := c.wait(t, "replay drain", 60*time.Second); code != 0 {
		t.Fatalf("replay drain exit %d:\n%s", code, c.errText())
	}
	if got := readLines(t, ids); len(got) > 0 {
		t.Fatalf("after a replay of the shared journal %d consumed messages came back: %v", len(got), got[:min(len(got), 10)])
	}
}
