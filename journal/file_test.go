package journal_test

import (
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/journal/journaltest"
)

// fileFactory returns a conformance factory for file journals on fs kind,
// with small segments so rotation happens often.
func fileFactory(kind aio.Kind, segSize int64) journaltest.Open {
	return fileFactoryInFlight(kind, segSize, 0)
}

func fileFactoryInFlight(kind aio.Kind, segSize int64, inflight int) journaltest.Open {
	dirs := map[*testing.T]string{}
	return func(t *testing.T, reopen bool) journal.Journal {
		dir, ok := dirs[t]
		if !reopen || !ok {
			dir = t.TempDir()
			dirs[t] = dir
		}
		j, err := journal.Open(journal.Options{Dir: dir, FS: aio.OS(kind, aio.DefaultOptions()), SegmentSize: segSize, MaxInFlight: inflight})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
}

func TestFileConformanceNIO(t *testing.T) {
	journaltest.Run(t, fileFactory(aio.NIO, 256<<10))
}

func TestFileConformanceDirect(t *testing.T) {
	journaltest.Run(t, fileFactory(aio.Direct, 256<<10))
}

// TestFileConformanceIOUring runs the suite on io_uring (several batches
// in flight; the backend falls back to DIRECT where the kernel refuses).
func TestFileConformanceIOUring(t *testing.T) {
	journaltest.Run(t, fileFactory(aio.IOUring, 256<<10))
}

// TestFileConformanceIOUringPipelined runs the suite with four batches in
// flight.
func TestFileConformanceIOUringPipelined(t *testing.T) {
	journaltest.Run(t, fileFactoryInFlight(aio.IOUring, 256<<10, 4))
}

// TestFileConformancePipelined runs the suite on the pwrite backends with
// four batches in flight (their fdatasyncs run on goroutines of the File,
// several at once).
func TestFileConformancePipelined(t *testing.T) {
	for _, kind := range []aio.Kind{aio.NIO, aio.Direct} {
		t.Run(kind.String(), func(t *testing.T) {
			journaltest.Run(t, fileFactoryInFlight(kind, 256<<10, 4))
		})
	}
}
