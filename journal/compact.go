package journal

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tandemmq/tandem/aio"
)

// Compaction (issue 4, item 2). Reclaim only removes the oldest segment, so
// one long-lived record (or prepared transaction) pins every later
// segment. Compaction rewrites the prefix [S0, S1) of sealed segments, S0
// the oldest, S1 the segment being appended to when it starts, as the
// state it holds: its live records (add and updates), its open
// transactions (entries and prepare). The state goes into m < S1-S0 new
// segments numbered S1-m..S1-1, so the sequence stays contiguous and every
// later record still replays after it; S0..S1-m-1 are removed. Appends
// continue meanwhile (they go to S1 and later).
//
// The switch is crash-safe: the new segments are written as NAME.cmp and
// fsynced; a control file (PREFIX.compact: the renames and removals, with
// a CRC) is written to a temporary name, fsynced, renamed and the
// directory fsynced; only then are the .cmp files renamed over their
// segments and the old ones removed, the directory fsynced and the control
// file removed. Load finishes a switch whose control file exists, and
// deletes .cmp files that have none.

// ErrCompactBusy is returned by Compact when a compaction is running.
var ErrCompactBusy = errors.New("journal: compaction already running")

// CompactResult says what a compaction did.
type CompactResult struct {
	From, To   uint64 // the prefix [From, To) that was considered
	NewSegs    int    // segments it was rewritten into (0: nothing done)
	LiveBytes  int64  // bytes of the rewritten state
	PrefixSize int64  // bytes of the prefix's segments
	Skipped    string // why nothing was done, when nothing was
}

func (j *FileJournal) controlPath() string {
	return filepath.Join(j.opts.Dir, j.nm.Prefix+".compact")
}

// Compact compacts the prefix of sealed segments when its live state fits
// in fewer segments and under journal-compact-percentage of its size.
func (j *FileJournal) Compact(ctx context.Context) (CompactResult, error) {
	j.mu.Lock()
	if err := j.usableLocked(); err != nil {
		j.mu.Unlock()
		return CompactResult{}, err
	}
	if j.compacting {
		j.mu.Unlock()
		return CompactResult{}, ErrCompactBusy
	}
	s0, s1 := j.oldest, j.seg.hdr.seq
	if f := j.streamFloorLocked(); f < s1 {
		j.mu.Unlock()
		return CompactResult{From: s0, To: s1, Skipped: "a stream subscriber still reads the prefix"}, nil
	}
	j.compacting = true // reclaim leaves the prefix alone meanwhile
	j.compactS1 = s1
	j.mu.Unlock()
	res, plan, err := j.compactPrepare(ctx, s0, s1)
	if err == nil && plan != nil {
		err = j.compactSwitch(plan)
	}
	j.mu.Lock()
	j.compacting = false
	if err == nil && plan != nil {
		j.compactAdopt(plan)
	}
	j.mu.Unlock()
	if err != nil {
		// The prefix files are untouched until the control file is
		// durable; after that a failure is a storage failure.
		if plan != nil && plan.switching {
			j.fail(err)
		}
		return res, err
	}
	return res, nil
}

// compactPlan is a prepared compaction.
type compactPlan struct {
	s0, s1    uint64
	m         int
	recSeg    map[uint64]uint64   // live record ID -> new segment
	txSegs    map[uint64][]uint64 // open transaction -> new segment of each entry
	switching bool
}

// compactPrepare replays the prefix, writes its state into .cmp files and
// returns the plan, or a nil plan when compaction would not pay.
func (j *FileJournal) compactPrepare(ctx context.Context, s0, s1 uint64) (CompactResult, *compactPlan, error) {
	res := CompactResult{From: s0, To: s1}
	if s1-s0 < 2 {
		res.Skipped = "fewer than two sealed segments"
		return res, nil, nil
	}
	// Everything up to the seal of S1-1 must be durable before it is read.
	if err := AppendSync(ctx, j); err != nil {
		return res, nil, err
	}
	l := newLoader()
	var epoch, maxID uint64
	var e Entry
	for seq := s0; seq < s1; seq++ {
		if err := ctx.Err(); err != nil {
			return res, nil, err
		}
		sf := segFile{path: j.segPath(seq), seq: seq}
		if err := readSegHeader(j.fs, &sf); err != nil {
			return res, nil, err
		}
		if sf.hdrErr != nil {
			return res, nil, &CorruptionError{File: sf.path, Reason: sf.hdrErr.Error()}
		}
		buf, err := readAll(j.fs, sf.path, int64(sf.hdr.size))
		if err != nil {
			return res, nil, err
		}
		res.PrefixSize += int64(len(buf))
		epoch, maxID = max(epoch, sf.hdr.epoch), max(maxID, sf.hdr.maxID)
		_, err = scanSegment(buf, &sf, true, func(_ string, seq uint64, _ int64, payload []byte) error {
			r := entryReader{p: payload}
			for {
				ok, err := r.next(&e)
				if err != nil || !ok {
					return err
				}
				l.apply(&e, seq)
			}
		})
		if err != nil {
			return res, nil, err
		}
	}
	lr, _, unfinished := l.finish()
	maxID = max(maxID, lr.MaxID)
	// The state as a stream of entries, tagged by what they belong to.
	type tagged struct {
		e    Entry
		rec  uint64 // live record ID (0: a transaction entry)
		tx   uint64
		txOp bool // a transaction entry (not its prepare)
	}
	var stream []tagged
	for _, r := range lr.Records {
		stream = append(stream, tagged{e: Entry{Kind: KindAdd, ID: r.ID, Type: r.Type, Data: r.Data}, rec: r.ID})
		for _, u := range r.Updates {
			stream = append(stream, tagged{e: Entry{Kind: KindUpdate, ID: r.ID, Type: u.Type, Data: u.Data}, rec: r.ID})
		}
	}
	txOrder := make([]uint64, 0, len(lr.Prepared)+len(unfinished))
	for _, p := range lr.Prepared {
		txOrder = append(txOrder, p.TxID)
	}
	txOrder = append(txOrder, unfinished...)
	for _, id := range txOrder {
		tx := l.txs[id]
		for _, te := range tx.entries {
			stream = append(stream, tagged{e: te, tx: id, txOp: true})
		}
		if tx.prepared {
			stream = append(stream, tagged{e: Entry{Kind: KindPrepare, TxID: id, Data: tx.data}, tx: id})
		}
	}
	// Pack: batches of up to 64 KiB, segments of the current size.
	size := j.opts.SegmentSize
	limit := segLimit(size, 1)
	batchMax := min(int64(64<<10), limit-SegmentHeaderSize)
	type placed struct{ seg, from, to int } // stream[from:to] is one batch in new segment seg
	var batches []placed
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
	plan := &compactPlan{s0: s0, s1: s1, m: m, recSeg: map[uint64]uint64{}, txSegs: map[uint64][]uint64{}}
	first := s1 - uint64(m)
	bufs := make([][]byte, m)
	hdrs := make([]segHeader, m)
	ends := make([]int64, m)
	for i := range bufs {
		hdrs[i] = segHeader{seq: first + uint64(i), epoch: epoch, salt: rand.Uint64(), size: uint64(size), align: 1,
			version: formatVersion, maxID: maxID}
		bufs[i] = make([]byte, size)
		hdrs[i].encode(bufs[i])
		ends[i] = SegmentHeaderSize
	}
	entries := make([]Entry, 0, 64)
	for _, b := range batches {
		entries = entries[:0]
		seq := first + uint64(b.seg)
		for _, t := range stream[b.from:b.to] {
			entries = append(entries, t.e)
			switch {
			case t.rec != 0 && t.e.Kind == KindAdd:
				plan.recSeg[t.rec] = seq
			case t.txOp:
				plan.txSegs[t.tx] = append(plan.txSegs[t.tx], seq)
			}
		}
		n := batchSize(entries)
		encodeBatch(bufs[b.seg][ends[b.seg]:ends[b.seg]+int64(n)], entries, uint32(ends[b.seg]), hdrs[b.seg].seed())
		ends[b.seg] += int64(n)
	}
	for i := range bufs {
		encodeSeal(bufs[i][ends[i]:ends[i]+RecordHeaderSize], uint32(ends[i]), hdrs[i].seed())
		if err := writeFileSync(j.fs, j.segPath(first+uint64(i))+".cmp", bufs[i]); err != nil {
			return res, nil, fmt.Errorf("journal: compaction: %w", err)
		}
	}
	res.NewSegs = m
	return res, plan, nil
}

// compactSwitch makes the compaction durable and visible.
func (j *FileJournal) compactSwitch(p *compactPlan) error {
	var b strings.Builder
	b.WriteString("tandem-compact 1\n")
	first := p.s1 - uint64(p.m)
	for seq := p.s0; seq < first; seq++ {
		fmt.Fprintf(&b, "remove %d\n", seq)
	}
	for seq := first; seq < p.s1; seq++ {
		fmt.Fprintf(&b, "rename %d\n", seq)
	}
	fmt.Fprintf(&b, "crc %08x\n", crc32.Checksum([]byte(b.String()), castagnoli))
	ctl := j.controlPath()
	if err := writeFileSync(j.fs, ctl+".tmp", []byte(b.String())); err != nil {
		return fmt.Errorf("journal: compaction control file: %w", err)
	}
	if err := j.fs.Rename(ctl+".tmp", ctl); err != nil {
		return fmt.Errorf("journal: compaction control file: %w", err)
	}
	p.switching = true // from here on the control file may be durable
	if err := j.fs.SyncDir(j.opts.Dir); err != nil {
		return fmt.Errorf("journal: compaction control file: %w", err)
	}
	return finishCompaction(j.fs, j.opts.Dir, j.nm)
}

// finishCompaction carries out the control file in dir, if any (again
// after a crash: every step is idempotent), and removes stray .cmp files.
func finishCompaction(fs aio.FS, dir string, nm Naming) error {
	ctl := filepath.Join(dir, nm.Prefix+".compact")
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	if !have[filepath.Base(ctl)] {
		for _, n := range names {
			if base, ok := strings.CutSuffix(n, ".cmp"); ok {
				if _, ok := parseSegmentName(nm.Prefix, nm.Ext, base); ok {
					if err := fs.Remove(filepath.Join(dir, n)); err != nil {
						return err
					}
				}
			}
		}
		if have[filepath.Base(ctl)+".tmp"] {
			if err := fs.Remove(ctl + ".tmp"); err != nil {
				return err
			}
		}
		return nil
	}
	f, err := fs.Open(ctl)
	if err != nil {
		return err
	}
	size, err := f.Size()
	var text []byte
	if err == nil {
		text = make([]byte, size)
		_, err = f.ReadAt(text, 0)
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", ctl, err)
	}
	removes, renames, err := parseControl(string(text))
	if err != nil {
		return &CorruptionError{File: ctl, Reason: err.Error()}
	}
	for _, seq := range renames {
		name := SegmentName(nm.Prefix, nm.Ext, seq)
		if have[name+".cmp"] {
			if err := fs.Rename(filepath.Join(dir, name+".cmp"), filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	for _, seq := range removes {
		name := SegmentName(nm.Prefix, nm.Ext, seq)
		if have[name] {
			if err := fs.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	if err := fs.SyncDir(dir); err != nil {
		return err
	}
	if err := fs.Remove(ctl); err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

func parseControl(text string) (removes, renames []uint64, err error) {
	i := strings.LastIndex(text, "crc ")
	if i < 0 || !strings.HasPrefix(text, "tandem-compact 1\n") {
		return nil, nil, errors.New("compaction control file is malformed")
	}
	body := text[:i]
	want, perr := strconv.ParseUint(strings.TrimSpace(text[i+4:]), 16, 32)
	if perr != nil || uint32(want) != crc32.Checksum([]byte(body), castagnoli) {
		return nil, nil, errors.New("compaction control file checksum mismatch")
	}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n")[1:] {
		op, arg, _ := strings.Cut(line, " ")
		seq, perr := strconv.ParseUint(arg, 10, 64)
		if perr != nil {
			return nil, nil, fmt.Errorf("compaction control file: bad line %q", line)
		}
		switch op {
		case "remove":
			removes = append(removes, seq)
		case "rename":
			renames = append(renames, seq)
		default:
			return nil, nil, fmt.Errorf("compaction control file: bad line %q", line)
		}
	}
	return removes, renames, nil
}

// compactAdopt points the validator at the new segments (j.mu held).
func (j *FileJournal) compactAdopt(p *compactPlan) {
	first := p.s1 - uint64(p.m)
	j.v.live.each(func(id uint64, loc *recLoc) {
		if loc.seg < p.s1 {
			seg, ok := p.recSeg[id]
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
	j.oldest = max(j.oldest, first)
	j.compactions++
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
