// Package jdbcstore is Tandem's PostgreSQL store: the journal interface on
// database tables (one table for bindings, one for messages), the schema
// metadata that versions those tables, and the node-manager lease lock with
// epoch fencing for shared-store HA on a database.
//
// It owns: the journal tables, the tandem_schema meta table and the
// node-manager table named in <database-store>, the SQL that reads and
// writes them, the group-commit writer (one database transaction per batch
// of pending appends, adaptive: the next batch is whatever is pending when
// the previous commit returns), and the lease renew loop.
//
// It must never: acknowledge an append before its transaction committed;
// retry a failed batch (a failure is sticky and fatal, like an fsync error);
// commit a batch without checking, in the same transaction, that the
// group's epoch is still the writer's (when fencing is on); take time for a
// lease from the local wall clock (the database's now() decides expiry; the
// monotonic clock only decides when to give up early); import packages
// above the storage layer (ha, server, replication).
package jdbcstore
