package lockfile

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// WriteLocal writes a whole record into server.lock: the node ID, the
// epoch and the state letter, and fsyncs the file and the directory before
// it returns. Replication coordinated by ZooKeeper keeps its local
// activation sequence there (the epoch field; 0 means "no valid data": a
// sync in progress or never synced), in the broker's own lock directory,
// which is not shared: a backup adopts the live's node ID when a sync
// completes, so id may differ from the one the file had; NodeID() returns
// it from then on. The caller must hold the primary lock of this directory
// (a replication broker holds it for its whole life, so two processes
// never use one data directory; `tandem activation set --local` takes it
// too). An error (I/O, fsync) is fatal for the caller: nothing is retried.
func (m *Manager) WriteLocal(id NodeID, epoch uint64, s State) error {
	if !s.Valid() {
		return fmt.Errorf("lockfile: invalid state %s", s)
	}
	if id.IsZero() {
		return errors.New("lockfile: WriteLocal with a zero node ID")
	}
	if err := m.checkOpen(true); err != nil {
		return err
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	return m.withStateLock(unix.F_WRLCK, func() error {
		r, err := m.readLocked()
		if err != nil {
			return err
		}
		r.State, r.NodeID, r.Epoch = s, id, epoch
		if err := m.writeLocked(r); err != nil {
			return err
		}
		m.idMu.Lock()
		m.nodeID = id
		m.idMu.Unlock()
		return nil
	})
}
