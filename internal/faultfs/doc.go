// Package faultfs is a fault-injecting loopback FUSE file system for tests:
// it mirrors a backing directory at a mount point and, for files whose base
// name matches a rule, makes writes, fsyncs or flushes fail with an errno,
// makes fsync hang, and makes file locks fail (ENOLCK) or be silently lost
// (the lock request succeeds but nothing is locked, and locks already held
// are dropped: what an NFS client sees after its lease expired).
//
// It mounts with go-fuse's DirectMount (mount(2), root only; no fusermount)
// with EnableLocks, so fcntl/OFD/flock locks reach the daemon, and with
// passthrough disabled: with FUSE passthrough the kernel sends reads and
// writes straight to the backing file and write faults would never fire.
//
// Tests call New (it skips the test unless running as root with /dev/fuse);
// the mount is removed in t.Cleanup, and stale mounts of dead test
// processes are cleared first.
//
// The mount is served by the test process itself, so that process must
// never start a child that touches the mount before its exec: a working
// directory (exec.Cmd.Dir) or executable on the mount, or an inherited
// open file of it (closed at exec, which sends a FUSE flush). Go's fork
// holds a P in vfork until the child execs; a stop-the-world (a GC) then
// waits for that P while the child waits for a FUSE answer that no
// goroutine can run to give: the test binary hangs until its timeout.
// Children that only use the mount after their exec (brokers whose
// journal is on it) are fine. This package never touches files outside its
// backing directory and must never be imported by non-test code.
package faultfs
