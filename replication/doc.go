// Package replication copies a live broker's journals to a replica over a
// cluster connection (issue 13; Artemis's replication HA policy): the
// initial synchronisation, the live record stream, and the acknowledgement
// that lets the live confirm a durable operation only once the replica
// holds it too.
//
// It owns the bytes on the replication connection and the replica's copy
// of the journal files, and nothing else: it never decides who is live
// (package ha does, with ZooKeeper or a vote), never loads a journal and
// never serves clients. It must never let the live confirm an operation
// the replica does not hold durably once the replica may have completed
// its sync, and never let a replica's half-written copy pass for a
// complete one.
//
// # Files
//
//	source.go   the live side: one replica at a time, the initial sync
//	            and the live stream of both journals, the completion gates
//	replica.go  the replica side: register, receive, write, sync, ack
//	segments.go the replica's segment files: create, write, sync, remove,
//	            and setting the previous data aside before a new sync
//	frames.go   the framed connection both sides use
//
// # The data path
//
// The live subscribes to both journals' record streams (journal.Subscribe
// Replica) from their oldest segment: the stream hands out every durable
// byte in order (segment headers, records, seals, padding), sealed
// segments first, then the segment being written as it becomes durable.
// The replica writes each range at its offset into a segment file of the
// same sequence and size, so its files are byte copies of the live's,
// which load to the same state (journal.ApplyBatch's rule). It fsyncs and
// acknowledges the position it holds durably (ReplicaAck).
//
// The sync ends as follows. When the replica is close behind (its
// acknowledged position within CatchUpBytes of the durable end of both
// journals), the live attaches a journal.Gate to each journal: from then
// on a batch's completions (the answers to clients) wait until the replica
// acknowledged the batch's end. The live records G, the durable ends at
// that moment (every batch already answered ends before G), and once the
// replica acknowledged G on both journals it reports BackupSynced (package
// ha records that this replica may now hold a complete copy) and only then
// sends ReplicaSynced with its activation sequence. The replica makes that
// sequence durable as its local one: the durable "sync complete" marker.
// Until then its local sequence is 0, which never activates. Only this
// last catch-up holds answers, for at most the initial-replication-sync-
// timeout; when it expires the sync is abandoned (the gates released: the
// replica never got ReplicaSynced) and the replica starts over.
//
// # Losing the replica
//
// When a replica that may have completed its sync goes away (connection
// lost, no traffic for the TTL, or too slow: a held answer older than
// CallTimeout), the gates keep holding and the live calls BackupLost.
// Package ha then bumps the activation sequence (so the replica's copy is
// stale and can never activate) and calls ReleaseHeld, which completes
// what was held. If the bump fails the broker halts and nothing held is
// ever confirmed. A replica that never synced is dropped with its gates
// released at once. Once the broker stopped serving (FailHeld: a stop, a
// failback's handover or a halt), a lost replica's gates fail at once
// instead: nothing is confirmed to clients any more, and nothing would
// ever release them.
//
// # Acknowledgement levels
//
// AckDurable (Tandem's default): the replica acknowledges after its
// fdatasync, so a confirmed operation survives the live's loss and a
// power loss of the replica. AckReceived (Artemis's behaviour): the replica
// acknowledges once the bytes are written to its files, before the
// fdatasync; a confirmed operation then survives the loss of either broker
// but not a power loss of both.
//
// Compaction does not run on the live while a replica is attached (see
// journal.Compact): the replica removes the segments the live reclaims
// (ReplicaData.Oldest), which is only safe while its copies are byte
// copies. Reclaim runs as usual on both.
package replication
