// Package ha owns the activation state machines that decide when a broker
// may serve from its store, and the adapters that run them.
//
// The machines are pure, deterministic code in the style of etcd raft: no
// goroutines, clocks, files or sockets inside. A Node takes an Event (a
// tick with a monotonic time, the result of an action it asked for, a lock
// lost, a storage error, a stop request, a peer announcement) and returns
// the Actions the caller must carry out, in order (try to acquire a lock,
// write a state, bump the epoch, load the store, start or stop serving,
// release a lock, halt, announce the topology). An adapter executes the
// actions one by one and feeds each result back as an Event before it
// delivers the next outside event; CanAck(now) tells the server whether it
// may acknowledge.
//
// Shared store, as Artemis's <shared-store> policy: the primary and its
// backups share one store and coordinate through a lock: the lock directory
// (package lockfile) or a database lease (the same machine with
// Coordinator DBLease: the lease is acquired, renewed by the machine's
// RenewLease actions and expires; jdbcstore provides it). A Runner runs a
// Node against a Backend (the coordinator's operations);
// FileLockCoordinator is the Runner over FileBackend (lockfile.Manager). A
// database Backend wraps jdbcstore's NodeManager and Lease the same way
// (its Renew wraps ErrLost when the lease is gone).
//
// Options failover-on-shutdown (default false), allow-failback (default
// true) and restart-backup (default true) mean what they mean in Artemis.
//
// Integration: the server calls CanAck before every acknowledgement (and
// acknowledges nothing when it is false), writes the epoch given to
// LoadStore into everything it writes, reports journal errors with
// StorageError, shows Status in /status, and exits with the "halted"
// status (3) when Run returns a *HaltError. A shared file store gates
// every write on MayWrite: allowed during the broker's own load under its
// new epoch, otherwise only while it can prove it holds the lock, also
// while it closes the store on a stop or failback (the monitor's newest
// verification counts, LiveVerifier); never after a halt. A stop of a
// serving node that cannot prove it any more halts instead, and the P a
// clean stop writes is conditional on the epoch (ActWriteState.Epoch), so
// an ex-live paused past its lease and then stopped touches neither the
// store nor its successor's state.
//
// Timing with the file lock (defaults: lock poll 100 ms, lease 1 s, fence
// 1.2 s: the lease plus FenceMargin, a tenth of the lease plus 100 ms, for
// clock-rate drift between hosts and the time between a check and its
// effect): failover after the live dies takes about poll + fence + the
// store load (BenchmarkFailoverSIGKILL measured about 1.15 s with an empty
// store and the former 1 s fence). With the database lease a crashed
// live's lease must expire first (jdbc-lock-expiration); a clean stop
// with failover releases it at once. docs/ha-shared-store.md describes
// each fault for users, and what the storage must bound (the in-flight
// window).
//
// Invariants (exhaustively checked in tests, see sim_test.go):
//   - a new live takes a new, strictly larger epoch before it loads the
//     store, and starts serving only after a verification of its lock or
//     lease made after that;
//   - with the file lock it waits one lease plus FenceMargin (the fence)
//     after the epoch bump before it loads: a previous live that lost its
//     lock silently then acknowledges and writes nothing any more, because
//     its last verification that could still see the old epoch is older
//     than its lease;
//   - once a newer epoch was loaded, no broker of an older epoch may write
//     the store (MayWrite), outside its own load;
//   - CanAck is true only while active and while the last good
//     verification is younger than the lease; a lost lock, a storage error
//     or an expired lease halts the node (fail-stop, nothing retried).
//
// Failback: a starting primary takes the failback lock, writes F, waits
// for the primary lock, and releases the failback lock once it has its
// epoch. The live backup hands over only for an F whose primary holds the
// failback lock; a waiting backup treats an F without it as stale (the
// primary died while starting) and activates. Artemis has no such proof: a
// primary that crashes after writing F leaves its backup passive until it
// returns. The database lease keeps Artemis's rule (the table has no
// failback lock), so the limitation remains there.
//
// Replication coordinated by ZooKeeper (<replication> with <manager>,
// Artemis's pluggable lock manager): ReplNode is the pure machine
// (repl_node.go: the local and coordinated activation sequences, claim and
// commit, classification, failback), ZKCoordinator the ZooKeeper adapter
// (zk.go: the lock as an ephemeral znode, the coordinated sequence as a
// compare-and-set znode, the lease from the negotiated session timeout,
// ZKLease), ReplRunner runs them against the broker's ReplHooks
// (repl_runner.go). The explorer (repl_explore_test.go, repl_sim_test.go)
// checks I1, I4 and I9 over every interleaving of two brokers, ZooKeeper,
// the replicated data and a fault budget, and its self-check finds seeded
// bugs; testdata/repl/ holds the transcripts. Users' documentation:
// docs/ha-replication-zookeeper.md.
//
// Replication coordinated by the quorum vote (<replication> without a
// <manager>, issue 14): QuorumNode is the pure activation machine (claim,
// lease and bump rounds counted per voter; quorum_node.go), QuorumVoter
// every broker's vote with its durable register (quorum_voter.go,
// quorum_state.go: DIR/quorum/state), QuorumRunner runs both against the
// same ReplHooks as ReplRunner and a QuorumTransport (the broker's
// network adapter; quorum_runner.go). The explorer (quorum_explore_test.go,
// quorum_sim_test.go) checks I1, I4, I9 and Q1 (a claim acted on had a
// majority of distinct voters); -quorum-full explores the full fault
// budgets. Users' documentation: docs/ha-replication-quorum.md.
//
// This package never touches the store's data and never sleeps to
// synchronise: time only enters as Event.Now.
package ha
