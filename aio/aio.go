package aio

import (
	"errors"
	"fmt"
	"strings"
)

// Kind names an I/O backend for journal appends.
type Kind int

const (
	// NIO is buffered pwrite followed by fdatasync.
	NIO Kind = iota
	// Direct is O_DIRECT pwrite followed by fdatasync.
	Direct
	// IOUring is io_uring with O_DIRECT; several batches may be in flight.
	IOUring
)

// String returns the backend's name as perf-journal reports it: nio, direct or io_uring.
func (k Kind) String() string {
	switch k {
	case NIO:
		return "nio"
	case Direct:
		return "direct"
	case IOUring:
		return "io_uring"
	}
	return fmt.Sprintf("aio.Kind(%d)", int(k))
}

// ParseJournalType maps Artemis's journal-type values to a backend.
// ASYNCIO selects io_uring, NIO buffered I/O, DIRECT is Tandem's O_DIRECT
// pwrite backend, and MAPPED is accepted as NIO (warn is true then).
func ParseJournalType(s string) (k Kind, warn bool, err error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "ASYNCIO":
		return IOUring, false, nil
	case "NIO":
		return NIO, false, nil
	case "DIRECT":
		return Direct, false, nil
	case "MAPPED":
		return NIO, true, nil
	}
	return 0, false, fmt.Errorf("aio: unknown journal-type %q (want ASYNCIO, NIO, DIRECT or MAPPED)", s)
}

// ErrClosed is returned by operations on a closed File.
var ErrClosed = errors.New("aio: file closed")

// File is a journal segment opened for appending through a backend.
//
// Submit is the only write path. Completions are delivered in submission
// order, so a write is never reported done before every write submitted
// ahead of it on the same File. An error is sticky: once a completion
// reports an error, every later Submit on the File completes with an error
// too (the journal then halts; nothing is retried).
type File interface {
	// Name returns the file's path.
	Name() string
	// Alignment is the alignment that Submit's offset, length and buffer
	// address must have (1 for buffered I/O, at least 4096 with O_DIRECT).
	Alignment() int
	// Submit writes p at off and, when sync is true, makes p and every write
	// submitted before it durable (fdatasync). done is called exactly once,
	// in submission order. p must not be modified or reused until done is
	// called. The pwrite backends write before Submit returns and, for a
	// synced Submit, run the fdatasync on a goroutine of the File, calling
	// done there (an unsynced one completes before Submit returns unless an
	// earlier request is still syncing); the io_uring backend calls done
	// from its completion goroutine. Submit may block when the backend's
	// in-flight limit (Options.MaxIO, Options.MaxSyncs) is reached.
	Submit(p []byte, off int64, sync bool, done func(error))
	// ReadAt reads through the page cache or, for O_DIRECT files, through an
	// ordinary descriptor (replay and the record stream read this way).
	ReadAt(p []byte, off int64) (int, error)
	// Close waits for submitted writes to complete, then closes the file.
	Close() error
}

// PlainFile is a file written with ordinary buffered I/O: segment
// preallocation, control files, the crash-safe rename list.
type PlainFile interface {
	Name() string
	WriteAt(p []byte, off int64) (int, error)
	ReadAt(p []byte, off int64) (int, error)
	// Sync makes the file's data and size durable (fsync).
	Sync() error
	Size() (int64, error)
	Truncate(size int64) error
	Close() error
}

// FS is everything the journal does to the file system. Production uses
// OS (real files, the chosen backend for appends); tests substitute a
// crash-simulating or error-injecting implementation.
type FS interface {
	// OpenAppend opens an existing file for appends through the backend.
	OpenAppend(name string) (File, error)
	// Create creates name (truncating it if it exists) for plain I/O.
	Create(name string) (PlainFile, error)
	// Open opens an existing file for plain I/O (read and write).
	Open(name string) (PlainFile, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	MkdirAll(dir string) error
	// SyncDir makes dir's entries (creations, renames, removals) durable.
	SyncDir(dir string) error
	// Kind reports the backend OpenAppend actually uses (after any fallback).
	Kind() Kind
}

// WritebackStarter is implemented by PlainFiles that can start writing a
// range of dirty pages to the disk without waiting for it
// (sync_file_range SYNC_FILE_RANGE_WRITE). It makes nothing durable: the
// journal's preparer uses it to hand the zeros of a new segment to the
// disk a chunk at a time, so that they never reach the disk as one burst
// that a journal fdatasync has to wait behind.
type WritebackStarter interface {
	StartWriteback(off, n int64) error
}
