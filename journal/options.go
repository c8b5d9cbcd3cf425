package journal

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/tandemmq/tandem/aio"
)

// Defaults of the file journal's options (Artemis's where they exist).
const (
	DefaultSegmentSize = 10 << 20 // journal-file-size
	DefaultMinFiles    = 2        // journal-min-files
	DefaultPoolFiles   = -1       // journal-pool-files: no limit
	DefaultPrefix      = "tandem-data"
	DefaultExt         = "tj"
	// BindingsPrefix and BindingsExt name the bindings journal's files
	// (DIR/bindings), so the two journals of a broker are told apart.
	BindingsPrefix = "tandem-bindings"
	BindingsExt    = "tjb"
	// PagePrefix and PageExt name the paging journal's files
	// (paging-directory; a log-mode journal).
	PagePrefix = "tandem-page"
	PageExt    = "tjp"
	// LargePrefix and LargeExt name the large-messages journal's files
	// (large-messages-directory; a log-mode journal).
	LargePrefix = "tandem-large"
	LargeExt    = "tjl"
	// DefaultMaxPending bounds the bytes appended but not yet taken by the
	// flusher; appenders wait beyond it (back-pressure for sync=false
	// floods; synced appenders never reach it in practice).
	DefaultMaxPending = 64 << 20
	// DefaultMaxInFlight bounds the batches submitted and not yet complete.
	// Every OS backend can have more than one (io_uring in its ring, NIO
	// and DIRECT with their fdatasyncs on goroutines of the File). Measured
	// with 64 closed-loop writers on io_uring here: 1 gathers 56 records
	// per fdatasync, 2 splits them into batches of 37 and was slower, 8
	// into batches of 7 and 2-3x slower; on NIO and DIRECT, 2 was within
	// the noise of 1 (this VM's disk runs one cache flush at a time). More
	// may pay on devices whose flushes overlap; MaxInFlight raises it.
	DefaultMaxInFlight = 1
	chunkSize          = 1 << 20
	// DefaultCompactMinFiles and DefaultCompactPercentage are Artemis's
	// journal-compact-min-files and journal-compact-percentage defaults.
	DefaultCompactMinFiles   = 10
	DefaultCompactPercentage = 30
)

// Options configures a file journal.
type Options struct {
	// Dir is the journal directory (created if missing).
	Dir string
	// FS is the file system; nil means aio.OS(aio.NIO, aio.DefaultOptions()).
	// The backend (NIO, DIRECT, io_uring) and journal-datasync are FS
	// options: with aio.Options.Datasync false, "durable" means written
	// to the page cache only, which survives a process crash but NOT a
	// power loss or kernel crash; acknowledged records can then be lost.
	FS aio.FS
	// Prefix and Ext name segment files PREFIX-SEQUENCE.EXT (defaults
	// DefaultPrefix, DefaultExt).
	Prefix, Ext string
	// SegmentSize is journal-file-size: the size of every segment,
	// a multiple of 4096 (default DefaultSegmentSize).
	SegmentSize int64
	// MinFiles is journal-min-files: segment files that exist (used or
	// prepared) from the first open on, and that reclaim keeps (default
	// DefaultMinFiles).
	MinFiles int
	// PoolFiles is journal-pool-files: reclaimed segment files kept
	// (recycled as prepared files) beyond the next segment, which is always
	// prepared so rotation never waits; more are removed. -1 (and 0, the
	// zero value) mean no limit.
	PoolFiles int
	// BufferTimeout is journal-buffer-timeout. Zero (the default) is
	// adaptive group commit: the flusher writes whatever is pending as soon
	// as the previous write is done (after letting appenders that are
	// still arriving join), so batches grow with fsync latency and no
	// timer is involved. A positive value caps an extra wait: when
	// fewer appends are pending than the previous batch held, the flusher
	// waits up to BufferTimeout for the appenders it just released to
	// append again, trading that much latency for fuller batches.
	BufferTimeout time.Duration
	// CompactMinFiles is journal-compact-min-files: compaction is
	// considered once this many segments are in use (default
	// DefaultCompactMinFiles; negative disables automatic compaction).
	CompactMinFiles int
	// CompactPercentage is journal-compact-percentage: a prefix is
	// rewritten only when its live state is under this share of its size
	// (default DefaultCompactPercentage).
	CompactPercentage int
	// Epoch is written into every segment this journal starts.
	Epoch uint64
	// MaxPending and MaxInFlight: see DefaultMaxPending and
	// DefaultMaxInFlight. Zero means the default.
	MaxPending, MaxInFlight int
	// Logger receives warnings (torn tails). Nil means slog.Default().
	Logger *slog.Logger
	// Log opens the journal in log mode (log.go): records are adds the
	// layer above tracks by position, loaded with LoadLog (nothing kept in
	// memory) and read back with a LogReader; segments are reclaimed below
	// the floor the layer above sets (SetFloor); never compacted.
	Log bool
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return fmt.Errorf("journal: Options.Dir is empty")
	}
	if o.FS == nil {
		o.FS = aio.OS(aio.NIO, aio.DefaultOptions())
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Ext == "" {
		o.Ext = DefaultExt
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < 64<<10 || o.SegmentSize > MaxSegmentSize || o.SegmentSize%4096 != 0 {
		return fmt.Errorf("journal: segment size %d: want a multiple of 4096 between 64 KiB and %d", o.SegmentSize, MaxSegmentSize)
	}
	if o.MinFiles <= 0 {
		o.MinFiles = DefaultMinFiles
	}
	if o.PoolFiles == 0 {
		o.PoolFiles = DefaultPoolFiles
	}
	if o.CompactMinFiles == 0 {
		o.CompactMinFiles = DefaultCompactMinFiles
	}
	if o.Log {
		o.CompactMinFiles = -1 // positions given out must stay valid
	}
	if o.CompactPercentage <= 0 || o.CompactPercentage > 100 {
		o.CompactPercentage = DefaultCompactPercentage
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Options returns the options the journal runs with, its defaults
// applied (the FS and Logger included).
func (j *FileJournal) Options() Options { return j.opts }
