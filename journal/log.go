package journal

import (
	"context"
	"errors"
	"fmt"

	"github.com/tandemmq/tandem/aio"
)

// Log mode (issue 18: paging and large messages). A journal opened with
// Options.Log keeps no live set: every record is an add the layer above
// tracks by position (its segment and the offset of its batch record),
// so a backlog of millions of records costs no memory in the journal.
//
//   - Append takes adds only (any ID, not checked for uniqueness: the
//     caller's IDs are unique anyway); an Append is still one atomic,
//     checksummed batch record, and its position is where a LogReader
//     finds it.
//   - LoadLog replays the segments as Load does (torn tail, corruption,
//     the same sealing and preparation of the files) and hands each batch
//     record to a visitor with its position instead of keeping it: memory
//     stays bounded whatever the journal holds.
//   - A LogReader reads the records back in order from a position, up to
//     the durable end, through a bounded window, checking each record's
//     checksum; ReadRecord reads one at a position.
//   - Reclaim removes the oldest segments below the floor the layer above
//     sets with SetFloor (nothing else pins a segment), never a segment a
//     record stream subscriber (a replica) still needs. Compaction never
//     runs: a position stays valid until its segment is below the floor.
//
// The files, the record stream, the tap and the completion gate are the
// same as any journal's, so replication, the shared store's fencing and
// `tandem data verify|print|repair` cover a log-mode journal unchanged.

var (
	errLogLoad  = errors.New("journal: a log-mode journal is loaded with LoadLog")
	errNotLog   = errors.New("journal: LoadLog on a journal not opened in log mode")
	errLogEntry = errors.New("journal: a log-mode journal takes adds only")
)

// LogVisitor receives each batch record of a log-mode journal at load:
// its position and its payload (the encoded entries; see EntryIter),
// valid only during the call. An error stops the load.
type LogVisitor func(pos Position, payload []byte) error

// LoadLog replays a log-mode journal, handing each batch record to visit
// in order, and prepares it for appends. The result holds no records: only
// MaxID, Epoch and Warnings.
func (j *FileJournal) LoadLog(ctx context.Context, visit LogVisitor) (*LoadResult, error) {
	if !j.opts.Log {
		return nil, errNotLog
	}
	return j.load(ctx, func() (*ScanResult, *LoadResult, *validator, []uint64, error) {
		return replayLog(j.fs, j.opts.Dir, j.nm, visit)
	})
}

// replayLog scans a log-mode journal: each record's entries are checked
// (adds only) and the record goes to visit.
func replayLog(fsys aio.FS, dir string, nm Naming, visit LogVisitor) (*ScanResult, *LoadResult, *validator, []uint64, error) {
	var maxID uint64
	var e Entry
	sr, err := newScanner(false).scan(fsys, dir, nm, func(path string, seq uint64, off int64, payload []byte) error {
		r := entryReader{p: payload}
		for {
			ok, err := r.next(&e)
			if err != nil {
				return &CorruptionError{File: path, Offset: off, Reason: err.Error()}
			}
			if !ok {
				break
			}
			if e.Kind != KindAdd {
				return &CorruptionError{File: path, Offset: off, Reason: fmt.Sprintf("%s entry in a log-mode journal (adds only)", e.Kind)}
			}
			maxID = max(maxID, e.ID, e.TxID)
		}
		if visit == nil {
			return nil
		}
		return visit(Position{Seq: seq, Offset: off}, payload)
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	res := &LoadResult{MaxID: maxID}
	v := newValidator()
	v.maxID = maxID
	return sr, res, v, nil, nil
}

// applyLog is the validator's check of a log-mode append: adds only; the
// largest ID is kept for segment headers.
func (v *validator) applyLog(entries []Entry) error {
	for i := range entries {
		e := &entries[i]
		if e.Kind != KindAdd {
			return fmt.Errorf("%w (entry %d is %s)", errLogEntry, i, e.Kind)
		}
	}
	for i := range entries {
		v.maxID = max(v.maxID, entries[i].ID, entries[i].TxID)
	}
	return nil
}

// SetFloor lets reclaim remove the segments below seq (log mode): the
// layer above no longer needs any record in them. The floor only moves
// forward; segments are removed once a synced batch after the call is
// durable (SetFloor appends an empty one when the floor moved past the
// oldest segment, so an idle journal reclaims too).
func (j *FileJournal) SetFloor(seq uint64) error {
	j.mu.Lock()
	if !j.opts.Log {
		j.mu.Unlock()
		return errNotLog
	}
	if seq <= j.floor {
		j.mu.Unlock()
		return nil
	}
	j.floor = seq
	reclaim := j.loaded && j.oldest < min(seq, j.seg.hdr.seq)
	j.mu.Unlock()
	if !reclaim {
		return nil
	}
	err := j.Append(nil, true, func(error) {})
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// Floor returns the floor SetFloor set (log mode).
func (j *FileJournal) Floor() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.floor
}

// AppendSeq returns the segment appends go to now: a record appended
// after the call lands in it or a later one.
func (j *FileJournal) AppendSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.seg == nil {
		return 0
	}
	return j.seg.hdr.seq
}
