package lockfile

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Verification is the result of one good Verify.
type Verification struct {
	// Start is when the verification began (time.Now, with its monotonic
	// reading). A lease derived from it is valid until Start+Lease.
	Start time.Time
	// State and Epoch are what server.lock held; Epoch equals the epoch
	// verified against.
	State State
	Epoch uint64
}

// Verify re-checks that this Manager is still the live of epoch: the
// primary lock is ours (no conflicting holder; re-asserting it succeeds),
// the open lock and state files are still the files at their paths,
// server.lock names our node and epoch; then it writes a heartbeat and
// fsyncs. Any failure means the caller must stop acknowledging and halt.
// Errors are a *LockError (system error), an *EpochError, or wrap
// ErrLockLost or ErrNotHeld.
func (m *Manager) Verify(epoch uint64) (Verification, error) {
	v := Verification{Start: time.Now()}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return v, ErrClosed
	}
	if !m.holdPrimary {
		return v, ErrNotHeld
	}
	pfd := fdOf(m.primary)
	typ, pid, err := ofdConflict(pfd, unix.F_WRLCK)
	if err != nil {
		return v, &LockError{Op: "getlk", File: m.primary.Name(), Err: err}
	}
	if typ != unix.F_UNLCK {
		return v, fmt.Errorf("%w: %s is locked by another holder (pid %d)", ErrLockLost, m.primary.Name(), pid)
	}
	busy, err := ofdSetlk(pfd, unix.F_WRLCK)
	if err != nil {
		return v, &LockError{Op: "lock", File: m.primary.Name(), Err: err}
	}
	if busy {
		return v, fmt.Errorf("%w: re-asserting the lock on %s failed: held by another", ErrLockLost, m.primary.Name())
	}
	for _, f := range []*os.File{m.primary, m.state} {
		if err := sameFile(f); err != nil {
			return v, err
		}
	}
	err = m.withStateLock(unix.F_WRLCK, func() error {
		r, err := m.readLocked()
		if err != nil {
			return err
		}
		if r.NodeID != m.nodeID {
			return &EpochError{File: m.state.Name(), Ours: epoch, Found: r.Epoch, NodeChanged: true}
		}
		if r.Epoch != epoch {
			return &EpochError{File: m.state.Name(), Ours: epoch, Found: r.Epoch}
		}
		v.State, v.Epoch = r.State, r.Epoch
		return m.writeLocked(r)
	})
	return v, err
}

// sameFile checks that the open file f is still the file at its path.
func sameFile(f *os.File) error {
	var fst, pst unix.Stat_t
	if err := unix.Fstat(fdOf(f), &fst); err != nil {
		return &LockError{Op: "stat", File: f.Name(), Err: err}
	}
	if err := unix.Stat(f.Name(), &pst); err != nil {
		if err == syscall.ENOENT {
			return fmt.Errorf("%w: %s was removed", ErrLockLost, f.Name())
		}
		return &LockError{Op: "stat", File: f.Name(), Err: err}
	}
	if fst.Dev != pst.Dev || fst.Ino != pst.Ino {
		return fmt.Errorf("%w: %s was replaced (open inode %d, path inode %d)", ErrLockLost, f.Name(), fst.Ino, pst.Ino)
	}
	return nil
}
