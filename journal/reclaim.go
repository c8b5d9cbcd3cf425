package journal

import (
	"context"
	"errors"
)

// Reclaim (issue 4, item 1). The validator counts, per segment, the live
// records added there and the open transactions that began there. The
// oldest segments that pin nothing, up to the current one, are reclaimed
// once a synced batch covering every append so far is durable: their
// files are recycled into the pool of prepared files (journal-pool-files)
// or removed. Only the oldest segment is ever reclaimed, so a delete never
// outlives the add it cancels and a transaction's end never outlives its
// entries: replay of what remains gives the same state. Segments a record
// stream subscriber still needs are kept (see stream.go).

// reclaimableLocked returns the oldest segments that pin nothing and
// advances j.oldest past them. Their files reach the preparer once the
// batch that reclaims them is durable; until the preparer has removed or
// recycled them they are still on disk, below j.oldest, which a
// compaction starting meanwhile must wait for (see compactSwitch).
func (j *FileJournal) reclaimableLocked() []reclaimItem {
	if j.compacting {
		return nil
	}
	var out []reclaimItem
	limit := j.seg.hdr.seq
	if s := j.streamFloorLocked(); s < limit {
		limit = s
	}
	for j.oldest < limit && (j.opts.Log && j.oldest < j.floor || !j.opts.Log && j.v.pins.get(j.oldest) == 0) {
		out = append(out, reclaimItem{path: j.segPath(j.oldest), seq: j.oldest})
		j.oldest++
	}
	j.v.pins.trim(j.oldest)
	j.maybeCompactLocked()
	return out
}

// maybeCompactLocked starts an automatic compaction when the segments in
// use reach journal-compact-min-files and the validator's estimate finds
// a prefix worth compacting (compactEndLocked). It runs at most once per
// journal-compact-min-files segments appended, whether or not the last
// one paid: its cost (reading the live records' segments, a page per
// moved record, a few fsyncs) is then spread over that many segments of
// appends.
func (j *FileJournal) maybeCompactLocked() {
	n := j.opts.CompactMinFiles
	if n < 0 || j.compacting || j.closing || j.seg.hdr.seq < j.compactRetry || j.seg.hdr.seq-j.oldest < uint64(n) {
		return
	}
	j.compactRetry = j.seg.hdr.seq + uint64(n)
	// Estimate from the validator (live adds and their updates) before
	// reading anything: an append-mostly journal, or one whose few live
	// records pile up updates (all live: compaction keeps every update of a
	// live record), is never read for nothing.
	if j.compactEndLocked(j.oldest, min(j.seg.hdr.seq, j.streamFloorLocked())) == 0 {
		return
	}
	j.bg.Add(1)
	go func() {
		defer j.bg.Done()
		res, err := j.Compact(j.bgCtx)
		switch {
		case err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled):
			j.log.Error("journal compaction failed", "dir", j.opts.Dir, "err", err)
		case err == nil && res.NewSegs > 0:
			j.log.Info("journal compacted", "dir", j.opts.Dir, "from", res.From, "to", res.To,
				"segments", res.NewSegs, "live_bytes", res.LiveBytes)
		}
	}()
}

// Metrics are the journal's figures an operator can act on.
type Metrics struct {
	Stats
	SegmentsInUse int   // segments from the oldest kept to the current one
	PoolFiles     int   // prepared files ahead of the current segment
	Reclaimed     int   // segments reclaimed (recycled or removed)
	Compactions   int   // compactions that rewrote a prefix
	Recycled      int   // reclaimed segments turned into prepared files
	BytesReclaim  int64 // bytes of reclaimed segments
	Created       int   // segment files created by zero-filling
	LiveRecords   int
	OpenTxs       int
	Subscribers   int
	MaxStreamLag  int64 // bytes the slowest subscriber is behind the durable end
}

// Metrics returns a snapshot of the journal's metrics.
func (j *FileJournal) Metrics() Metrics {
	m := Metrics{Stats: j.Stats()}
	j.mu.Lock()
	if j.loaded {
		m.SegmentsInUse = int(j.seg.hdr.seq - j.oldest + 1)
		m.LiveRecords = j.v.live.len()
		m.OpenTxs = len(j.v.txs)
		m.Compactions = j.compactions
	}
	m.Subscribers, m.MaxStreamLag = j.streamMetricsLocked()
	prep := j.prep
	j.mu.Unlock()
	if prep != nil {
		prep.mu.Lock()
		m.PoolFiles = int(prep.ready - prep.cur)
		m.Reclaimed = prep.recycled + prep.removed
		m.Recycled = prep.recycled
		m.BytesReclaim = prep.rbytes
		m.Created = prep.created
		prep.mu.Unlock()
	}
	return m
}
