package ha

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// State is the shared state letter (Artemis's letters, as in server.lock).
type State = lockfile.State

// Role is a broker's configured role in a shared-store pair.
type Role int

// Roles.
const (
	Primary Role = iota // <primary> or <master>
	Backup              // <backup> or <slave>
)

func (r Role) String() string {
	if r == Backup {
		return "backup"
	}
	return "primary"
}

// Coordinator is what arbitrates the pair.
type Coordinator int

// Coordinators.
const (
	// FileLock is the lock directory: OS locks released when the holder
	// dies, verified by a monitor that reports Verified events.
	FileLock Coordinator = iota
	// DBLease is a database lease: acquired when expired, renewed by
	// RenewLease actions, fenced by its expiry.
	DBLease
)

func (c Coordinator) String() string {
	if c == DBLease {
		return "db-lease"
	}
	return "file-lock"
}

// Config configures a Node. Use DefaultConfig and change fields.
type Config struct {
	Role        Role
	Coordinator Coordinator
	// FailoverOnShutdown: a clean stop leaves the state L so the backup
	// activates (default false: it writes P and the backup stays passive).
	FailoverOnShutdown bool
	// AllowFailback: an active backup hands back to a primary that
	// returned and wrote F (default true).
	AllowFailback bool
	// RestartBackup: after failing back, the backup waits again (default
	// true); otherwise it stops.
	RestartBackup bool
	// RetryInterval is the wait between two lock attempts.
	RetryInterval time.Duration
	// Lease is how long a good verification (file lock) or renewal
	// (database lease, measured from the start of the renew request) lets
	// the live acknowledge. For DBLease it must not exceed the database
	// lease expiration.
	Lease time.Duration
	// FenceWait is the wait between the epoch bump and loading the store.
	// FileLock needs at least Lease (the previous live may have lost its
	// lock silently), and DefaultConfig adds FenceMargin(Lease) to it;
	// DBLease needs none (acquiring implies the previous lease expired,
	// and the database fences every batch by the epoch).
	FenceWait time.Duration
	// RenewInterval is the database lease renew period (DBLease only).
	RenewInterval time.Duration
}

// The file-lock fence waits one lease plus a margin: FenceMargin(lease) =
// lease/FenceMarginDivisor + FenceMarginFixed. The lease alone is exact
// only on a single clock with nothing between a check and its effect. The
// margin covers:
//   - clock-rate drift: the old live measures its lease on its host's
//     monotonic clock, the new live its fence on another host's. Clocks
//     disciplined by NTP differ by at most 500 ppm (NTP's slew limit); a
//     free-running or virtualised clock can be worse. A tenth of the lease
//     is 100 000 ppm: room for a badly kept clock, not a wrong one;
//   - the time between a check and what it guards: a CanAck check and the
//     answer leaving the socket, the fenced file's check and its write
//     reaching the storage (a few scheduler quanta on a busy host; 100 ms
//     is many of them). A write that the storage itself can hold longer
//     (a hard-mounted NFS, a device retrying) needs a longer margin: see
//     docs/ha-shared-store.md, "The in-flight window".
const (
	FenceMarginDivisor = 10
	FenceMarginFixed   = 100 * time.Millisecond
)

// FenceMargin returns what the file-lock fence waits beyond lease.
func FenceMargin(lease time.Duration) time.Duration {
	return lease/FenceMarginDivisor + FenceMarginFixed
}

// DefaultConfig returns the defaults for role and coordinator. With the
// file lock the fence is the lease plus FenceMargin(lease): 1.2 s with the
// default 1 s lease.
func DefaultConfig(role Role, c Coordinator) Config {
	cfg := Config{
		Role: role, Coordinator: c,
		AllowFailback: true, RestartBackup: true,
		RetryInterval: lockfile.DefaultPollInterval,
		Lease:         lockfile.DefaultLease,
	}
	if c == FileLock {
		cfg.FenceWait = cfg.Lease + FenceMargin(cfg.Lease)
	} else {
		// Artemis: jdbc-lock-expiration 20 s, renew period 4 s. The lease
		// a broker trusts locally is the expiration minus one renew
		// period (the adapter passes the real numbers).
		cfg.Lease = 16 * time.Second
		cfg.RenewInterval = 4 * time.Second
	}
	return cfg
}

// Validate checks the durations.
func (c Config) Validate() error {
	if c.RetryInterval <= 0 || c.Lease <= 0 {
		return errors.New("ha: retry interval and lease must be positive")
	}
	if c.Coordinator == FileLock && c.FenceWait < c.Lease {
		return fmt.Errorf("ha: fence wait %v shorter than the lease %v: a live that lost its lock silently could still acknowledge", c.FenceWait, c.Lease)
	}
	if c.Coordinator == DBLease && (c.RenewInterval <= 0 || c.RenewInterval >= c.Lease) {
		return fmt.Errorf("ha: renew interval %v must be positive and shorter than the lease %v", c.RenewInterval, c.Lease)
	}
	return nil
}

// EventKind says what happened.
type EventKind int

// Event kinds.
const (
	// EvStart starts the node.
	EvStart EventKind = iota
	// EvTick says time passed (Event.Now).
	EvTick
	// EvDone is the result of the pending operation (Event.Op): Ok for a
	// lock attempt (false: held by another), State for ReadState, Epoch
	// for BumpEpoch, Err when it failed.
	EvDone
	// EvVerified is a good verification of the lock (file-lock monitor) or
	// renewal of the lease, started at Event.Start, seeing Event.Epoch and
	// Event.State.
	EvVerified
	// EvLockLost says the lock or lease is no longer ours (Event.Err).
	// Event.Epoch, if not 0, names the activation it concerns: a report
	// about an earlier activation is ignored.
	EvLockLost
	// EvStorageError is an I/O error of the store (Event.Err).
	EvStorageError
	// EvStop asks for a clean stop; Event.Failover overrides
	// FailoverOnShutdown.
	EvStop
	// EvPeerAnnounced says another broker of the pair announced itself
	// (Event.Peer).
	EvPeerAnnounced
)

var eventNames = [...]string{"start", "tick", "done", "verified", "lock-lost", "storage-error", "stop", "peer-announced"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Failover overrides FailoverOnShutdown for one stop.
type Failover int

// Failover choices.
const (
	FailoverDefault Failover = iota
	FailoverYes
	FailoverNo
)

// Peer is another broker's announcement.
type Peer struct {
	Role   Role
	Epoch  uint64
	Active bool
}

// Event is one input of a Node.
type Event struct {
	Kind EventKind
	// Now is the monotonic time of the event (any fixed origin).
	Now time.Duration

	Op    ActionKind    // EvDone: which operation
	Ok    bool          // EvDone of a lock attempt: acquired
	State State         // EvDone of ReadState, EvVerified
	Epoch uint64        // EvDone of BumpEpoch, EvVerified, EvLockLost
	Start time.Duration // EvVerified: when the verification started
	// Waiting (EvDone of ReadState, EvVerified): a primary that wrote F
	// is alive and waiting (it holds the failback lock). An F without it
	// is stale. Coordinators without a failback lock always say true.
	Waiting  bool
	Err      error
	Failover Failover
	Peer     Peer
}

func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	switch e.Kind {
	case EvDone:
		b.WriteString(" " + e.Op.String())
		switch {
		case e.Err != nil:
			fmt.Fprintf(&b, " err=%q", e.Err.Error())
		case e.Op == ActTryAcquirePrimary || e.Op == ActTryAcquireBackup || e.Op == ActTryAcquireFailback:
			fmt.Fprintf(&b, " ok=%v", e.Ok)
		case e.Op == ActReadState:
			fmt.Fprintf(&b, " state=%c waiting=%v", byte(e.State), e.Waiting)
		case e.Op == ActBumpEpoch:
			fmt.Fprintf(&b, " epoch=%d", e.Epoch)
		}
	case EvVerified:
		fmt.Fprintf(&b, " start=%v epoch=%d state=%c waiting=%v", e.Start, e.Epoch, byte(e.State), e.Waiting)
	case EvLockLost, EvStorageError:
		fmt.Fprintf(&b, " err=%q", fmt.Sprint(e.Err))
	case EvStop:
		b.WriteString([...]string{"", " failover=true", " failover=false"}[e.Failover])
	case EvPeerAnnounced:
		fmt.Fprintf(&b, " role=%s epoch=%d active=%v", e.Peer.Role, e.Peer.Epoch, e.Peer.Active)
	}
	fmt.Fprintf(&b, " @%v", e.Now)
	return b.String()
}

// ActionKind says what the caller must do.
type ActionKind int

// Action kinds. Those marked "op" answer with an EvDone carrying the same
// kind; the others answer nothing.
const (
	ActNone ActionKind = iota
	// ActWriteState writes Action.State (op). When Action.Epoch is not 0
	// the write is conditional: it fails unless the coordinator's epoch is
	// still Action.Epoch (a live writing P at its stop must not write over
	// the state of a successor it does not know about).
	ActWriteState
	// ActTryAcquirePrimary tries once for the primary lock or lease (op).
	ActTryAcquirePrimary
	// ActTryAcquireBackup tries once for the backup lock or lease (op).
	ActTryAcquireBackup
	// ActReadState reads the shared state (op).
	ActReadState
	// ActBumpEpoch takes the next epoch and writes state L with it (op).
	ActBumpEpoch
	// ActLoadStore loads (replays) the store under Action.Epoch (op).
	ActLoadStore
	// ActStartMonitor starts verifying the lock under Action.Epoch: the
	// adapter reports EvVerified every check and EvLockLost on failure
	// (file lock only).
	ActStartMonitor
	// ActStopMonitor stops the monitor.
	ActStopMonitor
	// ActRenewLease renews the lease of Action.Epoch; the answer is an
	// EvVerified (renewed), an EvLockLost (someone else holds it) or an
	// EvDone with Err (transient failure) (database lease only; op).
	ActRenewLease
	// ActStartServing: accept clients and acknowledge (while CanAck)
	// under Action.Epoch.
	ActStartServing
	// ActStopServing: acknowledge nothing more, close client connections.
	ActStopServing
	// ActReleasePrimary releases the primary lock or lease.
	ActReleasePrimary
	// ActReleaseBackup releases the backup lock or lease.
	ActReleaseBackup
	// ActAnnounce announces this broker (Action.Epoch, Action.Active) and
	// the known peers to clients and cluster members.
	ActAnnounce
	// ActHalt: stop at once on an error (Action.Err); exit code "halted".
	ActHalt
	// ActStopped: the clean stop is complete.
	ActStopped
	// ActTryAcquireFailback tries once for the failback lock, which a
	// starting primary holds while its F is pending (op).
	ActTryAcquireFailback
	// ActReleaseFailback releases the failback lock.
	ActReleaseFailback
)

var actionNames = [...]string{"none", "write-state", "try-acquire-primary", "try-acquire-backup", "read-state",
	"bump-epoch", "load-store", "start-monitor", "stop-monitor", "renew-lease", "start-serving",
	"stop-serving", "release-primary", "release-backup", "announce", "halt", "stopped",
	"try-acquire-failback", "release-failback"}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// IsOp reports whether the action answers with an EvDone.
func (k ActionKind) IsOp() bool {
	switch k {
	case ActWriteState, ActTryAcquirePrimary, ActTryAcquireBackup, ActTryAcquireFailback, ActReadState, ActBumpEpoch, ActLoadStore, ActRenewLease:
		return true
	}
	return false
}

// Action is one output of a Node.
type Action struct {
	Kind   ActionKind
	State  State  // ActWriteState
	Epoch  uint64 // ActWriteState (0: unconditional), ActLoadStore, ActStartMonitor, ActRenewLease, ActStartServing, ActAnnounce
	Active bool   // ActAnnounce
	Peers  []Peer // ActAnnounce
	Err    error  // ActHalt
}

func (a Action) String() string {
	s := a.Kind.String()
	switch a.Kind {
	case ActWriteState:
		s += fmt.Sprintf(" %c", byte(a.State))
		if a.Epoch != 0 {
			s += fmt.Sprintf(" if-epoch=%d", a.Epoch)
		}
	case ActLoadStore, ActStartMonitor, ActRenewLease, ActStartServing:
		s += fmt.Sprintf(" epoch=%d", a.Epoch)
	case ActAnnounce:
		s += fmt.Sprintf(" epoch=%d active=%v", a.Epoch, a.Active)
		for _, p := range a.Peers {
			s += fmt.Sprintf(" peer=%s/%d/%v", p.Role, p.Epoch, p.Active)
		}
	case ActHalt:
		s += fmt.Sprintf(" %q", fmt.Sprint(a.Err))
	}
	return s
}

// Errors reported in ActHalt.
var (
	// ErrLeaseExpired: no good verification or renewal within the lease.
	ErrLeaseExpired = errors.New("ha: lease expired")
	// ErrEpochMismatch: a verification saw another epoch than ours.
	ErrEpochMismatch = errors.New("ha: epoch superseded")
)
