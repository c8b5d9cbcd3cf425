package ha

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tandemmq/tandem/lockfile"
)

// FileLockCoordinator runs a shared-store Node against a lock directory
// (lockfile.Manager): a Runner with the file-lock Backend.
type FileLockCoordinator struct {
	*Runner
}

// NewFileLockCoordinator returns an adapter for cfg (whose Coordinator must
// be FileLock) over mgr. cfg's lease must be at least mgr's (the node must
// not trust a verification longer than the monitor does); FenceWait must
// be at least the lease.
func NewFileLockCoordinator(mgr *lockfile.Manager, cfg Config, hooks Hooks) (*FileLockCoordinator, error) {
	if cfg.Coordinator != FileLock {
		return nil, errors.New("ha: FileLockCoordinator needs Coordinator FileLock")
	}
	if cfg.Lease > mgr.Options().Lease {
		return nil, fmt.Errorf("ha: node lease %v longer than the lock monitor's %v", cfg.Lease, mgr.Options().Lease)
	}
	r, err := NewRunner(&FileBackend{M: mgr}, cfg, hooks)
	if err != nil {
		return nil, err
	}
	return &FileLockCoordinator{Runner: r}, nil
}

// FileBackend is the Backend of a lock directory.
type FileBackend struct {
	M *lockfile.Manager

	mu      sync.Mutex
	monitor *lockfile.Monitor
}

// Describe implements Backend.
func (f *FileBackend) Describe() string {
	return "file-lock " + f.M.Dir() + " node " + f.M.NodeID().String()
}

// ReadState implements Backend.
func (f *FileBackend) ReadState(context.Context) (State, bool, error) {
	r, err := f.M.ReadState()
	if err != nil {
		return 0, false, err
	}
	waiting, err := f.M.FailbackWaiting()
	return r.State, waiting, err
}

// WriteState implements Backend.
func (f *FileBackend) WriteState(_ context.Context, s State, epoch uint64) error {
	if epoch != 0 {
		return f.M.WriteStateAt(s, epoch)
	}
	return f.M.WriteState(s)
}

// TryAcquire implements Backend.
func (f *FileBackend) TryAcquire(_ context.Context, l Lock) (bool, error) {
	switch l {
	case LockPrimary:
		return f.M.TryAcquirePrimary()
	case LockBackup:
		return f.M.TryAcquireBackup()
	}
	return f.M.TryAcquireFailback()
}

// BumpEpoch implements Backend.
func (f *FileBackend) BumpEpoch(context.Context) (uint64, error) {
	return f.M.BumpEpoch(lockfile.StateActive)
}

// Release implements Backend.
func (f *FileBackend) Release(_ context.Context, l Lock) error {
	switch l {
	case LockPrimary:
		return f.M.ReleasePrimary()
	case LockBackup:
		return f.M.ReleaseBackup()
	}
	return f.M.ReleaseFailback()
}

// StartMonitor implements Backend with a lockfile.Monitor.
func (f *FileBackend) StartMonitor(epoch uint64, report func(Verification, error)) (Verification, error) {
	f.StopMonitor()
	mo, err := f.M.StartMonitor(epoch, func(v lockfile.Verification, err error) {
		report(Verification{Start: v.Start, Epoch: v.Epoch, State: v.State, FailbackWaiting: v.FailbackWaiting}, err)
	})
	if err != nil {
		return Verification{}, err
	}
	f.mu.Lock()
	f.monitor = mo
	f.mu.Unlock()
	v := mo.Last()
	return Verification{Start: v.Start, Epoch: v.Epoch, State: v.State, FailbackWaiting: v.FailbackWaiting}, nil
}

// LastVerification implements LiveVerifier: the running monitor's newest
// good verification, if it has not failed.
func (f *FileBackend) LastVerification() (Verification, bool) {
	f.mu.Lock()
	mo := f.monitor
	f.mu.Unlock()
	if mo == nil || mo.Err() != nil {
		return Verification{}, false
	}
	v := mo.Last()
	return Verification{Start: v.Start, Epoch: v.Epoch, State: v.State, FailbackWaiting: v.FailbackWaiting}, true
}

// StopMonitor implements Backend.
func (f *FileBackend) StopMonitor() {
	f.mu.Lock()
	mo := f.monitor
	f.monitor = nil
	f.mu.Unlock()
	if mo != nil {
		mo.Stop()
	}
}

// Renew implements Backend: a file lock has no lease to renew.
func (f *FileBackend) Renew(context.Context, uint64) (Verification, error) {
	return Verification{}, errors.New("ha: renew-lease on a file lock")
}
