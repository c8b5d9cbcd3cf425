package journal

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tandemmq/tandem/aio"
)

// RepairAction is one change Repair made.
type RepairAction struct {
	File    string // the segment changed
	Offset  int64  // where it now ends (or was extended from)
	Damaged string // the copy of the file as it was
	What    string
	// Dropped counts the valid batch records after Offset in this segment
	// that the truncation took out of the journal (they stay in Damaged).
	Dropped int
	// DroppedRecord is set when the action dropped only the bad record at
	// Offset (RepairOptions.DropBadRecords) instead of truncating.
	DroppedRecord *DroppedRecord
}

// DroppedRecord describes a bad record that Repair replaced with padding:
// its size and the entries as its damaged bytes read (the damage may be
// in them: they are a hint for the operator, not a fact).
type DroppedRecord struct {
	Size     int            // bytes, header included
	Entries  []DroppedEntry // as read; may be cut short
	Readable bool           // every entry of the payload decoded
}

// DroppedEntry is one entry of a dropped record as read.
type DroppedEntry struct {
	Kind Kind
	ID   uint64
	Type uint8
	TxID uint64
}

// RepairOptions change what Repair does.
type RepairOptions struct {
	// DropBadRecords replaces a bad record whose framing is intact (its
	// header is well formed and a valid record follows it where its
	// length says) with a padding record of the same size, so only that
	// record leaves the journal and every later one stays; elsewhere
	// Repair truncates as without it.
	DropBadRecords bool
}

// ErrUnrepairable wraps the corruption Repair cannot fix by truncating a
// segment (a gap in the sequence, a damaged header before the last
// segment).
var ErrUnrepairable = errors.New("journal: damage cannot be repaired by truncation")

// Repair makes the journal named nm in dir loadable again: each corrupt
// segment is copied to FILE.damaged and then truncated at its first bad
// record (a seal record is written there; the segment's later records
// are dropped from the journal but stay in the copy). A short segment is
// first extended with zeros to its size. A torn tail is sealed the same
// way. Gaps and damaged headers are not repairable: Repair returns an
// error wrapping ErrUnrepairable and the *CorruptionError.
func Repair(fs aio.FS, dir string, nm Naming) ([]RepairAction, error) {
	return RepairWith(fs, dir, nm, RepairOptions{})
}

// RepairWith is Repair with options.
func RepairWith(fs aio.FS, dir string, nm Naming, opts RepairOptions) ([]RepairAction, error) {
	var actions []RepairAction
	copied := map[string]string{}
	backup := func(path string) (string, error) {
		if c, ok := copied[path]; ok {
			return c, nil
		}
		c, err := copyAside(fs, path)
		if err != nil {
			return "", err
		}
		copied[path] = c
		return c, nil
	}
	for range 1000 {
		res, err := Scan(fs, dir, nm, checkEntries)
		var ce *CorruptionError
		if err != nil && !errors.As(err, &ce) {
			return actions, err
		}
		if ce == nil {
			if !res.Torn {
				return actions, nil
			}
			last := res.Segments[len(res.Segments)-1].Path
			c, err := backup(last)
			if err != nil {
				return actions, err
			}
			if err := writeSeal(fs, last, res.TornOffset); err != nil {
				return actions, err
			}
			actions = append(actions, RepairAction{File: last, Offset: res.TornOffset, Damaged: c, What: "torn tail cut off"})
			continue
		}
		switch {
		case strings.HasPrefix(ce.Reason, "short segment"):
			c, err := backup(ce.File)
			if err != nil {
				return actions, err
			}
			if err := extend(fs, ce.File); err != nil {
				return actions, err
			}
			actions = append(actions, RepairAction{File: ce.File, Offset: ce.Offset, Damaged: c, What: "short segment extended with zeros"})
		case ce.Offset >= SegmentHeaderSize:
			c, err := backup(ce.File)
			if err != nil {
				return actions, err
			}
			if opts.DropBadRecords {
				dr, err := dropRecord(fs, ce.File, ce.Offset)
				if err != nil {
					return actions, err
				}
				if dr != nil {
					actions = append(actions, RepairAction{File: ce.File, Offset: ce.Offset, Damaged: c, DroppedRecord: dr,
						What: fmt.Sprintf("dropped the bad record (%s), %d bytes, replaced by padding; the records after it are kept", ce.Reason, dr.Size)})
					continue
				}
			}
			dropped, exact, err := countValidAfter(fs, ce.File, ce.Offset)
			if err != nil {
				return actions, err
			}
			if err := writeSeal(fs, ce.File, ce.Offset); err != nil {
				return actions, err
			}
			count := fmt.Sprint(dropped)
			if !exact {
				count = fmt.Sprintf("at least %d (too many overlapping candidates to check them all)", dropped)
			}
			actions = append(actions, RepairAction{File: ce.File, Offset: ce.Offset, Damaged: c, Dropped: dropped,
				What: fmt.Sprintf("truncated at the first bad record (%s); %s valid records after it are only in the copy", ce.Reason, count)})
		default:
			return actions, fmt.Errorf("%w: %w", ErrUnrepairable, ce)
		}
	}
	return actions, fmt.Errorf("journal: repair of %s did not converge", dir)
}

// dropRecord replaces the record at off in the segment at path with a
// padding record of the same size when its framing is intact: its header
// is well formed, its checksum fails, and a valid record starts where its
// length says the next one does. It returns nil (and changes nothing)
// when the framing is not intact.
func dropRecord(fs aio.FS, path string, off int64) (*DroppedRecord, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	var hb [SegmentHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return nil, fmt.Errorf("journal: read header of %s: %w", path, err)
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		return nil, err
	}
	end := min(size, int64(h.size))
	var rb [RecordHeaderSize]byte
	if off+RecordHeaderSize > end {
		return nil, nil
	}
	if _, err := f.ReadAt(rb[:], off); err != nil {
		return nil, fmt.Errorf("journal: read %s at %d: %w", path, off, err)
	}
	rh, _, err := decodeRecHeader(rb[:], off, end-off)
	if err != nil || rh.kind != recBatch {
		return nil, nil // the header itself is damaged: nothing says where the next record is
	}
	next := off + RecordHeaderSize + int64(rh.length)
	if next+RecordHeaderSize > end {
		return nil, nil
	}
	rec := make([]byte, next-off)
	if _, err := f.ReadAt(rec, off); err != nil {
		return nil, fmt.Errorf("journal: read %s at %d: %w", path, off, err)
	}
	if _, err := decodeRecord(rec, int(off), h.seed()); !errors.Is(err, errRecChecksum) {
		return nil, nil // not a checksum failure: leave it to truncation
	}
	var nh [RecordHeaderSize]byte
	if _, err := f.ReadAt(nh[:], next); err != nil {
		return nil, fmt.Errorf("journal: read %s at %d: %w", path, next, err)
	}
	nrh, _, err := decodeRecHeader(nh[:], next, end-next)
	if err != nil {
		return nil, nil
	}
	following := make([]byte, RecordHeaderSize+int(nrh.length))
	if _, err := f.ReadAt(following, next); err != nil {
		return nil, fmt.Errorf("journal: read %s at %d: %w", path, next, err)
	}
	if _, err := decodeRecord(following, int(next), h.seed()); err != nil {
		return nil, nil // no valid record where the length points: the framing is not intact
	}
	dr := &DroppedRecord{Size: len(rec), Readable: true}
	r := entryReader{p: rec[RecordHeaderSize:]}
	for {
		var e Entry
		ok, err := r.next(&e)
		if err != nil {
			dr.Readable = false
			break
		}
		if !ok {
			break
		}
		dr.Entries = append(dr.Entries, DroppedEntry{Kind: e.Kind, ID: e.ID, Type: e.Type, TxID: e.TxID})
	}
	encodePad(rec, h.seed())
	if _, err := f.WriteAt(rec, off); err != nil {
		return nil, fmt.Errorf("journal: drop the record of %s at %d: %w", path, off, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("journal: drop the record of %s at %d: %w", path, off, err)
	}
	return dr, nil
}

// countValidAfter counts the valid batch records after off in a segment
// (linear time, bounded memory, as any scan). exact is false when
// candidates could not all be checked: the count is then a lower bound.
func countValidAfter(fs aio.FS, path string, off int64) (n int, exact bool, err error) {
	f, err := fs.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return 0, false, err
	}
	var hb [SegmentHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return 0, false, fmt.Errorf("journal: read header of %s: %w", path, err)
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		return 0, false, err
	}
	ah, err := newScanner(false).ahead(f, path, off+1, min(size, int64(h.size)), h.seed(), func(int64, recHeader) bool { return false })
	return ah.batches, ah.unchecked == 0, err
}

// checkEntries is a RecordVisitor that decodes every entry.
func checkEntries(_ string, _ uint64, _ int64, payload []byte) error {
	r := entryReader{p: payload}
	var e Entry
	for {
		ok, err := r.next(&e)
		if err != nil || !ok {
			return err
		}
	}
}

// copyAside copies path to path.damaged (or path.damaged.N if taken) and
// syncs the copy.
func copyAside(fs aio.FS, path string) (string, error) {
	src, err := fs.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	names, err := fs.List(dirOf(path))
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, n := range names {
		taken[n] = true
	}
	dst := path + ".damaged"
	for i := 1; taken[baseOf(dst)]; i++ {
		dst = fmt.Sprintf("%s.damaged.%d", path, i)
	}
	out, err := fs.Create(dst)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); ; {
		n, rerr := src.ReadAt(buf, off)
		if n > 0 {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				out.Close()
				return "", err
			}
			off += int64(n)
		}
		if rerr == io.EOF || (rerr == nil && n == 0) {
			break
		}
		if rerr != nil {
			out.Close()
			return "", rerr
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return dst, fs.SyncDir(dirOf(path))
}

// extend grows a short segment to the size its header names.
func extend(fs aio.FS, path string) error {
	f, err := fs.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hb [SegmentHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return err
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(h.size)); err != nil {
		return err
	}
	return f.Sync()
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return p[:i]
	}
	return "."
}

func baseOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
