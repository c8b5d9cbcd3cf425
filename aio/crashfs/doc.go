// Package crashfs is an in-memory aio.FS that remembers what was made
// durable, for crash and fault tests of the journal.
//
// Every file keeps its current bytes (what reads see) and its durable
// bytes (what a power loss keeps). A write marks its sectors dirty; a
// synced Submit, PlainFile.Sync make the file's dirty sectors durable.
// Creations, renames and removals are durable once SyncDir syncs their
// directory. Crash returns a new FS as a machine would find it after a
// power cut: durable data plus a random subset of the dirty sectors (not
// only a suffix), and the directory operations made durable plus a random
// prefix of the later ones, all decided by a seed. With
// Options.ReorderDirOps the later ones are a random subset instead, as on
// file systems that do not keep metadata updates in order: only SyncDir
// orders them.
//
// Fork (and KillAt) give the state a killed process leaves: every current
// byte and name, with what is not durable yet still losable by a later
// Crash of the fork. Options.Async makes File.Submit complete on a
// goroutine, in order, as the io_uring backend does.
//
// Inject makes the Nth write, sync, create, rename or remove fail with a
// chosen error (EIO, ENOSPC); a File's error is sticky, as in the real
// backends. Watch and Hold let a test see an operation start and hold it
// (one goroutine's work stopped at a chosen step while the others go on)
// until it releases it.
//
// It owns nothing but its memory and must never touch real files.
package crashfs
