package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Kind is the kind of a journal entry, as in Artemis's journal: plain
// add/update/delete, their transactional forms, and the transaction
// control records.
type Kind uint8

// Entry kinds. The values are part of the on-disk and on-wire formats: never
// renumber them.
const (
	KindAdd      Kind = 1
	KindUpdate   Kind = 2
	KindDelete   Kind = 3
	KindAddTx    Kind = 4
	KindUpdateTx Kind = 5
	KindDeleteTx Kind = 6
	KindPrepare  Kind = 7
	KindCommit   Kind = 8
	KindRollback Kind = 9
)

var kindNames = [...]string{
	KindAdd: "add", KindUpdate: "update", KindDelete: "delete",
	KindAddTx: "add-tx", KindUpdateTx: "update-tx", KindDeleteTx: "delete-tx",
	KindPrepare: "prepare", KindCommit: "commit", KindRollback: "rollback",
}

// String returns the kind's name as `tandem data print` shows it.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindAdd && k <= KindRollback }

// Transactional reports whether entries of this kind belong to a transaction.
func (k Kind) Transactional() bool { return k >= KindAddTx }

// Entry is one journal operation.
//
//   - Add, Update, Delete: ID names the record; Type and Data are the user
//     record type and body (Delete has neither).
//   - AddTx, UpdateTx, DeleteTx: the same, inside transaction TxID; they take
//     effect only when TxID commits.
//   - Prepare: TxID becomes prepared (two-phase); Data is the caller's
//     extra data (an XID). A prepared transaction survives restarts until
//     it is committed or rolled back.
//   - Commit, Rollback: TxID ends.
type Entry struct {
	Kind Kind
	ID   uint64
	TxID uint64
	Type uint8
	Data []byte
}

// Update is an update appended to a live record. Updates do not replace the
// record's data: like Artemis's, they are events the layer above
// interprets (a queue reference, a delivery count).
type Update struct {
	Type uint8
	Data []byte
}

// Record is a live record after replay: its add and every update since, in
// journal order.
type Record struct {
	ID      uint64
	Type    uint8
	Data    []byte
	Updates []Update
}

// PendingTx is a prepared transaction found at load: neither committed nor
// rolled back. Its entries are not applied to the live set.
type PendingTx struct {
	TxID    uint64
	Data    []byte // the prepare record's data
	Entries []Entry
}

// LoadResult is what replay found.
type LoadResult struct {
	// Records are the live records, in the order of their adds.
	Records []Record
	// Prepared are the prepared transactions, in the order of their prepares.
	Prepared []PendingTx
	// RolledBack counts transactions that had entries but were never
	// prepared or finished; load rolls them back.
	RolledBack int
	// MaxID is the largest record or transaction ID the journal has seen,
	// live or not, so ID generators above can resume past it.
	MaxID uint64
	// Epoch is the largest epoch found in the store (0 when empty).
	Epoch uint64
	// Warnings are conditions that were repaired, such as a torn tail
	// that was truncated. A torn tail holds records that were never
	// acknowledged, unless the damage hit the last synced batch and no
	// later record says how far the segment was durable: the two cannot be
	// told apart, and the warning says so (see docs/journal.md).
	Warnings []string
}

// Journal is a durable, append-only record log. Two instances serve a
// broker (bindings and messages). The file journal and the PostgreSQL store
// implement it; journaltest holds the conformance suite every
// implementation must pass.
//
// Rules every implementation keeps:
//   - Load is called exactly once, before any Append.
//   - Append is safe for concurrent use. Appends are ordered: they become
//     durable in the order Append was called (serialised by the journal),
//     and their done callbacks run in that order, one at a time, never
//     concurrently with each other.
//   - The entries of one Append call are atomic: after a crash, all of them
//     are loaded or none are. An Append with no entries is a barrier: its
//     done runs once every earlier append is complete (durable with sync).
//   - Append validates the entries in order against the state left by every
//     earlier append (not only the durable ones) and copies them: the
//     caller may reuse entries and their Data once Append returns.
//   - done must not block for long: callbacks run one at a time on the
//     journal's completion goroutine.
//   - done(nil) with sync true means durable (fdatasync or database commit
//     returned). With sync false, done runs once the entries are written
//     (in the page cache or sent to the database), and they become durable
//     with the next synced append.
//   - A storage error is sticky and fatal: the append that met it, every
//     pending append and every later append fail with it, nothing is
//     retried, and Failed is closed. The broker then halts this store.
//   - Append returns an error, and never calls done, when the request is
//     invalid (ErrUnknownRecord, ErrDuplicateRecord, ErrUnknownTx,
//     ErrTooLarge), when the journal is closed (ErrClosed) or has failed.
type Journal interface {
	// Load replays the store and returns its live state.
	Load(ctx context.Context) (*LoadResult, error)
	// Append appends entries atomically and calls done with the outcome.
	Append(entries []Entry, sync bool, done func(error)) error
	// Failed is closed once the journal has met a fatal error.
	Failed() <-chan struct{}
	// Err returns the fatal error, or nil.
	Err() error
	// Close flushes pending appends, completes their callbacks and releases
	// the store. Appends after Close fail with ErrClosed.
	Close() error
}

// Errors returned by Append for invalid requests.
var (
	ErrClosed          = errors.New("journal: closed")
	ErrNotLoaded       = errors.New("journal: append before load")
	ErrUnknownRecord   = errors.New("journal: update or delete of a record that is not live")
	ErrDuplicateRecord = errors.New("journal: add of a record ID that is live")
	ErrUnknownTx       = errors.New("journal: commit, rollback or prepare of an unknown transaction")
	ErrTooLarge        = errors.New("journal: entries too large for one segment")
)

// AppendSync appends entries with sync and waits until they are durable or
// ctx is done. When ctx ends first the outcome is unknown: the entries may
// still become durable.
func AppendSync(ctx context.Context, j Journal, entries ...Entry) error {
	w := syncWaiters.Get().(*syncWaiter)
	if err := j.Append(entries, true, w.done); err != nil {
		syncWaiters.Put(w)
		return err
	}
	cancel := ctx.Done()
	if cancel == nil {
		// A context that never ends: a plain receive, cheaper than a select
		// (selectgo was 9% of the CPU at 64 writers).
		err := <-w.ch
		syncWaiters.Put(w)
		return err
	}
	select {
	case err := <-w.ch:
		syncWaiters.Put(w) // empty again: reusable
		return err
	case <-cancel:
		return ctx.Err() // w is dropped: its done may still send
	}
}

// syncWaiter is AppendSync's completion channel with its callback, reused
// through a pool: a channel and a closure per call were ~5% of the CPU of
// perf-journal at 64 writers.
type syncWaiter struct {
	ch   chan error
	done func(error)
}

var syncWaiters = sync.Pool{New: func() any {
	w := &syncWaiter{ch: make(chan error, 1)}
	w.done = func(err error) { w.ch <- err }
	return w
}}

// CorruptionError reports damage that replay must not repair by itself: a
// bad record that a later record says was durable, any bad record in a
// sealed segment, a gap in the segment sequence, a short segment.
type CorruptionError struct {
	File   string // path of the segment (or table name for a database store)
	Offset int64  // byte offset in the file (or the row's sequence number)
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Offset, e.Reason)
}
