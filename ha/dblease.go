package ha

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tandemmq/tandem/jdbcstore"
)

// DBBackend is the Backend of a database lease (jdbcstore's node-manager
// table). Acquiring the primary lease bumps the group's epoch in the same
// statement (jdbcstore fences every journal batch with it), so BumpEpoch
// only records state L and returns that epoch.
type DBBackend struct {
	NM      *jdbcstore.NodeManager
	primary *jdbcstore.Lease
	backup  *jdbcstore.Lease
}

// NewDBBackend returns a Backend over nm with fresh lease handles.
func NewDBBackend(nm *jdbcstore.NodeManager) *DBBackend {
	return &DBBackend{NM: nm, primary: nm.Lease(jdbcstore.LockPrimary), backup: nm.Lease(jdbcstore.LockBackup)}
}

// DBLeaseConfig returns the node configuration matching the database
// lease timing: the node trusts a renewal for expiration minus one renew
// period (jdbcstore's SafeUntil) and renews every renew period.
func DBLeaseConfig(role Role, expiration, renew time.Duration) Config {
	c := DefaultConfig(role, DBLease)
	c.Lease, c.RenewInterval = expiration-renew, renew
	// Half a renew period between attempts, as often as it renews.
	c.RetryInterval = max(renew/2, time.Millisecond)
	return c
}

// NewDBLeaseCoordinator returns a Runner for cfg (Coordinator DBLease)
// over the node-manager table.
func NewDBLeaseCoordinator(nm *jdbcstore.NodeManager, cfg Config, hooks Hooks) (*Runner, error) {
	if cfg.Coordinator != DBLease {
		return nil, errors.New("ha: NewDBLeaseCoordinator needs Coordinator DBLease")
	}
	return NewRunner(NewDBBackend(nm), cfg, hooks)
}

// Describe implements Backend.
func (d *DBBackend) Describe() string {
	return fmt.Sprintf("db-lease %s/%s holder %s", d.NM.Table(), d.NM.Group(), d.primary.Holder())
}

// ReadState implements Backend. The table has no failback lock, so an F
// always counts as a primary waiting (Artemis's rule).
func (d *DBBackend) ReadState(ctx context.Context) (State, bool, error) {
	s, _, err := d.NM.ReadState(ctx)
	return State(s), true, err
}

// WriteState implements Backend; with epoch not 0 it writes only while
// the group's primary lease is still at epoch (an ErrLost otherwise).
func (d *DBBackend) WriteState(ctx context.Context, s State, epoch uint64) error {
	if epoch == 0 {
		return d.NM.WriteState(ctx, jdbcstore.State(s))
	}
	err := d.NM.WriteStateAt(ctx, jdbcstore.State(s), epoch)
	if errors.Is(err, jdbcstore.ErrLeaseLost) {
		return fmt.Errorf("%w: %w", ErrLost, err)
	}
	return err
}

// TryAcquire implements Backend; the failback lock is granted at once.
func (d *DBBackend) TryAcquire(ctx context.Context, l Lock) (bool, error) {
	var lease *jdbcstore.Lease
	switch l {
	case LockPrimary:
		lease = d.primary
	case LockBackup:
		lease = d.backup
	default:
		return true, nil
	}
	_, ok, err := lease.TryAcquire(ctx)
	return ok, err
}

// BumpEpoch implements Backend: the acquisition took the epoch; write L.
func (d *DBBackend) BumpEpoch(ctx context.Context) (uint64, error) {
	e := d.primary.Epoch()
	if e == 0 {
		return 0, errors.New("ha: primary lease not acquired")
	}
	if err := d.NM.WriteState(ctx, jdbcstore.StateActive); err != nil {
		return 0, err
	}
	return e, nil
}

// Release implements Backend.
func (d *DBBackend) Release(ctx context.Context, l Lock) error {
	switch l {
	case LockPrimary:
		return d.primary.Release(ctx)
	case LockBackup:
		return d.backup.Release(ctx)
	}
	return nil
}

// StartMonitor implements Backend: a lease is renewed, not monitored.
func (d *DBBackend) StartMonitor(uint64, func(Verification, error)) (Verification, error) {
	return Verification{}, errors.New("ha: start-monitor on a database lease")
}

// StopMonitor implements Backend (nothing to stop).
func (d *DBBackend) StopMonitor() {}

// Renew implements Backend. A lease held by another node (or at another
// epoch) wraps ErrLost; other errors are transient.
func (d *DBBackend) Renew(ctx context.Context, epoch uint64) (Verification, error) {
	v := Verification{Start: time.Now()}
	if err := d.primary.Renew(ctx); err != nil {
		if errors.Is(err, jdbcstore.ErrLeaseLost) {
			return v, fmt.Errorf("%w: %w", ErrLost, err)
		}
		return v, err
	}
	s, _, err := d.ReadState(ctx)
	if err != nil {
		return v, err
	}
	v.Epoch, v.State, v.FailbackWaiting = d.primary.Epoch(), s, true
	return v, nil
}
