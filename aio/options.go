package aio

import "log/slog"

// Options configures the OS file system's append backend.
type Options struct {
	// MaxIO caps the writes in flight on one File (journal-max-io). Zero
	// means DefaultMaxIO. The synchronous backends have at most one write
	// in flight and ignore it; io_uring clamps it to what its ring holds.
	MaxIO int
	// MaxSyncs caps the synced requests (write + fdatasync) in flight on
	// one File (io_uring, and the pwrite backends' fdatasync goroutines);
	// Submit blocks beyond it, so the caller's next
	// batch grows instead. Concurrent fdatasyncs of one file wait for the
	// device's cache flushes, which the block layer coalesces: with one
	// flush running and one queued, a third fdatasync in flight only makes
	// every batch smaller. Zero means DefaultMaxSyncs.
	MaxSyncs int
	// Logger receives the backend's warnings (a fallback from io_uring to
	// DIRECT, for instance). Nil means slog.Default().
	Logger *slog.Logger
	// Datasync makes Submit(sync=true) issue fdatasync. When false
	// (journal-datasync=false) sync requests complete after the write
	// without fdatasync: data then survives a process crash but not a power
	// loss. The zero value is false, so start from DefaultOptions.
	Datasync bool
	// DisableIOUring makes the io_uring backend behave as if the kernel
	// refused io_uring_setup (tests of the fallback use it). The
	// environment variable TANDEM_DISABLE_IO_URING=1 does the same.
	DisableIOUring bool
}

// DefaultMaxIO is the in-flight cap used when Options.MaxIO is zero.
const DefaultMaxIO = 64

// DefaultMaxSyncs is the cap on synced requests in flight used when
// Options.MaxSyncs is zero.
const DefaultMaxSyncs = 2

// DefaultOptions returns the options production uses: fdatasync on, the
// default in-flight cap, slog.Default().
func DefaultOptions() Options {
	return Options{MaxIO: DefaultMaxIO, MaxSyncs: DefaultMaxSyncs, Datasync: true}
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o Options) maxSyncs() int {
	if o.MaxSyncs <= 0 {
		return DefaultMaxSyncs
	}
	return o.MaxSyncs
}

func (o Options) maxIO() int {
	if o.MaxIO <= 0 {
		return DefaultMaxIO
	}
	return o.MaxIO
}
