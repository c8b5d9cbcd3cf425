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
	// FailbackWaiting: a primary holds the failback lock (it wrote F and
	// waits for the primary lock).
	FailbackWaiting bool
}

// Verify re-checks that this Manager is still the live of epoch: the
// primary lock is ours (we hold it and F_OFD_GETLK finds no conflicting
// holder), the open lock and state files are still the files at their paths,
// server.lock names our node and epoch; then it writes a heartbeat into
// primary.lock and fsyncs it. Any failure means the caller must stop acknowledging and halt.
// Errors are a *LockError (system error), an *EpochError, or wrap
// ErrLockLost or ErrNotHeld.
func (m *Manager) Verify(epoch uint64) (Verification, error) {
	v := Verification{Start: time.Now()}
	if err := m.checkOpen(true); err != nil {
		return v, err
	}
	// Only query the lock: re-asserting it here could re-take a lock that
	// another goroutine has just released.
	typ, pid, err := ofdConflict(fdOf(m.primary), unix.F_WRLCK)
	if err != nil {
		return v, &LockError{Op: "getlk", File: m.primary.Name(), Err: err}
	}
	if typ != unix.F_UNLCK {
		return v, fmt.Errorf("%w: %s is locked by another holder (pid %d)", ErrLockLost, m.primary.Name(), pid)
	}
	for _, f := range []*os.File{m.primary, m.state} {
		if err := sameFile(f); err != nil {
			return v, err
		}
	}
	if v.FailbackWaiting, err = m.FailbackWaiting(); err != nil {
		return v, err
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	var r Record
	err = m.withStateLock(unix.F_RDLCK, func() (err error) {
		r, err = m.readLocked()
		return err
	})
	if err != nil {
		return v, err
	}
	if r.NodeID != m.nodeID {
		return v, &EpochError{File: m.state.Name(), Ours: epoch, Found: r.Epoch, NodeChanged: true}
	}
	if r.Epoch != epoch {
		return v, &EpochError{File: m.state.Name(), Ours: epoch, Found: r.Epoch}
	}
	// A newer live writes its epoch into primary.lock at its bump: seen
	// here even if server.lock's epoch was written back over.
	if hb, ok := m.readHeartbeat(); ok && hb.Epoch > epoch {
		return v, &EpochError{File: m.primary.Name(), Ours: epoch, Found: hb.Epoch}
	}
	v.State, v.Epoch = r.State, r.Epoch
	return v, m.writeHeartbeat(epoch)
}

// writeHeartbeat writes a record (state L, our node and epoch, the time, a
// sequence) into primary.lock and fsyncs it. Only the lock holder writes
// that file, and never server.lock on a heartbeat: a live whose lock was
// silently lost must not be able to write back an old epoch over the one a
// new live took. The write and the fsync are what surface a dead storage.
// m.stateMu must be held.
func (m *Manager) writeHeartbeat(epoch uint64) error {
	m.hbSeq++
	r := Record{State: StateActive, NodeID: m.nodeID, Epoch: epoch, Heartbeat: time.Now(), Seq: m.hbSeq}
	if _, err := m.primary.WriteAt(r.Encode(), 0); err != nil {
		return &LockError{Op: "write", File: m.primary.Name(), Err: err}
	}
	if err := m.primary.Sync(); err != nil {
		return &LockError{Op: "fsync", File: m.primary.Name(), Err: err}
	}
	return nil
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
