package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// File names inside the lock directory.
const (
	StateFileName   = "server.lock"
	PrimaryFileName = "primary.lock"
	BackupFileName  = "backup.lock"
	// FailbackFileName is locked by a primary that wrote F and waits for
	// the primary lock: proof to the live backup that it is alive.
	FailbackFileName = "failback.lock"
)

// Defaults for Options.
const (
	DefaultPollInterval = 100 * time.Millisecond
	DefaultLease        = time.Second
)

// Options configure a Manager. Zero fields take the defaults.
type Options struct {
	// PollInterval is the wait between two attempts of AcquirePrimary and
	// AcquireBackup (Artemis polls every 500 ms; default 100 ms).
	PollInterval time.Duration
	// Lease is how long a successful verification lets the live
	// acknowledge (default 1 s).
	Lease time.Duration
	// CheckInterval is the monitor's verification period (default Lease/4).
	// It must be shorter than Lease.
	CheckInterval time.Duration
	// Logger receives warnings; default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = o.Lease / 4
	}
	if o.CheckInterval >= o.Lease {
		return o, fmt.Errorf("lockfile: check interval %v must be shorter than the lease %v", o.CheckInterval, o.Lease)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Errors callers branch on.
var (
	// ErrClosed is returned by a closed Manager.
	ErrClosed = errors.New("lockfile: manager closed")
	// ErrNotHeld is returned by operations that need the primary lock.
	ErrNotHeld = errors.New("lockfile: primary lock not held")
	// ErrLockLost means the primary lock is no longer ours.
	ErrLockLost = errors.New("lockfile: primary lock lost")
	// ErrLeaseExpired means no verification succeeded within the lease.
	ErrLeaseExpired = errors.New("lockfile: lease expired without a good verification")
)

// LockError wraps a system error from a lock or state-file operation.
type LockError struct {
	Op   string // "lock", "unlock", "getlk", "read", "write", "fsync", "stat"
	File string
	Err  error
}

func (e *LockError) Error() string { return fmt.Sprintf("lockfile: %s %s: %v", e.Op, e.File, e.Err) }

// Unwrap returns the system error.
func (e *LockError) Unwrap() error { return e.Err }

// EpochError means server.lock names another node or a newer epoch than the
// one we activated with: someone else activated.
type EpochError struct {
	File        string
	Ours, Found uint64
	NodeChanged bool
}

func (e *EpochError) Error() string {
	if e.NodeChanged {
		return fmt.Sprintf("lockfile: %s: node ID changed under us", e.File)
	}
	return fmt.Sprintf("lockfile: %s: epoch %d superseded by %d", e.File, e.Ours, e.Found)
}

// Is makes errors.Is(err, ErrLockLost) true for an EpochError.
func (e *EpochError) Is(target error) bool { return target == ErrLockLost }

// Manager holds the three files of one lock directory open for its whole
// life. Its methods are safe for concurrent use.
type Manager struct {
	dir  string
	opts Options

	// mu guards the flags below and is held around fcntl on the lock
	// files; stateMu serialises server.lock I/O. A hung state-file
	// operation (dead NFS) therefore never blocks releasing a lock.
	mu          sync.Mutex
	stateMu     sync.Mutex
	state       *os.File
	primary     *os.File
	backup      *os.File
	failback    *os.File
	holdPrimary bool
	holdBackup  bool
	holdFailbk  bool
	nodeID      NodeID     // written under stateMu and idMu
	idMu        sync.Mutex // a leaf lock: NodeID() reads under it
	closed      bool
	hbSeq       uint64 // heartbeat sequence (stateMu)
}

// Open opens (creating if needed) the lock files in dir and the node ID.
// The files stay open until Close.
func Open(dir string, opts Options) (*Manager, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lockfile: %w", err)
	}
	m := &Manager{dir: dir, opts: opts}
	created := false
	open := func(name string) (*os.File, error) {
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
			created = true
		}
		if err != nil {
			return nil, fmt.Errorf("lockfile: %w", err)
		}
		return f, nil
	}
	if m.state, err = open(StateFileName); err == nil {
		if m.primary, err = open(PrimaryFileName); err == nil {
			if m.backup, err = open(BackupFileName); err == nil {
				m.failback, err = open(FailbackFileName)
			}
		}
	}
	if err == nil && created {
		err = m.syncDir()
	}
	if err == nil {
		err = m.initNodeID()
	}
	if err != nil {
		m.closeFiles()
		return nil, err
	}
	return m, nil
}

// initNodeID reads the node ID, creating the record on a fresh file.
func (m *Manager) initNodeID() error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	return m.withStateLock(unix.F_WRLCK, func() error {
		r, err := m.readLocked()
		if err != nil {
			return err
		}
		if r.NodeID.IsZero() {
			if r.NodeID, err = NewNodeID(); err != nil {
				return err
			}
			r.State = StateFirstStart
			if err := m.writeLocked(r); err != nil {
				return err
			}
		}
		m.nodeID = r.NodeID
		return nil
	})
}

// Dir returns the lock directory.
func (m *Manager) Dir() string { return m.dir }

// Options returns the options in effect (with defaults filled in).
func (m *Manager) Options() Options { return m.opts }

// NodeID returns the pair's node ID (created with server.lock, or the
// one adopted with WriteLocal).
func (m *Manager) NodeID() NodeID {
	m.idMu.Lock()
	defer m.idMu.Unlock()
	return m.nodeID
}

// Close closes the files, which releases any lock held. It waits for a
// state-file operation in progress.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.holdPrimary, m.holdBackup, m.holdFailbk = false, false, false
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	return m.closeFiles()
}

// checkOpen returns ErrClosed after Close, and ErrNotHeld when needPrimary
// and the primary lock is not held.
func (m *Manager) checkOpen(needPrimary bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if needPrimary && !m.holdPrimary {
		return ErrNotHeld
	}
	return nil
}

func (m *Manager) closeFiles() error {
	var first error
	for _, f := range []*os.File{m.state, m.primary, m.backup, m.failback} {
		if f != nil {
			if err := f.Close(); err != nil && first == nil {
				first = fmt.Errorf("lockfile: %w", err)
			}
		}
	}
	return first
}

func fdOf(f *os.File) int { return int(f.Fd()) }

// lockKind names one of the three lock files.
type lockKind int

const (
	kindPrimary lockKind = iota
	kindBackup
	kindFailback
)

// lockFile returns the file and the held flag of a lock. m.mu must be held.
func (m *Manager) lockFile(k lockKind) (*os.File, *bool) {
	switch k {
	case kindPrimary:
		return m.primary, &m.holdPrimary
	case kindBackup:
		return m.backup, &m.holdBackup
	}
	return m.failback, &m.holdFailbk
}

// TryAcquirePrimary tries once to take the primary lock. It returns false,
// nil when another broker holds it.
func (m *Manager) TryAcquirePrimary() (bool, error) { return m.tryAcquire(kindPrimary) }

// TryAcquireBackup tries once to take the backup lock.
func (m *Manager) TryAcquireBackup() (bool, error) { return m.tryAcquire(kindBackup) }

// TryAcquireFailback tries once to take the failback lock, which a
// starting primary holds from before it writes F until it has the primary
// lock and a new epoch.
func (m *Manager) TryAcquireFailback() (bool, error) { return m.tryAcquire(kindFailback) }

func (m *Manager) tryAcquire(k lockKind) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	f, held := m.lockFile(k)
	busy, err := ofdSetlk(fdOf(f), unix.F_WRLCK)
	if err != nil {
		return false, &LockError{Op: "lock", File: f.Name(), Err: err}
	}
	if busy {
		return false, nil
	}
	*held = true
	return true, nil
}

// FailbackWaiting reports whether another broker holds the failback lock:
// a primary that wrote F is alive and waiting. An F in server.lock with
// nobody waiting is stale (the primary died before it took over).
func (m *Manager) FailbackWaiting() (bool, error) {
	if err := m.checkOpen(false); err != nil {
		return false, err
	}
	typ, _, err := ofdConflict(fdOf(m.failback), unix.F_WRLCK)
	if err != nil {
		return false, &LockError{Op: "getlk", File: m.failback.Name(), Err: err}
	}
	return typ != unix.F_UNLCK, nil
}

// AcquirePrimary polls for the primary lock every PollInterval until it is
// ours or ctx ends. A lock error other than "held by someone else" is
// returned at once: the caller decides whether to retry.
func (m *Manager) AcquirePrimary(ctx context.Context) error {
	return m.poll(ctx, m.TryAcquirePrimary)
}

// AcquireBackup polls for the backup lock like AcquirePrimary.
func (m *Manager) AcquireBackup(ctx context.Context) error {
	return m.poll(ctx, m.TryAcquireBackup)
}

func (m *Manager) poll(ctx context.Context, try func() (bool, error)) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		ok, err := try()
		if err != nil || ok {
			return err
		}
		t.Reset(m.opts.PollInterval)
	}
}

// ReleasePrimary releases the primary lock (the file stays open).
func (m *Manager) ReleasePrimary() error { return m.release(kindPrimary) }

// ReleaseBackup releases the backup lock (the file stays open).
func (m *Manager) ReleaseBackup() error { return m.release(kindBackup) }

// ReleaseFailback releases the failback lock (the file stays open).
func (m *Manager) ReleaseFailback() error { return m.release(kindFailback) }

func (m *Manager) release(k lockKind) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	f, held := m.lockFile(k)
	*held = false
	if _, err := ofdSetlk(fdOf(f), unix.F_UNLCK); err != nil {
		return &LockError{Op: "unlock", File: f.Name(), Err: err}
	}
	return nil
}

// HoldsPrimary reports whether this Manager believes it holds the primary
// lock (it took it and has not released it).
func (m *Manager) HoldsPrimary() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holdPrimary
}

// withStateLock runs fn under an OFD lock of type typ on server.lock.
// m.stateMu must be held.
func (m *Manager) withStateLock(typ int16, fn func() error) error {
	if err := ofdSetlkw(fdOf(m.state), typ); err != nil {
		return &LockError{Op: "lock", File: m.state.Name(), Err: err}
	}
	ferr := fn()
	if _, err := ofdSetlk(fdOf(m.state), unix.F_UNLCK); err != nil && ferr == nil {
		ferr = &LockError{Op: "unlock", File: m.state.Name(), Err: err}
	}
	return ferr
}

func (m *Manager) readLocked() (Record, error) {
	var buf [RecordSize + 1]byte
	n, err := m.state.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Record{}, &LockError{Op: "read", File: m.state.Name(), Err: err}
	}
	return DecodeRecord(m.state.Name(), buf[:n])
}

// writeLocked writes r (with a new heartbeat and sequence) and fsyncs the
// file and the directory.
func (m *Manager) writeLocked(r Record) error {
	r.Heartbeat = time.Now()
	r.Seq++
	if _, err := m.state.WriteAt(r.Encode(), 0); err != nil {
		return &LockError{Op: "write", File: m.state.Name(), Err: err}
	}
	if err := m.state.Sync(); err != nil {
		return &LockError{Op: "fsync", File: m.state.Name(), Err: err}
	}
	return m.syncDir()
}

func (m *Manager) syncDir() error {
	d, err := os.Open(m.dir)
	if err != nil {
		return &LockError{Op: "fsync", File: m.dir, Err: err}
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return &LockError{Op: "fsync", File: m.dir, Err: err}
	}
	return nil
}

// ReadState reads server.lock under a read lock.
func (m *Manager) ReadState() (Record, error) {
	if err := m.checkOpen(false); err != nil {
		return Record{}, err
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	var r Record
	err := m.withStateLock(unix.F_RDLCK, func() (err error) {
		r, err = m.readLocked()
		return err
	})
	return r, err
}

// WriteState sets the state letter in server.lock, keeping node ID and
// epoch, and fsyncs the file and the directory. Any broker of the pair may
// write a state (a starting primary writes F while a backup is live).
func (m *Manager) WriteState(s State) error {
	if !s.Valid() {
		return fmt.Errorf("lockfile: invalid state %s", s)
	}
	if err := m.checkOpen(false); err != nil {
		return err
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	return m.withStateLock(unix.F_WRLCK, func() error {
		r, err := m.readLocked()
		if err != nil {
			return err
		}
		r.State = s
		return m.writeLocked(r)
	})
}

// WriteStateAt is WriteState for the live of epoch: it writes only while
// server.lock still names this node and epoch, and no newer epoch was
// written into primary.lock's heartbeat, checked and written under the
// same lock on server.lock as BumpEpoch, so a live whose lock was lost
// silently cannot write its state (P at a clean stop) over the one a
// successor wrote with its new epoch. A superseded epoch is an
// *EpochError.
func (m *Manager) WriteStateAt(s State, epoch uint64) error {
	if !s.Valid() {
		return fmt.Errorf("lockfile: invalid state %s", s)
	}
	if err := m.checkOpen(false); err != nil {
		return err
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	return m.withStateLock(unix.F_WRLCK, func() error {
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
		if hb, ok := m.readHeartbeat(); ok && hb.Epoch > epoch {
			return &EpochError{File: m.primary.Name(), Ours: epoch, Found: hb.Epoch}
		}
		r.State = s
		return m.writeLocked(r)
	})
}

// BumpEpoch takes the next epoch: it reads server.lock, adds one to the
// epoch, sets the state, writes and fsyncs (file and directory), and returns
// the new epoch, which it also writes as the first heartbeat into
// primary.lock. The new epoch is one more than the larger of server.lock's
// and the last heartbeat's. The primary lock must be held (and not
// released by another goroutine meanwhile). A new live calls it before it
// loads the store.
func (m *Manager) BumpEpoch(s State) (uint64, error) {
	if !s.Valid() {
		return 0, fmt.Errorf("lockfile: invalid state %s", s)
	}
	if err := m.checkOpen(true); err != nil {
		return 0, err
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	var epoch uint64
	err := m.withStateLock(unix.F_WRLCK, func() error {
		r, err := m.readLocked()
		if err != nil {
			return err
		}
		if r.NodeID != m.nodeID {
			return &EpochError{File: m.state.Name(), NodeChanged: true}
		}
		// The last live's heartbeat in primary.lock also carries its
		// epoch: take the larger, so an epoch written back over a newer
		// one in server.lock (a writer whose lock on it was lost) is
		// never handed out twice.
		if hb, ok := m.readHeartbeat(); ok && hb.NodeID == m.nodeID && hb.Epoch > r.Epoch {
			r.Epoch = hb.Epoch
		}
		r.Epoch++
		r.State = s
		epoch = r.Epoch
		if err := m.writeLocked(r); err != nil {
			return err
		}
		return m.writeHeartbeat(epoch)
	})
	return epoch, err
}

// readHeartbeat reads primary.lock's heartbeat record, if a valid one is
// there (it is informational: any error means none).
func (m *Manager) readHeartbeat() (Record, bool) {
	var buf [RecordSize + 1]byte
	n, err := m.primary.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Record{}, false
	}
	r, err := DecodeRecord(m.primary.Name(), buf[:n])
	return r, err == nil && n > 0
}

// ReadStateFile reads a record file (server.lock, or the heartbeat in
// primary.lock) at path without locking and without keeping it open, for
// status tools.
func ReadStateFile(path string) (Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Record{}, fmt.Errorf("lockfile: %w", err)
	}
	return DecodeRecord(path, b)
}
