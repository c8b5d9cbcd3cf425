package lockfile

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/faultfs"
)

// Faults on the lock files, injected by a FUSE loopback (root only): the
// live's monitor must report Lost and CanAck must turn false.
func TestMonitorFUSEFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pattern string
		fault   faultfs.Fault
		want    error
	}{
		{"lock ENOLCK", PrimaryFileName, faultfs.Fault{Lock: faultfs.LockENOLCK}, syscall.ENOLCK},
		{"heartbeat write EIO", PrimaryFileName, faultfs.Fault{WriteErr: syscall.EIO}, syscall.EIO},
		{"heartbeat fsync EIO", PrimaryFileName, faultfs.Fault{FsyncErr: syscall.EIO}, syscall.EIO},
		{"state lock ENOLCK", StateFileName, faultfs.Fault{Lock: faultfs.LockENOLCK}, syscall.ENOLCK},
		{"fsync hangs past the lease", PrimaryFileName, faultfs.Fault{HangFsync: true}, ErrLeaseExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := faultfs.New(t)
			opts := monOpts
			if tc.fault.HangFsync {
				opts.Lease = 200 * time.Millisecond
				opts.CheckInterval = 20 * time.Millisecond
			}
			m := openT(t, fsys.Dir, opts)
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
			if err := fsys.Faults.Set(tc.pattern, tc.fault); err != nil {
				t.Fatal(err)
			}
			err = waitLost(t, mo)
			if !errors.Is(err, tc.want) {
				t.Fatalf("lost with %v, want %v", err, tc.want)
			}
			fsys.Faults.Clear() // let a hung verification finish before cleanup
		})
	}
}

// The lock is silently lost (the NFS case): the backup gets it too and
// takes a new epoch; the old live must notice the newer epoch.
func TestMonitorFUSESilentLockLoss(t *testing.T) {
	fsys := faultfs.New(t)
	live := openT(t, fsys.Dir, monOpts)
	backup := openT(t, fsys.Dir, monOpts)
	mustTry(t, live.TryAcquirePrimary, true)
	e, err := live.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	mustTry(t, backup.TryAcquirePrimary, false)
	mo, err := live.StartMonitor(e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mo.Stop)
	if err := fsys.Faults.Set(PrimaryFileName, faultfs.Fault{Lock: faultfs.LockLose}); err != nil {
		t.Fatal(err)
	}
	mustTry(t, backup.TryAcquirePrimary, true)
	e2, err := backup.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	err = waitLost(t, mo)
	var ee *EpochError
	if !errors.As(err, &ee) || ee.Ours != e || ee.Found != e2 {
		t.Fatalf("lost with %v, want EpochError %d -> %d", err, e, e2)
	}
}

func TestAcquireFUSEENOLCK(t *testing.T) {
	fsys := faultfs.New(t)
	m := openT(t, fsys.Dir, monOpts)
	fsys.Faults.Set(BackupFileName, faultfs.Fault{Lock: faultfs.LockENOLCK})
	_, err := m.TryAcquireBackup()
	var le *LockError
	if !errors.As(err, &le) || !errors.Is(err, syscall.ENOLCK) {
		t.Fatalf("got %v, want LockError ENOLCK", err)
	}
	if ok, err := m.TryAcquirePrimary(); !ok || err != nil {
		t.Fatalf("primary unaffected: %v %v", ok, err)
	}
}
