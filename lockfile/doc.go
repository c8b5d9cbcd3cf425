// Package lockfile owns the shared-store lock of a Tandem primary/backup
// pair: the files in node-manager-lock-directory (by default the journal
// directory) that decide which broker of a pair may serve from the shared
// store, the node ID of the pair, the activation epoch, and the lease
// monitor that keeps the live broker from acknowledging anything once it
// can no longer prove it still holds the lock.
//
// # Files
//
//   - server.lock: the state record (format below). Reads and writes of the
//     record happen under a whole-file OFD lock on server.lock itself (write
//     lock to write, read lock to read), held only for the operation.
//   - primary.lock: whole-file write lock held by the live broker (the
//     primary, or the backup once it activated). Its content is the live's
//     heartbeat: a record in the server.lock format (state L, node ID, the
//     live's epoch, time, sequence) rewritten and fsynced on every
//     verification. Informational only; never read for safety.
//   - backup.lock: whole-file write lock held by the one backup that waits
//     for the primary lock (Artemis lets one backup wait at a time).
//   - failback.lock: whole-file write lock held by a starting primary from
//     before it writes F until it has the primary lock and its epoch. It
//     tells an F written by a primary that is alive and waiting (the live
//     backup hands over) from an F left by a primary that died while
//     starting (a backup may then activate). Artemis has no such proof and
//     stays passive forever in that case.
//
// The locks are open file description (OFD) locks (fcntl F_OFD_SETLK), so
// they conflict between two Managers of the same process as well as between
// processes, and they are released by the kernel when the process dies. Each
// Manager opens each file exactly once and keeps it open until Close. With
// classic POSIX (F_SETLK) locks any close(2) of the file anywhere in the
// process would drop the lock; OFD locks belong to the open file
// description, so status readers (Probe, ReadStateFile) may open and close
// the files, even inside a broker process (tested). Never switch these
// locks to F_SETLK or flock without revisiting that. This package never
// deletes or renames its files.
//
// # server.lock format (version 1, 52 bytes, big-endian)
//
//	offset size field
//	0      1    state letter: 'L' active, 'F' failing back, 'P' paused,
//	            'N' not started, '0' first start (Artemis's letters)
//	1      3    magic "TND"
//	4      2    format version (1)
//	6      2    reserved, zero
//	8      16   node ID (random UUID, created once with the file)
//	24     8    epoch: activation sequence, strictly increasing
//	32     8    heartbeat: wall-clock Unix nanoseconds of the last write
//	            (informational: for status output; never used for safety)
//	40     8    write sequence: +1 on every write
//	48     4    CRC32C (Castagnoli) of bytes 0..47
//
// An empty file is a fresh directory (state '0', no node ID yet); Open then
// creates the record. Any other length, a bad magic, an unknown version or a
// CRC mismatch is a *FormatError naming the file and offset; nothing here
// repairs it.
//
// # Epochs and the lease
//
// A broker that got the primary lock calls BumpEpoch before it loads the
// store: the new epoch is durable (file and directory fsynced) before any
// record is written under it. The live then runs a Monitor. Every check
// interval the monitor re-verifies: that no one else holds a conflicting
// lock (F_OFD_GETLK; on NFSv4 this asks the server, so a lock the server
// revoked and gave to the backup shows up, and a lost client lease gives
// EIO or ENOLCK); that the open
// files are still the files at their paths (fstat of the fd against stat of
// the path: a deleted or replaced file means our lock guards nothing); that
// server.lock still carries our node ID and our epoch; and it writes a
// heartbeat into primary.lock and fsyncs, so a dead storage shows up as
// an I/O error. The monitor never writes server.lock: a live that lost its
// lock silently could otherwise write an old epoch back over a new one. CanAck
// is true only while the start of the last good verification is younger
// than the lease (measured on the monotonic clock). Any error (EIO, ENOLCK,
// a newer epoch, a replaced file, a verification that does not finish within
// the lease) closes Lost and the broker must halt: nothing is retried.
//
// A new live that cannot be sure the previous one died (the lock may have
// been lost silently, as NFS can) must wait one lease after its BumpEpoch
// before it loads the store: by then the old live's last verification
// that could have seen the old epoch is older than the lease, so it
// acknowledges and writes nothing more. package ha does that wait (the
// fence), plus a margin for clock-rate drift between hosts and the time
// between a check and its effect (ha.FenceMargin).
//
// A live writes its state letter at a clean stop (P) with WriteStateAt,
// which writes only while server.lock (and primary.lock's heartbeat) still
// carries its epoch, under the same lock as BumpEpoch: a live that lost
// its lock silently never writes over its successor's state.
//
// # NFS
//
// Use NFSv4 (v3 locking goes through the separate NLM protocol and loses
// locks across server restarts far more readily). Mount options:
//
//   - sync: writes are sent to the server before write(2) returns, so an
//     outage surfaces as an error on the write instead of later.
//   - hard vs soft: soft makes an operation fail with EIO after retrans
//     retries of timeo each, which is what lets the monitor see an outage
//     and halt; hard retries forever, so the monitor's verification hangs
//     and the lease expiry (not an error) stops acknowledgements. For
//     acknowledgements both are safe, because CanAck is driven by the last
//     good verification; for the journal's writes only soft gives a bound: a
//     write blocked on a hard mount lands whenever the server returns,
//     possibly after a successor loaded (see timeo below). Soft (Artemis's
//     recommendation, together with intr) also gives a faster, clearer
//     halt. With soft, never run anything but this lock and the journal
//     (whose every error is fatal) on the mount.
//   - noac: no attribute caching, so size and inode checks see the server.
//   - lookupcache=none: no dentry caching, so a replaced file is seen at
//     once by the path stat.
//   - timeo and retrans: timeo is in tenths of a second; over TCP the
//     client backs off linearly (timeo more for each retransmission), so
//     a soft mount fails an operation after about timeo/10 x
//     (retrans+1)(retrans+2)/2 seconds. The defaults (timeo=600,
//     retrans=2) take minutes to report an outage; timeo=10,retrans=2
//     reports within about 6 s. That is also how long a write of the
//     journal can be held and still land: a write that passed its fence
//     check just before the lease ran out reaches the server only then,
//     so that time must stay below the fence's margin for the fence to
//     cover it (docs/ha-shared-store.md, "The in-flight window"; with a
//     hard mount there is no bound at all).
//
// Example: mount -t nfs4 -o sync,soft,intr,noac,lookupcache=none,timeo=10,retrans=2 server:/tandem /var/lib/tandem
//
// An NFSv4 client whose lease with the server expired (a partition longer
// than the server's lease time) loses its locks; its next operation on the
// file returns EIO (or ENOLCK when reclaiming), and the server may grant the
// lock to the backup meanwhile. The epoch check and the fence wait cover the
// window in which the old live has not yet noticed.
//
// # Replication
//
// With replication coordinated by ZooKeeper each broker has its own lock
// directory (never shared). It holds the primary lock for its whole life
// (one process per data directory) and keeps its local activation
// sequence in server.lock's epoch field with WriteLocal (0 = no valid
// data), together with the pair's node ID, which a backup adopts from the
// live at sync. package ha reads and writes it; `tandem activation`
// shows and sets it.
//
// This package never decides roles or failover: that is package ha.
package lockfile
