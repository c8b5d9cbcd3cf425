package broker

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/lockfile"
)

// errDataInUse: another broker holds the primary lock of the data
// directory.
var errDataInUse = errors.New("another broker is active on this data directory")

// singleLock is the primary lock a broker without HA takes on a file
// store, so two brokers never serve from one journal; it also gives the
// node ID (server.lock) and a new epoch per start.
type singleLock struct {
	mgr   *lockfile.Manager
	epoch uint64
}

// lockSingle takes the primary lock in the lock directory (the journal
// directory unless node-manager-lock-directory says otherwise) and a new
// epoch. It returns nil, nil for stores without a lock directory (memory,
// jdbc).
func lockSingle(cfg *config.Config, log *slog.Logger) (*singleLock, error) {
	if !cfg.PersistenceEnabled || cfg.Store != nil {
		return nil, nil
	}
	dir := cfg.Dirs.NodeManagerLock
	mgr, err := lockfile.Open(dir, lockfile.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	ok, err := mgr.TryAcquirePrimary()
	if err == nil && !ok {
		err = fmt.Errorf("%w (%s is locked)", errDataInUse, dir)
	}
	if err != nil {
		mgr.Close()
		return nil, err
	}
	epoch, err := mgr.BumpEpoch(lockfile.StateActive)
	if err != nil {
		mgr.ReleasePrimary()
		mgr.Close()
		return nil, err
	}
	return &singleLock{mgr: mgr, epoch: epoch}, nil
}

// nodeID is the node ID in server.lock.
func (l *singleLock) nodeID() string { return l.mgr.NodeID().String() }

// release lets go of the lock (a clean stop).
func (l *singleLock) release() error {
	return errors.Join(l.mgr.ReleasePrimary(), l.mgr.Close())
}
