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
// prefix of the later ones, all decided by a seed.
//
// Fork (and KillAt) give the state a killed process leaves: every current
// byte and name, with what is not durable yet still losable by a later
// Crash of the fork. Options.Async makes File.Submit complete on a
// goroutine, in order, as the io_uring backend does.
//
// Inject makes the Nth write or sync fail with a chosen error (EIO,
// ENOSPC); a File's error is sticky, as in the real backends.
//
// It owns nothing but its memory and must never touch real files.
package crashfs
