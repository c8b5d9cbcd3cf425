// Package journal defines the journal interface every store implements
// (the record model, Load, Append with durable completions, Close) and the
// file journal: segments, group commit, replay, reclaim, compaction, and
// the record stream that replication subscribes to.
//
// It owns the on-disk format and the decision of what is durable. It must
// never acknowledge a record before it is durable, never retry a failed
// write or fsync, and never drop a valid record that follows a bad one.
//
// Files, one job each:
//
//	journal.go    the Journal interface, entries, LoadResult, errors
//	state.go      the validator (append-side state: live IDs, open
//	              transactions, segment pins) and the loader (replay-side
//	              state machine building the LoadResult); every
//	              implementation uses both, so they agree on meaning
//	idmap.go      the hash table of live record IDs (validator, loader)
//	memory.go     the memory journal (persistence disabled, tests)
//	completer.go  runs done callbacks in order on one goroutine
//	format.go     segment header, record framing, CRC32C, entry encoding
//	segment.go    segment file names, listing, reading
//	options.go    Options and defaults (journal-file-size, -min-files,
//	              -pool-files, -buffer-timeout)
//	file.go       Open, Load (replay + preparing the files), Close
//	writer.go     Append: validate, encode into aligned chunks, rotate
//	flusher.go    the one flusher: one write + fdatasync per batch
//	pool.go       the preparer: zero-filled segments ahead of the writer
//	              (paced, off the send path), recycling of reclaimed ones,
//	              opening the next segment and closing sealed ones
//	replay.go     Scan: torn tail vs corruption, in sequence order; the
//	              linear search for valid records after a bad one
//	segread.go    reading a segment through bounded windows, ScanWork
//	crcshift.go   CRC32C shifts: checking a record's checksum when a
//	              scan reaches its end, whatever overlaps it
//	repair.go     Repair (tandem data repair)
//	reclaim.go    reclaim of the oldest dead segments, Metrics
//	compact.go    compaction of the sealed prefix, crash-safe switch
//	stream.go     the record stream (Subscribe, ApplyBatch)
//	log.go        log mode (paging): adds tracked by position, LoadLog,
//	              a floor for reclaim, no compaction
//	logread.go    LogReader and ReadRecord: records read back by
//	              position, checked, through a bounded window
//
// The conformance suite every implementation runs is journaltest.Run.
//
// # Durability
//
// An Append with sync completes after the fdatasync (through aio.File's
// Submit) that covers it. With aio.Options.Datasync false
// (journal-datasync=false) that fdatasync is skipped: acknowledged
// records then survive a process crash but not a power loss or a kernel
// crash. Each record carries the segment's durable watermark at the time it
// was encoded; replay uses it, and the rule that a segment is durable
// before the next one is written, to tell a torn tail (truncated with a
// warning) from corruption (a *CorruptionError naming the file and
// offset; the load stops). A torn tail holds no acknowledged record,
// except when the damage hit the last synced batch and no later record
// carries a larger watermark: that case cannot be told from a torn write,
// and the warning says so. Replay and verify take linear time and
// bounded memory on any input (windows, and a search after a bad record
// that checksums each byte once however candidates overlap), and never
// truncate before a valid record they could not check.
//
// Load reads what a killed process left in the page cache, durable or
// not, so before it appends it makes that durable: the last segment
// (sealed by the load, or already sealed) and the directory are fsynced.
// A bad header of the last written segment is corruption, not an unused
// file: a file after the last segment counts as never written only when
// no valid record of its sequence follows its header. A storage error of
// the background preparer fails the journal at once.
package journal
