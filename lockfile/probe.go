package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Status is what Probe finds in a lock directory, for status tools.
type Status struct {
	// State is server.lock's record (zero when StateErr is set).
	State    Record
	StateErr error
	// Heartbeat is the live's last heartbeat from primary.lock (zero
	// Seq when none was written yet).
	Heartbeat Record
	// PrimaryLocked and BackupLocked report whether some process holds
	// the primary and backup locks.
	PrimaryLocked, BackupLocked bool
	// FailbackLocked: a starting primary waits to fail back.
	FailbackLocked bool
}

// Probe reads a lock directory without taking any lock: server.lock, the
// heartbeat in primary.lock, and whether the locks are held (F_OFD_GETLK).
// It opens and closes the files, which is harmless for OFD locks (a
// broker's locks live on its own open file descriptions), so it may also
// run inside a broker process.
func Probe(dir string) (Status, error) {
	var st Status
	st.State, st.StateErr = ReadStateFile(filepath.Join(dir, StateFileName))
	if errors.Is(st.StateErr, os.ErrNotExist) {
		return st, fmt.Errorf("lockfile: %s is not a lock directory: %w", dir, st.StateErr)
	}
	if hb, err := ReadStateFile(filepath.Join(dir, PrimaryFileName)); err == nil {
		st.Heartbeat = hb
	}
	var err error
	if st.PrimaryLocked, err = locked(filepath.Join(dir, PrimaryFileName)); err != nil {
		return st, err
	}
	if st.BackupLocked, err = locked(filepath.Join(dir, BackupFileName)); err != nil {
		return st, err
	}
	if st.FailbackLocked, err = locked(filepath.Join(dir, FailbackFileName)); err != nil {
		return st, err
	}
	return st, nil
}

func locked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lockfile: %w", err)
	}
	defer f.Close()
	typ, _, err := ofdConflict(int(f.Fd()), unix.F_WRLCK)
	if err != nil {
		return false, &LockError{Op: "getlk", File: path, Err: err}
	}
	return typ != unix.F_UNLCK, nil
}
