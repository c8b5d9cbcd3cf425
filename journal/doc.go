// Package journal defines the journal interface every store implements
// (the record model, Load, Append with durable completions, Close) and the
// file journal: segments, group commit, replay, reclaim and compaction, and
// the record stream that replication subscribes to.
//
// It owns the on-disk format and the decision of what is durable. It must
// never acknowledge a record before it is durable, never retry a failed
// write or fsync, and never drop a valid record that follows a bad one.
package journal
