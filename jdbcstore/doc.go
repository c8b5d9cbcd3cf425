// Package jdbcstore is Tandem's PostgreSQL store: the journal interface on
// database tables (one table for bindings, one for messages), the schema
// metadata that versions those tables, and the node-manager lease lock with
// epoch fencing for shared-store HA on a database.
//
// It owns: the journal tables, the tandem_schema meta table and the
// node-manager table named in <database-store>, the SQL that reads and
// writes them, the group-commit writer, and the lease renew loop.
//
// It must never: acknowledge an append before its transaction committed;
// retry a failed batch (a failure is sticky and fatal, like an fsync error);
// commit a batch without checking, in the same transaction, that the
// group's epoch is still the writer's (when fencing is on); take time for a
// lease from the local wall clock (the database's now() decides expiry; the
// monotonic clock only decides when to give up early); import packages
// above the storage layer (ha, server, replication).
//
// # Tables
//
// A journal table has one row per kept entry: seq (bigint primary key, the
// append order), kind, id, tx_id, user_type, data (bytea), epoch and crc
// (CRC32C over all of them, verified at load: a mismatch is a
// *journal.CorruptionError naming the table and the seq). Rows that replay
// no longer needs are deleted in the same transaction that makes them
// useless: a delete removes the record's add and updates (and writes no row
// itself), a rollback removes the transaction's rows, a commit keeps its
// row only while rows of the transaction are still live. The table holds
// the live set, not the history. tandem_schema holds, per table, the
// schema version (a newer one is refused) and the largest ID and epoch,
// which deleted rows take with them.
//
// # Durable commits
//
// Every connection the store opens sends synchronous_commit=on as a
// startup parameter, which outranks the server's, the database's and the
// role's defaults and the URL's own settings (options=-c ..., a
// synchronous_commit parameter), and reads it back before use: a session
// where it is not on is refused, since its commits would be confirmed
// before their WAL is flushed. fsync cannot be set per session: with fsync
// off the store runs but logs an error at open (commits are then not
// durable against a crash of the database server).
//
// # Group commit
//
// One writer goroutine takes everything pending when the previous
// transaction has finished and writes it as one transaction: small batches
// as a pipeline of prepared statements (fence check, INSERT, DELETE, meta
// update) with one Sync, larger ones as one simple query with a binary COPY
// in the middle. Either way PostgreSQL runs it as one implicit transaction
// in one round trip; an error anywhere commits nothing. There is no timer:
// the batch grows with commit latency. Callbacks run after COMMIT returned,
// in append order, from the writer. A failed batch whose error did not come
// from the server (a timeout, a broken connection) has its backend
// terminated before the failure is reported, so it cannot commit later.
//
// One batch is in flight at a time, and that is the ordering rule: a batch
// is sent only after the previous one committed, so the table always holds
// the appends in a prefix of append order (the journal interface requires
// appends to become durable in the order Append was called). When a batch
// fails, nothing after it was sent: the error is sticky, every later
// append fails, and the next Load replays exactly the batches before it
// (plus the failed one itself only when its commit happened but its reply
// was lost, an outcome the caller already treats as unknown). Pipelining
// (sending batch N+1 on a second connection while N commits) was measured
// and not adopted: with writers that each wait for their append it splits
// them into groups and every commit carries fewer rows (see Performance).
// A pipelined writer would also break the prefix unless the database
// enforced it: if N fails after N+1 committed, the load replays N+1 without
// N, and N+1 may update, delete or commit what N added. It would have to
// make N+1's commit wait for N's outcome inside the database (N+1 updating
// last a per-table row that N updated, failing when N rolled back), check
// the fence in each batch, and still acknowledge in order.
//
// # Performance
//
// With W writers that each wait for their append, a transaction carries at
// most W rows, and every append costs one round trip, the insert of its
// batch and one WAL flush: the rate is at most W per (round trip + insert
// of W rows + flush), whatever the writer does. perf-journal's raw_bw
// baseline, COPY of 10 000 rows per transaction, pays those fixed costs
// once per 10 000 rows. On a loaded machine the fixed costs (scheduling
// delays of each wakeup, WAL flush latency on a shared disk) grow several
// times while bulk COPY slows far less, so journal/COPY swings with the
// load. BenchmarkInterleaved64 measures the bound at the same moment:
// raw64, bare COPY transactions of 64 rows on one connection, reached 0.31
// to 0.43 of bulk COPY on the shared 2-core test machine (load 7 to 9), and
// the journal 76 to 88% of raw64.
//
// # Lease and fencing
//
// The node-manager table has rows per group: "primary" and "backup" leases
// (holder, expiry by the database clock, epoch) and "state" (the Artemis
// state letter and the node ID). Acquiring a lease is a conditional UPDATE
// that bumps the epoch. A journal opened with Fence{Table, Group, Epoch}
// starts every batch with a function that takes a FOR KEY SHARE lock on
// the group's primary row and raises SQLSTATE TF001 unless the epoch is
// still the writer's: a takeover (which locks that row FOR UPDATE) waits
// for batches in flight and every later batch of the old writer fails with
// ErrFenced. Renewals take no lock that batches hold, so they never wait
// for a batch. A journal's Close writes nothing but the batches still
// queued, each fenced the same way, so an old live stopped after a
// takeover changes nothing; NodeManager.WriteStateAt (the P of a clean
// stop) takes the same lock and writes only under the writer's epoch. A
// takeover that waits too long terminates the sessions blocking it (an
// expired holder paused in the middle of a batch). Lease.Run renews every
// renew period and closes Lost once less than one renew period of the
// lease is left since the start of its last successful renewal; a journal
// opened with Options.Lease then fails with ErrLeaseLost.
//
// # Wiring (for the broker)
//
//	m, _ := jdbcstore.OpenNodeManager(ctx, jdbcstore.NodeManagerOptions{URL: url, Table: s.NodeManagerStoreTable, Group: group,
//		LockExpiration: s.LockExpiration, RenewPeriod: s.LockRenewPeriod})
//	lease := m.Lease(jdbcstore.LockPrimary)
//	epoch, _ := lease.Acquire(ctx, time.Second)
//	go lease.Run(ctx)
//	fence := jdbcstore.Fence{Table: m.Table(), Group: group, Epoch: epoch}
//	messages, _ := jdbcstore.Open(ctx, jdbcstore.Options{URL: url, Table: s.MessageTable, Fence: fence, Lease: lease})
//	bindings, _ := jdbcstore.Open(ctx, jdbcstore.Options{URL: url, Table: s.BindingsTable, Fence: fence, Lease: lease})
//
// url may be the jdbc:postgresql:// form as written in broker.xml.
package jdbcstore
