package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tandemmq/tandem/aio"
)

// Compaction (issue 4, item 2). Reclaim only removes the oldest segment, so
// one long-lived record (or prepared transaction) pins every later
// segment. Compaction rewrites a prefix [S0, S1) of sealed segments, S0
// the oldest, S1 at most the segment being appended to when it starts, as
// the state it holds: its live records (add and updates), its open
// transactions (entries and prepare). The state goes into m < S1-S0 new
// segments numbered S1-m..S1-1, so the sequence stays contiguous and every
// later record still replays after it; S0..S1-m-1 are removed. Appends
// continue meanwhile (they go to the current segment and later).
//
// What it costs, for a queue whose one long-lived record pins everything
// (issue 4, item 5): S1 is chosen so that the queue's recent records,
// which are about to be deleted, are not rewritten; the state is read
// from the segments holding the live records' adds only, when none was
// updated and no transaction is open in the prefix (else every segment
// is replayed); a new segment is only as long as its state (a page for
// one record, its header giving its size), and the removed segments'
// files are recycled into the pool as reclaimed ones are, so compaction
// zero-fills nothing and saves the preparer that work.
//
// The switch is crash-safe: the new segments are written as NAME.cmp and
// fsynced, and the directory is fsynced (their names are durable before
// anything names them, also on file systems that reorder directory
// operations). The switch then waits until the segments reclaimed before
// the prefix are gone from the disk (the preparer removes or recycles
// them after reclaim advanced the oldest segment past them; removing the
// prefix first would leave them followed by the rewritten segments, a
// gap no load accepts). A control file (PREFIX.compact, version 2: the
// removals, the renames with each new segment's header salt, and a CRC)
// is written to a temporary name, fsynced, renamed and the directory
// fsynced; only then are the .cmp files renamed over their segments and
// the old ones renamed to NAME.free (at load: removed), the directory
// fsynced and the control file removed. The preparer then recycles or
// removes the .free files. Load finishes a switch whose control file
// exists, and deletes .cmp files that have none and every .free file.
// Before it renames or removes anything, the switch checks every segment
// the control file names (NAME.cmp, or NAME if an earlier attempt renamed
// it): a missing one, or one without the compaction flag or with another
// salt, is a *CorruptionError naming it, never skipped.

// ErrCompactBusy is returned by Compact when a compaction is running.
var ErrCompactBusy = errors.New("journal: compaction already running")

// CompactResult says what a compaction did.
type CompactResult struct {
	From, To   uint64 // the prefix [From, To) that was considered
	NewSegs    int    // segments it was rewritten into (0: nothing done)
	LiveBytes  int64  // bytes of the rewritten state
	PrefixSize int64  // bytes of the prefix's segments
	Skipped    string // why nothing was done, when nothing was
	// SegmentsRead is how many of the prefix's segments were read: only
	// those holding its live records' adds when none of them was updated
	// and no transaction began in the prefix; else every one.
	SegmentsRead int
}

func (j *FileJournal) controlPath() string {
	return filepath.Join(j.opts.Dir, j.nm.Prefix+".compact")
}

// Compact compacts a prefix [S0, E) of the sealed segments when its live
// state fits in fewer segments and under journal-compact-percentage of
// its size. E is chosen from the validator's live bytes per segment (see
// compactEndLocked): the oldest segments, up to where rewriting more live
// data would free less than it costs, so a queue's few long-lived records
// are moved and its recent records (about to be deleted) are not. Segments
// a stream subscriber still reads are never part of the prefix. The
// removed segments' files go to the preparer's pool (journal-pool-files),
// as reclaimed ones do.
func (j *FileJournal) Compact(ctx context.Context) (CompactResult, error) {
	j.mu.Lock()
	if err := j.usableLocked(); err != nil {
		j.mu.Unlock()
		return CompactResult{}, err
	}
	if j.opts.Log {
		j.mu.Unlock()
		return CompactResult{Skipped: "a log-mode journal is never compacted (positions given out stay valid)"}, nil
	}
	if j.compacting {
		j.mu.Unlock()
		return CompactResult{}, ErrCompactBusy
	}
	s0, s1 := j.oldest, j.seg.hdr.seq
	if j.replicaSubscribedLocked() {
		// A replica holds byte copies of the sealed segments and removes
		// the ones this journal reclaims (package replication): rewriting
		// them here would make its copies of the rewritten range differ
		// from ours, and a later reclaim could then remove live records
		// from its copy. Compaction waits until no replica is attached.
		j.mu.Unlock()
		return CompactResult{From: s0, To: s1, Skipped: "a replica is attached"}, nil
	}
	limit := min(s1, j.streamFloorLocked())
	if limit < s1 && limit-s0 < 2 {
		j.mu.Unlock()
		return CompactResult{From: s0, To: s1, Skipped: "a stream subscriber still reads the prefix"}, nil
	}
	e := j.compactEndLocked(s0, limit)
	if e == 0 {
		e = limit // nothing pays by the estimate: let the replay say why
	}
	snapRecs, snapOK := j.compactSnapshotLocked(s0, e)
	j.compacting = true // reclaim leaves the prefix alone meanwhile
	// compactS1 is the end of the prefix being rewritten, then of the
	// last one rewritten: a subscriber resuming at a position below it
	// would get a rewritten segment's bytes after the old ones it holds,
	// so Subscribe refuses it (ErrCompactBusy meanwhile, ErrResyncNeeded
	// after). A compaction that rewrites nothing restores it.
	prevS1 := j.compactS1
	j.compactS1 = max(prevS1, e) // an earlier compaction may have rewritten more
	j.mu.Unlock()
	res, plan, err := j.compactPrepare(ctx, s0, e, snapMap(snapRecs, snapOK))
	var free []string
	if err == nil && plan != nil {
		free, err = j.compactSwitch(ctx, plan)
	}
	j.mu.Lock()
	j.compacting = false
	if err == nil && plan != nil {
		j.compactAdopt(plan)
	} else if plan == nil || !plan.switching {
		j.compactS1 = prevS1 // nothing was rewritten
	}
	inUse := int(j.seg.hdr.seq - j.oldest + 1)
	j.mu.Unlock()
	if err != nil {
		// The prefix files are untouched until the control file is
		// durable; after that a failure is a storage failure.
		if plan != nil && plan.switching {
			j.fail(err)
		}
		return res, err
	}
	if plan != nil {
		// The prefix's segment names below the rewritten ones are gone
		// (renamed to .free, the directory synced).
		j.prep.noteGone(plan.s1 - uint64(plan.m))
	}
	if len(free) > 0 {
		items := make([]reclaimItem, len(free))
		for i, f := range free {
			items[i] = reclaimItem{path: f}
		}
		j.prep.reclaimFiles(items, inUse)
	}
	return res, nil
}

// compactEndLocked chooses the end E of the prefix [s0, E) to compact,
// s0+2 <= E <= limit, from the validator's live bytes per segment (adds
// and their updates; open transactions are not counted, the replay
// checks the real figure): among the prefixes whose live share is under
// journal-compact-percentage and whose live data fits in fewer segments,
// the one that frees the most bytes net of the live bytes it rewrites.
// 0 means none pays.
func (j *FileJournal) compactEndLocked(s0, limit uint64) uint64 {
	size := j.opts.SegmentSize
	usable := segLimit(size, 1) - SegmentHeaderSize
	pct := int64(j.opts.CompactPercentage)
	var live, bestGain int64
	var best uint64
	for e := s0 + 1; e <= limit; e++ {
		live += j.v.pins.liveBytes(e-1, e)
		n := int64(e - s0)
		m := max(1, (live+usable-1)/usable)
		if m >= n || live*100 > pct*n*size {
			continue
		}
		if gain := (n-m)*size - live; gain > bestGain {
			best, bestGain = e, gain
		}
	}
	return best
}

// recMove is a live record the compaction rewrote into segment seg.
type recMove struct{ id, seg uint64 }

// compactPlan is a prepared compaction.
type compactPlan struct {
	s0, s1    uint64
	m         int
	recMoves  []recMove           // each live record's new segment
	txSegs    map[uint64][]uint64 // open transaction -> new segment of each entry
	salts     []uint64            // header salt of each new segment
	switching bool
}

// compactPrepare reads the prefix's state (only the segments holding
// its live records when snap allows, else a replay of every segment),
// writes it into .cmp files and returns the plan, or a nil plan when
// compaction would not pay.
func (j *FileJournal) compactPrepare(ctx context.Context, s0, s1 uint64, snap map[uint64]recLoc) (CompactResult, *compactPlan, error) {
	res := CompactResult{From: s0, To: s1}
	if s1-s0 < 2 {
		res.Skipped = "fewer than two sealed segments"
		return res, nil, nil
	}
	// Everything up to the seal of S1-1 must be durable before it is read.
	if err := AppendSync(ctx, j); err != nil {
		return res, nil, err
	}
	hdrs, err := j.prefixHeaders(s0, s1)
	if err != nil {
		return res, nil, err
	}
	var epoch, maxID uint64
	for _, h := range hdrs {
		res.PrefixSize += int64(h.size)
		epoch, maxID = max(epoch, h.epoch), max(maxID, h.maxID)
	}
	st, read, err := j.readLive(ctx, s0, hdrs, snap)
	if err == nil && read < 0 {
		st, err = j.replayPrefix(ctx, s0, hdrs)
		read = len(hdrs)
	}
	res.SegmentsRead = read
	if err != nil {
		return res, nil, err
	}
	maxID = max(maxID, st.maxID)
	// The state as a stream of entries, tagged by what they belong to.
	type tagged struct {
		e     Entry
		isRec bool // a live record's add or update (else a transaction's)
		tx    uint64
		txOp  bool // a transaction entry (not its prepare)
	}
	var stream []tagged
	for _, r := range st.records {
		stream = append(stream, tagged{e: Entry{Kind: KindAdd, ID: r.ID, Type: r.Type, Data: r.Data}, isRec: true})
		for _, u := range r.Updates {
			stream = append(stream, tagged{e: Entry{Kind: KindUpdate, ID: r.ID, Type: u.Type, Data: u.Data}, isRec: true})
		}
	}
	for _, tx := range st.txs {
		for _, te := range tx.entries {
			stream = append(stream, tagged{e: te, tx: tx.id, txOp: true})
		}
		if tx.prepared {
			stream = append(stream, tagged{e: Entry{Kind: KindPrepare, TxID: tx.id, Data: tx.data}, tx: tx.id})
		}
	}
	// Pack: batches of up to 64 KiB, segments of the current size.
	size := j.opts.SegmentSize
	limit := segLimit(size, 1)
	batchMax := min(int64(64<<10), limit-SegmentHeaderSize)
	type placed struct{ seg, from, to int } // stream[from:to] is one batch in new segment seg
	var batches []placed
	segEnd := []int64{SegmentHeaderSize} // where each new segment's seal goes
	seg, pos := 0, int64(SegmentHeaderSize)
	from, bsize := 0, int64(RecordHeaderSize)
	flush := func(to int) {
		if to == from {
			return
		}
		if pos+bsize > limit {
			seg, pos = seg+1, SegmentHeaderSize
		}
		batches = append(batches, placed{seg: seg, from: from, to: to})
		pos += bsize
		segEnd = append(segEnd[:seg], pos)
		res.LiveBytes += bsize
		from, bsize = to, RecordHeaderSize
	}
	for i := range stream {
		es := int64(entrySize(&stream[i].e))
		if bsize+es > batchMax && i > from {
			flush(i)
		}
		bsize += es
	}
	flush(len(stream))
	m := seg + 1
	if len(stream) == 0 {
		m = 1 // an empty prefix still leaves one (empty) segment: simpler than renumbering
	}
	pct := j.opts.CompactPercentage
	switch {
	case uint64(m) >= s1-s0:
		res.Skipped = fmt.Sprintf("the live state needs %d segments, the prefix has %d", m, s1-s0)
		return res, nil, nil
	case res.LiveBytes*100 > int64(pct)*res.PrefixSize:
		res.Skipped = fmt.Sprintf("live data is %d%% of the prefix, over journal-compact-percentage %d", res.LiveBytes*100/max(res.PrefixSize, 1), pct)
		return res, nil, nil
	}
	plan := &compactPlan{s0: s0, s1: s1, m: m, txSegs: map[uint64][]uint64{}}
	first := s1 - uint64(m)
	bufs := make([][]byte, m)
	newHdrs := make([]segHeader, m)
	ends := make([]int64, m)
	for i := range bufs {
		// A new segment is as long as its state and seal, in whole
		// pages: the header says its size, and rewriting one long-lived
		// record does not write (and fsync) a whole segment of zeros.
		// When it is reclaimed, the pool removes it (not its size).
		n := min(size, (segEnd[i]+RecordHeaderSize+4095)&^4095)
		newHdrs[i] = segHeader{seq: first + uint64(i), epoch: epoch, salt: rand.Uint64(), size: uint64(n), align: 1,
			flags: segFlagCompacted, version: formatVersion, maxID: maxID}
		bufs[i] = make([]byte, n)
		newHdrs[i].encode(bufs[i])
		ends[i] = SegmentHeaderSize
		plan.salts = append(plan.salts, newHdrs[i].salt)
	}
	entries := make([]Entry, 0, 64)
	for _, b := range batches {
		entries = entries[:0]
		seq := first + uint64(b.seg)
		for _, t := range stream[b.from:b.to] {
			entries = append(entries, t.e)
			switch {
			case t.isRec && t.e.Kind == KindAdd: // record ID 0 included
				plan.recMoves = append(plan.recMoves, recMove{id: t.e.ID, seg: seq})
			case t.txOp:
				plan.txSegs[t.tx] = append(plan.txSegs[t.tx], seq)
			}
		}
		n := batchSize(entries)
		encodeBatch(bufs[b.seg][ends[b.seg]:ends[b.seg]+int64(n)], entries, uint32(ends[b.seg]), newHdrs[b.seg].seed())
		ends[b.seg] += int64(n)
	}
	for i := range bufs {
		encodeSeal(bufs[i][ends[i]:ends[i]+RecordHeaderSize], uint32(ends[i]), newHdrs[i].seed())
		if err := writeFileSync(j.fs, j.segPath(first+uint64(i))+".cmp", bufs[i]); err != nil {
			return res, nil, fmt.Errorf("journal: compaction: %w", err)
		}
	}
	// The .cmp files' names must be durable before the control file that
	// names them can be: a file system that does not keep directory
	// operations in order could otherwise keep the control file and lose
	// them (issue 21, item 4).
	if err := j.fs.SyncDir(j.opts.Dir); err != nil {
		return res, nil, fmt.Errorf("journal: compaction: %w", err)
	}
	res.NewSegs = m
	return res, plan, nil
}

// prefixState is the state a prefix of segments leaves: its live records
// (in the order of their adds, with their updates) and its open
// transactions (prepared ones first, in the order replay gives).
type prefixState struct {
	records []Record
	txs     []prefixTx
	maxID   uint64
}

type prefixTx struct {
	id       uint64
	entries  []Entry
	prepared bool
	data     []byte
}

// prefixHeaders reads and checks the headers of segments [s0, s1).
func (j *FileJournal) prefixHeaders(s0, s1 uint64) ([]segHeader, error) {
	hdrs := make([]segHeader, 0, s1-s0)
	for seq := s0; seq < s1; seq++ {
		sf := segFile{path: j.segPath(seq), seq: seq}
		if err := readSegHeader(j.fs, &sf); err != nil {
			return nil, err
		}
		if sf.hdrErr != nil {
			return nil, &CorruptionError{File: sf.path, Reason: sf.hdrErr.Error()}
		}
		hdrs = append(hdrs, sf.hdr)
	}
	return hdrs, nil
}

// Compaction reads the prefix in windows of compactWindow and pauses
// compactPause after each (and yields the processor): a compaction of ten
// 10 MiB segments read them back to back, and every journal fdatasync
// meanwhile waited behind its reads, 2-5 ms instead of 0.2 (issue 20).
// A compaction is not urgent: it only gives disk space back.
const (
	compactWindow = 256 << 10
	compactPause  = time.Millisecond
)

// compactPace runs after each read of a compaction.
func compactPace(ctx context.Context) func() error {
	return func() error {
		runtime.Gosched()
		t := time.NewTimer(compactPause)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scanPrefixSegment reads segment seq (its header hdr) and calls fn for
// each entry of its valid records, in order, paced (compactPace). With
// retain, the entries' data stay valid (they alias the buffers read);
// without, only during fn.
func (j *FileJournal) scanPrefixSegment(ctx context.Context, seq uint64, hdr segHeader, retain bool, fn func(e *Entry)) error {
	sf := segFile{path: j.segPath(seq), seq: seq, hdr: hdr}
	f, err := j.fs.Open(sf.path)
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", sf.path, err)
	}
	defer f.Close()
	var e Entry
	sc := newScanner(retain)
	sc.main.window, sc.main.pace = compactWindow, compactPace(ctx)
	_, err = sc.segment(f, &sf, true, func(_ string, _ uint64, _ int64, payload []byte) error {
		r := entryReader{p: payload}
		for {
			ok, err := r.next(&e)
			if err != nil || !ok {
				return err
			}
			fn(&e)
		}
	})
	return err
}

// replayPrefix replays every segment of the prefix.
func (j *FileJournal) replayPrefix(ctx context.Context, s0 uint64, hdrs []segHeader) (prefixState, error) {
	l := newLoader()
	for i, h := range hdrs {
		if err := ctx.Err(); err != nil {
			return prefixState{}, err
		}
		seq := s0 + uint64(i)
		// The loader keeps the entries' data: read into retained buffers.
		if err := j.scanPrefixSegment(ctx, seq, h, true, func(e *Entry) { l.apply(e, seq) }); err != nil {
			return prefixState{}, err
		}
	}
	lr, _, unfinished := l.finish()
	st := prefixState{records: lr.Records, maxID: lr.MaxID}
	order := make([]uint64, 0, len(lr.Prepared)+len(unfinished))
	for _, p := range lr.Prepared {
		order = append(order, p.TxID)
	}
	order = append(order, unfinished...)
	for _, id := range order {
		tx := l.txs[id]
		st.txs = append(st.txs, prefixTx{id: id, entries: tx.entries, prepared: tx.prepared, data: tx.data})
	}
	return st, nil
}

// liveSnapshotMax bounds the live records compactSnapshotLocked copies
// (under the journal's lock); beyond it compaction replays the prefix.
const liveSnapshotMax = 1 << 16

// snapRec is a live record of a compaction's snapshot.
type snapRec struct {
	id  uint64
	loc recLoc
}

// compactSnapshotLocked returns the live records whose adds are in the
// prefix [s0, e) (where, and their bytes), for readLive (snapMap turns
// them into its map, after the lock is released: building the map under
// it held every append for 2-3 ms at 20,000 live records); ok is false
// when an open transaction began in the prefix or too many records are
// live, and the prefix must be replayed.
func (j *FileJournal) compactSnapshotLocked(s0, e uint64) (recs []snapRec, ok bool) {
	if j.v.live.len() > liveSnapshotMax {
		return nil, false
	}
	for _, tx := range j.v.txs {
		if tx.firstSeg < e {
			return nil, false
		}
	}
	n := 0 // no transaction pins the prefix: its pins are its live adds
	for seg := s0; seg < e; seg++ {
		n += j.v.pins.get(seg)
	}
	recs = make([]snapRec, 0, n)
	j.v.live.each(func(id uint64, loc *recLoc) {
		if loc.seg >= s0 && loc.seg < e {
			recs = append(recs, snapRec{id: id, loc: *loc})
		}
	})
	return recs, true
}

// snapMap is readLive's snapshot map of recs (nil when !ok).
func snapMap(recs []snapRec, ok bool) map[uint64]recLoc {
	if !ok {
		return nil
	}
	m := make(map[uint64]recLoc, len(recs))
	for _, r := range recs {
		m[r.id] = r.loc
	}
	return m
}

// readLive builds the prefix's state from the segments holding the adds
// of snap's records only: segments whose records are all dead are not
// read. The state is snap's records as added, which is right when none of
// them was updated since (its bytes are its add's: updates would count)
// and no transaction touched them (a transactional entry in a segment read
// gives up). It returns the number of segments read, or -1 when the
// prefix must be replayed. Records of snap deleted since are still part
// of the state: their deletes follow it.
func (j *FileJournal) readLive(ctx context.Context, s0 uint64, hdrs []segHeader, snap map[uint64]recLoc) (st prefixState, read int, err error) {
	if snap == nil {
		return st, -1, nil
	}
	segs := map[uint64]bool{}
	for _, loc := range snap {
		segs[loc.seg] = true
	}
	found := make(map[uint64]int, len(snap)) // ID -> index in st.records
	var dead []bool                          // st.records[i] was added again later
	for i, h := range hdrs {
		seq := s0 + uint64(i)
		if !segs[seq] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return st, -1, err
		}
		read++
		tx := false
		// Only the live records' data is kept, copied: reading into
		// retained buffers allocated the whole prefix (100 MiB for ten
		// segments) for the collector to reclaim.
		err := j.scanPrefixSegment(ctx, seq, h, false, func(e *Entry) {
			switch {
			case e.Kind.Transactional():
				tx = true
			case e.Kind == KindAdd && snap[e.ID].seg == seq:
				if k, dup := found[e.ID]; dup {
					dead[k] = true // an earlier add of the ID, deleted since
				}
				found[e.ID] = len(st.records)
				st.records = append(st.records, Record{ID: e.ID, Type: e.Type, Data: bytes.Clone(e.Data)})
				dead = append(dead, false)
			}
		})
		if err != nil {
			return st, -1, err
		}
		if tx {
			return st, -1, nil
		}
	}
	if len(found) != len(snap) {
		return st, -1, nil
	}
	live := st.records[:0]
	for i, r := range st.records {
		if dead[i] {
			continue
		}
		e := Entry{Kind: KindAdd, ID: r.ID, Type: r.Type, Data: r.Data}
		if entrySize(&e) != int(snap[r.ID].size) {
			return st, -1, nil // updated since its add: replay
		}
		live = append(live, r)
	}
	st.records = live
	for _, r := range st.records {
		st.maxID = max(st.maxID, r.ID)
	}
	return st, read, nil
}

// compactSwitch makes the compaction durable and visible. It returns the
// removed segments' files, renamed to NAME.free, for the pool.
//
// It first waits until the segments reclaimed before the prefix are gone
// from the disk: reclaim advanced the oldest segment past them, but the
// preparer removes or recycles their files later, one at a time. Were the
// prefix's removal durable first, a crash would leave those segments
// followed by the rewritten ones: a gap in the sequence that no load
// accepts (issue 21, item 3).
func (j *FileJournal) compactSwitch(ctx context.Context, p *compactPlan) ([]string, error) {
	if err := j.waitReclaimedGone(ctx, p.s0); err != nil {
		return nil, err
	}
	first := p.s1 - uint64(p.m)
	ctlText := encodeControl(p.s0, first, p.s1, p.salts)
	ctl := j.controlPath()
	if err := writeFileSync(j.fs, ctl+".tmp", []byte(ctlText)); err != nil {
		return nil, fmt.Errorf("journal: compaction control file: %w", err)
	}
	if err := j.fs.Rename(ctl+".tmp", ctl); err != nil {
		return nil, fmt.Errorf("journal: compaction control file: %w", err)
	}
	p.switching = true // from here on the control file may be durable
	if err := j.fs.SyncDir(j.opts.Dir); err != nil {
		return nil, fmt.Errorf("journal: compaction control file: %w", err)
	}
	return switchCompaction(j.fs, j.opts.Dir, j.nm, true)
}

// waitReclaimedGone waits until the preparer has durably removed or
// recycled every reclaimed segment below s0, the journal fails or closes,
// or ctx ends.
func (j *FileJournal) waitReclaimedGone(ctx context.Context, s0 uint64) error {
	j.prep.mu.Lock()
	gone := j.prep.gone >= s0
	j.prep.mu.Unlock()
	if gone {
		return nil
	}
	j.mu.Lock()
	hook := j.testCompactWait
	j.mu.Unlock()
	if hook != nil {
		hook()
	}
	// A batch that failed never hands its reclaimed files over: stop
	// waiting when the journal fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-j.failed:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := j.prep.waitGone(ctx, s0)
	if err != nil {
		if jerr := j.Err(); jerr != nil {
			return jerr
		}
		return fmt.Errorf("journal: compaction: waiting for reclaimed segments to be removed: %w", err)
	}
	return nil
}

// freeSuffix names a removed segment's file between a compaction's switch
// and the pool recycling it: no longer a segment, not yet a prepared file.
const freeSuffix = ".free"

// finishCompaction finishes, at load, a compaction interrupted by a crash
// (see switchCompaction).
func finishCompaction(fs aio.FS, dir string, nm Naming) error {
	_, err := switchCompaction(fs, dir, nm, false)
	return err
}

// switchCompaction carries out the control file in dir, if any (again
// after a crash: every step is idempotent). At load (live false) the
// segments to remove are removed, and stray .cmp files (a compaction that
// never reached its control file) and .free files (removed segments the
// pool never took) too. During a live compaction the segments to remove
// are renamed to NAME.free instead and returned, for the pool to recycle;
// .free files the pool has not taken yet are left alone.
func switchCompaction(fs aio.FS, dir string, nm Naming, live bool) ([]string, error) {
	ctl := filepath.Join(dir, nm.Prefix+".compact")
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	if !live {
		for _, n := range names {
			for _, suf := range []string{".cmp", freeSuffix} {
				base, ok := strings.CutSuffix(n, suf)
				if !ok {
					continue
				}
				if _, ok := parseSegmentName(nm.Prefix, nm.Ext, base); !ok {
					continue
				}
				// A .cmp file is kept when the control file names it.
				if suf == ".cmp" && have[filepath.Base(ctl)] {
					continue
				}
				if err := fs.Remove(filepath.Join(dir, n)); err != nil {
					return nil, err
				}
			}
		}
	}
	if !have[filepath.Base(ctl)] {
		if have[filepath.Base(ctl)+".tmp"] {
			if err := fs.Remove(ctl + ".tmp"); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	removes, renames, err := readControl(fs, dir, nm, have)
	if err != nil {
		return nil, err
	}
	for _, r := range renames {
		name := SegmentName(nm.Prefix, nm.Ext, r.seq)
		if have[name+".cmp"] {
			if err := fs.Rename(filepath.Join(dir, name+".cmp"), filepath.Join(dir, name)); err != nil {
				return nil, err
			}
		}
	}
	var free []string
	for _, seq := range removes {
		name := SegmentName(nm.Prefix, nm.Ext, seq)
		if !have[name] {
			continue
		}
		path := filepath.Join(dir, name)
		if live {
			if err := fs.Rename(path, path+freeSuffix); err != nil {
				return nil, err
			}
			free = append(free, path+freeSuffix)
		} else if err := fs.Remove(path); err != nil {
			return nil, err
		}
	}
	if err := fs.SyncDir(dir); err != nil {
		return nil, err
	}
	if err := fs.Remove(ctl); err != nil {
		return nil, err
	}
	return free, fs.SyncDir(dir)
}

// maxControlSize bounds the control file read: a compaction's has a line
// per segment of its prefix.
const maxControlSize = 16 << 20

// readControl reads and parses the control file of the journal nm in dir
// (have: the directory's names) and checks every rewritten segment it
// names (checkRewritten), before a switch touches anything: the switch
// removes the prefix, so a missing or foreign one would lose its records
// silently. Scan runs the same checks, so verify reports what the next
// load would refuse.
func readControl(fs aio.FS, dir string, nm Naming, have map[string]bool) (removes []uint64, renames []controlRename, err error) {
	ctl := filepath.Join(dir, nm.Prefix+".compact")
	f, err := fs.Open(ctl)
	if err != nil {
		return nil, nil, err
	}
	size, err := f.Size()
	var text []byte
	if err == nil && size > maxControlSize {
		f.Close()
		return nil, nil, &CorruptionError{File: ctl, Reason: fmt.Sprintf("compaction control file of %d bytes, more than any compaction writes", size)}
	}
	if err == nil {
		text = make([]byte, size)
		_, err = f.ReadAt(text, 0)
	}
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("journal: read %s: %w", ctl, err)
	}
	removes, renames, err = parseControl(string(text))
	if err != nil {
		return nil, nil, &CorruptionError{File: ctl, Reason: err.Error()}
	}
	for _, r := range renames {
		if err := checkRewritten(fs, dir, nm, ctl, have, r); err != nil {
			return nil, nil, err
		}
	}
	return removes, renames, nil
}

// checkRewritten checks, before a switch, the file a control file's
// rename names: NAME.cmp, or NAME when an earlier attempt at the switch
// renamed it already. It must exist and carry a valid header of its
// sequence with the compaction flag (and, from control file version 2,
// the salt the control file recorded): anything else is corruption.
func checkRewritten(fs aio.FS, dir string, nm Naming, ctl string, have map[string]bool, r controlRename) error {
	name := SegmentName(nm.Prefix, nm.Ext, r.seq)
	path := filepath.Join(dir, name+".cmp")
	if !have[name+".cmp"] {
		path = filepath.Join(dir, name)
		if !have[name] {
			return &CorruptionError{File: filepath.Join(dir, name+".cmp"), Reason: fmt.Sprintf(
				"the compaction control file %s names this rewritten segment, but neither it nor %s exists: the switch would lose its records",
				ctl, name)}
		}
	}
	sf := segFile{path: path, seq: r.seq}
	if err := readSegHeader(fs, &sf); err != nil {
		return err
	}
	reason := ""
	switch {
	case sf.hdrErr != nil:
		reason = sf.hdrErr.Error()
	case sf.hdr.flags&segFlagCompacted == 0:
		reason = "its header lacks the compaction flag: it is not the segment the compaction wrote"
	case r.hasSalt && sf.hdr.salt != r.salt:
		reason = fmt.Sprintf("its header salt is %016x, the control file recorded %016x: it is not the segment the compaction wrote", sf.hdr.salt, r.salt)
	default:
		return nil
	}
	return &CorruptionError{File: path, Reason: fmt.Sprintf("rewritten segment named by the compaction control file %s: %s", ctl, reason)}
}

// controlRename is a control file's rename line: a rewritten segment and,
// from version 2, its header salt.
type controlRename struct {
	seq, salt uint64
	hasSalt   bool
}

// encodeControl returns the text of a control file (version 2): remove
// [s0, first), rename [first, s1) with each new segment's salt, and the
// checksum of the lines before it.
func encodeControl(s0, first, s1 uint64, salts []uint64) string {
	var b strings.Builder
	b.WriteString("tandem-compact 2\n")
	for seq := s0; seq < first; seq++ {
		fmt.Fprintf(&b, "remove %d\n", seq)
	}
	for seq := first; seq < s1; seq++ {
		fmt.Fprintf(&b, "rename %d %016x\n", seq, salts[seq-first])
	}
	fmt.Fprintf(&b, "crc %08x\n", crc32.Checksum([]byte(b.String()), castagnoli))
	return b.String()
}

// parseControl parses a control file of version 1 (rename lines without
// a salt, written by earlier builds) or 2.
func parseControl(text string) (removes []uint64, renames []controlRename, err error) {
	i := strings.LastIndex(text, "crc ")
	v2 := strings.HasPrefix(text, "tandem-compact 2\n")
	if i < 0 || !(v2 || strings.HasPrefix(text, "tandem-compact 1\n")) {
		return nil, nil, errors.New("compaction control file is malformed (or of an unknown version)")
	}
	body := text[:i]
	want, perr := strconv.ParseUint(strings.TrimSpace(text[i+4:]), 16, 32)
	if perr != nil || uint32(want) != crc32.Checksum([]byte(body), castagnoli) {
		return nil, nil, errors.New("compaction control file checksum mismatch")
	}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n")[1:] {
		op, arg, _ := strings.Cut(line, " ")
		arg, saltText, hasSalt := strings.Cut(arg, " ")
		seq, perr := strconv.ParseUint(arg, 10, 64)
		if perr != nil {
			return nil, nil, fmt.Errorf("compaction control file: bad line %q", line)
		}
		switch {
		case op == "remove" && !hasSalt:
			removes = append(removes, seq)
		case op == "rename" && hasSalt == v2:
			r := controlRename{seq: seq}
			if v2 {
				if r.salt, perr = strconv.ParseUint(saltText, 16, 64); perr != nil || len(saltText) != 16 {
					return nil, nil, fmt.Errorf("compaction control file: bad line %q", line)
				}
				r.hasSalt = true
			}
			renames = append(renames, r)
		default:
			return nil, nil, fmt.Errorf("compaction control file: bad line %q", line)
		}
	}
	return removes, renames, nil
}

// compactAdopt points the validator at the new segments (j.mu held). It
// moves the records the plan rewrote (and the open transactions), not
// every live record: it runs under the journal's lock, and walking 20,000
// live records and rebuilding every pin count held appends for about a
// millisecond. Should the pins of the prefix not be exactly the moved
// records' and transactions' (a record or transaction the plan did not
// move, which cannot happen), it falls back to the walk.
func (j *FileJournal) compactAdopt(p *compactPlan) {
	first := p.s1 - uint64(p.m)
	pins := &j.v.pins
	want := make([]int, p.m) // pins each new segment must end with
	for _, mv := range p.recMoves {
		id, seg := mv.id, mv.seg
		loc := j.v.live.ref(id)
		if loc == nil || loc.seg < p.s0 || loc.seg >= p.s1 {
			continue // deleted since (perhaps added again, after the prefix)
		}
		pins.addLive(loc.seg, -1, -int64(loc.size))
		loc.seg = seg
		pins.addLive(seg, 1, int64(loc.size))
		want[seg-first]++
	}
	for id, tx := range j.v.txs {
		segs := p.txSegs[id]
		for i := range tx.ops {
			if tx.ops[i].seg < p.s1 {
				if i < len(segs) {
					tx.ops[i].seg = segs[i]
				} else {
					tx.ops[i].seg = first
				}
			}
		}
		if tx.firstSeg < p.s1 {
			pins.add(tx.firstSeg, -1)
			tx.firstSeg = first
			if len(segs) > 0 {
				tx.firstSeg = segs[0]
			}
			pins.add(tx.firstSeg, 1)
		}
		if tx.firstSeg >= first && tx.firstSeg < p.s1 {
			want[tx.firstSeg-first]++
		}
	}
	clean := true
	for seg := p.s0; seg < p.s1 && clean; seg++ {
		w := 0
		if seg >= first {
			w = want[seg-first]
		}
		clean = pins.get(seg) == w
	}
	if !clean {
		j.log.Error("journal compaction: records left in removed segments; rebuilding the pin counts", "dir", j.opts.Dir)
		j.compactAdoptWalk(p)
	}
	j.oldest = max(j.oldest, first)
	j.compactions++
}

// compactAdoptWalk is compactAdopt by walking every live record and
// rebuilding the pin counts.
func (j *FileJournal) compactAdoptWalk(p *compactPlan) {
	first := p.s1 - uint64(p.m)
	recSeg := make(map[uint64]uint64, len(p.recMoves))
	for _, mv := range p.recMoves {
		recSeg[mv.id] = mv.seg
	}
	j.v.live.each(func(id uint64, loc *recLoc) {
		if loc.seg < p.s1 {
			seg, ok := recSeg[id]
			if !ok {
				seg = first // cannot happen; the oldest kept segment is safe
			}
			loc.seg = seg
		}
	})
	for id, tx := range j.v.txs {
		segs := p.txSegs[id]
		for i := range tx.ops {
			if tx.ops[i].seg < p.s1 {
				if i < len(segs) {
					tx.ops[i].seg = segs[i]
				} else {
					tx.ops[i].seg = first
				}
			}
		}
		if tx.firstSeg < p.s1 {
			tx.firstSeg = first
			if len(segs) > 0 {
				tx.firstSeg = segs[0]
			}
		}
	}
	var pins pinCounts
	j.v.live.each(func(_ uint64, loc *recLoc) { pins.addLive(loc.seg, 1, int64(loc.size)) })
	for _, tx := range j.v.txs {
		pins.add(tx.firstSeg, 1)
	}
	j.v.pins = pins
}

// writeFileSync writes data to a new file at path and fsyncs it.
func writeFileSync(fs aio.FS, path string, data []byte) error {
	f, err := fs.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
