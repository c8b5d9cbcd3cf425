package e2e

import (
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/faultfs"
)

// TestReplBackupFsyncError (F11, I8): the backup's data directory is on a
// fault-injecting FUSE mount (NIO journals on both brokers: O_DIRECT does
// not pass through it). Under an HA producer and a consumer its journal
// segments' fdatasync starts failing with EIO: the backup halts (exit 3,
// never retrying), the live moves the activation sequence on and runs
// unreplicated, and says so (/status replication state none, its log).
// Nothing acknowledged is lost. The backup, restarted on healthy storage,
// syncs again.
//
// The mount is served by this test process: the backup's process is
// started with its working directory off the mount (brokerProc.start) and
// nothing else here starts a child that touches it (faultfs's vfork
// hazard).
func TestReplBackupFsyncError(t *testing.T) {
	m := faultfs.New(t)
	p := newReplPair(t, replOpts{journalType: "NIO", backupData: filepath.Join(m.Dir, "backup-data")})
	p.startSynced()
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(300))
	l := p.startLoad("f", int(rate*6), 1+rand.IntN(32), rate)
	at := time.Duration(300+rand.IntN(1500)) * time.Millisecond
	time.Sleep(at)
	skip := p.primary.logSize()
	if err := m.Faults.Set("*.tj", faultfs.Fault{FsyncErr: syscall.EIO}); err != nil {
		t.Fatal(err)
	}
	code := p.backup.waitExit(t)
	m.Faults.Clear()
	if code != 3 {
		t.Fatalf("backup exit %d after its fdatasync failed, want 3 (halted)", code)
	}
	p.backup.requireHalt(t, "input/output error")
	line := p.primary.waitLog(t, "replica lost", skip)
	st := p.primary.waitStatus(t, "active, unreplicated, with a newer epoch", func(s replStatus) bool {
		return s.state == "active" && s.repl == "none" && s.epoch > e0 && s.coordinated == int64(s.epoch)
	})
	t.Logf("fault %v into the run; the live: %v; %s", at, st, line)
	r := l.finish(t)
	t.Logf("%v", r)
	p.backup.start()
	p.waitSynced(p.primary)
	p.checkActivations()
}
