package ha

import (
	"errors"
	"syscall"
	"testing"

	"github.com/tandemmq/tandem/internal/faultfs"
	"github.com/tandemmq/tandem/lockfile"
)

// The live's lock is silently lost (NFS lease expiry, simulated in FUSE):
// the waiting backup gets it, takes a newer epoch and, after the fence,
// serves; the old live halts on its next verification. The serve log fails
// the test if both ever serve at once.
func TestFileLockFUSESilentLoss(t *testing.T) {
	fsys := faultfs.New(t)
	log := newServeLog(t)
	p := startNode(t, fsys.Dir, testCfg(Primary, nil), log.hooks("primary"))
	e1 := log.waitServing("primary")
	startNode(t, fsys.Dir, testCfg(Backup, nil), log.hooks("backup"))
	if err := fsys.Faults.Set(lockfile.PrimaryFileName, faultfs.Fault{Lock: faultfs.LockLose}); err != nil {
		t.Fatal(err)
	}
	err := p.wait(t)
	var ee *lockfile.EpochError
	if !errors.As(err, new(*HaltError)) || !errors.As(err, &ee) {
		t.Fatalf("old live ended with %v, want a halt on a newer epoch", err)
	}
	if e2 := log.waitServing("backup"); e2 <= e1 {
		t.Fatalf("backup epoch %d after %d", e2, e1)
	}
	fsys.Faults.Clear()
}

// ENOLCK on the lock (what NFS gives when a lost lock cannot be reclaimed)
// halts the live; once the lock works again the backup takes over.
func TestFileLockFUSEENOLCK(t *testing.T) {
	fsys := faultfs.New(t)
	log := newServeLog(t)
	p := startNode(t, fsys.Dir, testCfg(Primary, nil), log.hooks("primary"))
	e1 := log.waitServing("primary")
	startNode(t, fsys.Dir, testCfg(Backup, nil), log.hooks("backup"))
	fsys.Faults.Set(lockfile.PrimaryFileName, faultfs.Fault{Lock: faultfs.LockENOLCK})
	err := p.wait(t)
	if !errors.As(err, new(*HaltError)) || !errors.Is(err, syscall.ENOLCK) {
		t.Fatalf("live ended with %v, want a halt with ENOLCK", err)
	}
	// Releasing failed too (ENOLCK); the halted broker exits, which
	// closes the lock file and drops the lock.
	p.m.Close()
	fsys.Faults.Clear()
	if e2 := log.waitServing("backup"); e2 <= e1 {
		t.Fatalf("backup epoch %d after %d", e2, e1)
	}
}

// EIO on the heartbeat fsync halts the live.
func TestFileLockFUSEFsyncEIO(t *testing.T) {
	fsys := faultfs.New(t)
	log := newServeLog(t)
	p := startNode(t, fsys.Dir, testCfg(Primary, nil), log.hooks("primary"))
	log.waitServing("primary")
	fsys.Faults.Set(lockfile.PrimaryFileName, faultfs.Fault{FsyncErr: syscall.EIO})
	if err := p.wait(t); !errors.As(err, new(*HaltError)) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("live ended with %v, want a halt with EIO", err)
	}
	log.waitServing("")
}
