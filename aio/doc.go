// Package aio is durable file I/O for the journal: the FS and File
// interfaces the journal writes through, and the backends behind them.
//
// It owns alignment, in-order completion and the stickiness of I/O errors.
// It must never retry a failed write or fsync, never report a write done
// before every write submitted ahead of it, and never know about records.
//
// OS(kind, opts) is the real file system. Its backends for OpenAppend:
//
//   - NIO: buffered pwrite on the caller's goroutine, then, when a Submit
//     asks for sync, fdatasync on a goroutine of the File: the caller can
//     write the next batch while it runs. Up to Options.MaxSyncs
//     fdatasyncs run at once, each on its own descriptor (writeback errors
//     are reported once per open file description), completions in order.
//     SubmitSync writes and syncs on the caller, for a lone request.
//   - Direct: the same with O_DIRECT. Alignment comes from statx
//     STATX_DIOALIGN, at least 4096 (MinDirectAlign). A file system that
//     refuses O_DIRECT makes OpenAppend fail with ErrDirectUnsupported;
//     there is no silent fallback to buffered I/O.
//   - IOUring: io_uring through raw syscalls (no third-party module), one
//     ring per File, O_DIRECT, a WRITE linked to an FSYNC(DATASYNC), up to
//     Options.MaxIO requests in flight. Submitters fill the SQ ring under a
//     mutex; one reaper goroutine per File owns the CQ ring and calls done
//     strictly in submission order, keeping each buffer referenced until
//     its completion. When the kernel refuses io_uring_setup (or
//     TANDEM_DISABLE_IO_URING=1, Options.DisableIOUring), OS logs it once
//     and uses Direct; FS.Kind reports what actually runs.
//
// Errors: the first failed write, fdatasync, short write or misaligned
// Submit is returned to its done and, wrapped, to every later one
// (errors.Is finds the errno). Reads go through an ordinary descriptor.
package aio
