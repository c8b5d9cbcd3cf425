// Package aio is durable file I/O for the journal: the FS and File
// interfaces the journal writes through, and the backends behind them
// (buffered pwrite + fdatasync, O_DIRECT pwrite + fdatasync, io_uring with
// O_DIRECT).
//
// It owns alignment, in-order completion and the stickiness of I/O errors.
// It must never retry a failed write or fsync, never report a write done
// before every write submitted ahead of it, and never know about records.
package aio
