package aio

import (
	"errors"
	"fmt"
)

// ErrDirectUnsupported is wrapped by OpenAppend when the file system
// refuses O_DIRECT (tmpfs, some FUSE and overlay mounts). Tandem does not
// fall back silently: the operator chose DIRECT or ASYNCIO and should pick
// journal-type NIO for such a directory.
var ErrDirectUnsupported = errors.New("file system does not support O_DIRECT (use journal-type NIO)")

// AlignmentError is a Submit rejected before reaching the kernel because its
// offset, length or buffer address is not a multiple of the File's
// Alignment. Like every Submit error it is sticky.
type AlignmentError struct {
	File   string
	Offset int64
	Length int
	Align  int
	What   string // "offset", "length", "buffer address" or "empty buffer"
}

func (e *AlignmentError) Error() string {
	if e.Length == 0 {
		return fmt.Sprintf("aio: %s: empty write at offset %d", e.File, e.Offset)
	}
	return fmt.Sprintf("aio: %s: write of %d bytes at offset %d: %s not aligned to %d bytes",
		e.File, e.Length, e.Offset, e.What, e.Align)
}

// stickyError wraps the first I/O error of a File for every later Submit.
type stickyError struct {
	file string
	err  error
}

func (e *stickyError) Error() string {
	return fmt.Sprintf("aio: %s: refused after an earlier I/O error: %v", e.file, e.err)
}

func (e *stickyError) Unwrap() error { return e.err }
