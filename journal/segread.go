package journal

import (
	"fmt"
	"io"
)

// Window sizes of a scan's readers: a scan holds a bounded part of a
// segment in memory whatever the segment's size (a sparse 2 GiB segment
// was once read whole by `tandem data verify`).
const (
	mainWindow  = 1 << 20   // the record chain
	aheadWindow = 256 << 10 // the search for valid records after a bad one
)

// ScanWork counts what a scan did. Its cost is linear in the bytes it
// covers on any input, which tests and the fuzz targets check with these
// counters: each byte is read a bounded number of times and checksummed a
// bounded number of times, however the records after a bad one overlap.
type ScanWork struct {
	// BytesRead is the number of bytes read from segment files.
	BytesRead int64
	// CRCBytes is the number of bytes checksummed.
	CRCBytes int64
	// Candidates counts the record headers tried after a bad record.
	Candidates int64
	// Shifts counts constant-cost checksum shifts (one per candidate whose
	// checksum is checked when the scan reaches its end).
	Shifts int64
	// MaxPending is the largest number of candidates that waited for their
	// end at once (each costs 16 bytes of memory).
	MaxPending int
	// Unchecked counts candidates that could not be checked because
	// maxPending were already waiting: valid records may then have been
	// missed, so the scan does not call what follows a bad record a torn
	// tail (it reports corruption instead).
	Unchecked int64
}

// segReader reads [0, end) of one segment file through a window.
type segReader struct {
	src    io.ReaderAt
	path   string
	end    int64
	window int
	// retain makes every refill use a new buffer, so that slices handed
	// out stay valid (the loader keeps record data aliasing them).
	retain bool
	buf    []byte
	base   int64 // file offset of buf[0]
	work   *ScanWork
	read   int64 // bytes this reader read
	// pace, when set, runs after every read; its error ends the scan
	// (compaction: yield the disk and the processor to the writer).
	pace func() error
}

func (r *segReader) reset(src io.ReaderAt, path string, end int64) {
	r.src, r.path, r.end = src, path, end
	r.buf, r.base = r.buf[:0], 0
}

// at returns the n bytes at off (off+n <= end). Without retain the slice
// is valid until the next call. n above the window is for records whose
// checksum was verified (their size is then the writer's, bounded by the
// segment's).
func (r *segReader) at(off int64, n int) ([]byte, error) {
	if off >= r.base && off+int64(n) <= r.base+int64(len(r.buf)) {
		return r.buf[off-r.base : off-r.base+int64(n)], nil
	}
	if off < 0 || off+int64(n) > r.end {
		return nil, fmt.Errorf("journal: read %s: %d bytes at %d, past its end %d", r.path, n, off, r.end)
	}
	size := int(min(int64(max(n, r.window)), r.end-off))
	var b []byte
	if r.retain || cap(r.buf) < size {
		b = make([]byte, size)
	} else {
		b = r.buf[:size]
	}
	got, err := r.src.ReadAt(b, off)
	r.work.BytesRead += int64(got)
	r.read += int64(got)
	if got < size {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.buf = r.buf[:0]
		return nil, fmt.Errorf("journal: read %s at %d: %d of %d bytes: %w", r.path, off, got, size, err)
	}
	r.buf, r.base = b, off
	if r.pace != nil {
		if err := r.pace(); err != nil {
			return nil, err
		}
	}
	return b[:n], nil
}

// next returns the bytes from off (< end) on that the window holds, at
// most n, reading a window at off when it holds none.
func (r *segReader) next(off int64, n int) ([]byte, error) {
	if off >= r.base && off < r.base+int64(len(r.buf)) {
		b := r.buf[off-r.base:]
		return b[:min(len(b), n)], nil
	}
	return r.at(off, int(min(int64(min(n, r.window)), r.end-off)))
}

// nextNonZero returns the offset of the first non-zero byte at or after
// off, or -1.
func (r *segReader) nextNonZero(off int64) (int64, error) {
	for off < r.end {
		b, err := r.next(off, r.window)
		if err != nil {
			return 0, err
		}
		if i := nextNonZero(b, 0); i >= 0 {
			return off + int64(i), nil
		}
		off += int64(len(b))
	}
	return -1, nil
}

// crc checksums b seeded with seed, counting the work.
func (w *ScanWork) crc(seed uint32, b []byte) uint32 {
	w.CRCBytes += int64(len(b))
	return crcUpdate(seed, b)
}
