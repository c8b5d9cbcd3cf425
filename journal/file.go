package journal

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/tandemmq/tandem/aio"
)

// Open returns the file journal in opts.Dir (created if missing). It reads
// nothing until Load.
func Open(opts Options) (*FileJournal, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(opts.Dir); err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", opts.Dir, err)
	}
	j := &FileJournal{
		opts:   opts,
		fs:     opts.FS,
		nm:     Naming{Prefix: opts.Prefix, Ext: opts.Ext},
		log:    opts.Logger,
		failed: make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	j.space.L = &j.mu
	return j, nil
}

func (j *FileJournal) segPath(seq uint64) string {
	return filepath.Join(j.opts.Dir, SegmentName(j.nm.Prefix, j.nm.Ext, seq))
}

// Load replays the journal and prepares it for appends: a torn tail is
// cut off by a seal record (and reported in Warnings), appends go to a new
// segment, unfinished transactions are rolled back by appended rollback
// records. Corruption stops the load with a *CorruptionError.
func (j *FileJournal) Load(ctx context.Context) (*LoadResult, error) {
	if j.opts.Log {
		return nil, errLogLoad
	}
	return j.load(ctx, func() (*ScanResult, *LoadResult, *validator, []uint64, error) {
		return replay(j.fs, j.opts.Dir, j.nm)
	})
}

// load replays the journal with replayFn and prepares it for appends.
func (j *FileJournal) load(ctx context.Context, replayFn func() (*ScanResult, *LoadResult, *validator, []uint64, error)) (*LoadResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closed || j.closing:
		return nil, ErrClosed
	case j.loaded:
		return nil, errLoadTwice
	}
	if err := finishCompaction(j.fs, j.opts.Dir, j.nm); err != nil {
		return nil, fmt.Errorf("journal: finish an interrupted compaction: %w", err)
	}
	sr, res, v, unfinished, err := replayFn()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Epoch = sr.Epoch
	res.MaxID = max(res.MaxID, sr.MaxID)
	v.maxID = res.MaxID
	j.v = v
	res.Warnings = sr.Warnings
	for _, w := range sr.Warnings {
		j.log.Warn("journal load", "dir", j.opts.Dir, "warning", w)
	}
	if err := j.prepareFiles(sr); err != nil {
		return nil, err
	}
	if len(unfinished) > 0 {
		rb := make([]Entry, len(unfinished))
		for i, id := range unfinished {
			rb[i] = Entry{Kind: KindRollback, TxID: id}
		}
		if err := j.appendLocked(rb, batchSize(rb), false, nil); err != nil {
			j.seg.file.Close()
			return nil, fmt.Errorf("journal: roll back unfinished transactions: %w", err)
		}
	}
	j.cq = newCompleter()
	j.inflight = make(chan struct{}, j.opts.MaxInFlight)
	j.flusherExited = make(chan struct{})
	j.loaded = true
	j.bgCtx, j.bgCancel = context.WithCancel(context.Background())
	j.prep.start()
	go j.flushLoop()
	return res, nil
}

// prepareFiles seals the last used segment if a crash left it open,
// removes leftovers, makes sure journal-min-files files exist and opens
// the segment appends go to.
func (j *FileJournal) prepareFiles(sr *ScanResult) error {
	fs, dir := j.fs, j.opts.Dir
	_, tmps, err := listSegments(fs, dir, j.nm)
	if err != nil {
		return err
	}
	for _, t := range tmps {
		if err := fs.Remove(t); err != nil {
			return fmt.Errorf("journal: remove leftover %s: %w", t, err)
		}
	}
	next := uint64(1)
	if n := len(sr.Segments); n > 0 {
		last := sr.Segments[n-1]
		next = last.Seq + 1
		if !sr.LastSealed {
			if err := writeSeal(fs, last.Path, sr.LastEnd); err != nil {
				return err
			}
		} else if err := syncFile(fs, last.Path); err != nil {
			// A process killed between writing the seal and its
			// fdatasync left a seal this load read from the page cache:
			// make it durable before appending after it.
			return err
		}
	} else if len(sr.Unused) > 0 {
		next = sr.Unused[0].Seq
	}
	// Unused files continuing the sequence with the right size are the
	// pool; anything else unused is empty and is removed.
	ready := next - 1
	for _, u := range sr.Unused {
		if u.Seq == ready+1 && u.Size == j.opts.SegmentSize && (j.opts.PoolFiles < 0 || int(u.Seq-next) < max(j.opts.PoolFiles, j.opts.MinFiles)) {
			ready++
			continue
		}
		if err := fs.Remove(u.Path); err != nil {
			return fmt.Errorf("journal: remove unused segment %s: %w", u.Path, err)
		}
	}
	j.prep = newPreparer(fs, dir, j.nm, j.opts.SegmentSize, ready, j.opts.PoolFiles)
	j.prep.minFile = j.opts.MinFiles
	j.prep.onErr = j.fail
	j.prep.open = fs.OpenAppend
	j.oldest = next
	if len(sr.Segments) > 0 {
		j.oldest = sr.Segments[0].Seq
	}
	j.prep.gone = j.oldest
	// A stream resume below the end of a prefix an earlier process
	// compacted is refused, as in the process that compacted it.
	for _, si := range sr.Segments {
		if si.Compacted {
			j.compactS1 = max(j.compactS1, si.Seq+1)
		}
	}
	upTo := next
	if extra := j.opts.MinFiles - len(sr.Segments); extra > 1 {
		upTo = next + uint64(extra) - 1
	}
	if err := j.prep.prepareNow(upTo); err != nil {
		return err
	}
	// A previous process may have been killed between renaming a file
	// into place (preparation, recycling) and the directory fsync that
	// follows: the name exists but is not durable, and appends are about
	// to go into that file. Make every name in the directory durable
	// before anything is acknowledged.
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("journal: sync directory %s: %w", dir, err)
	}
	f, err := fs.OpenAppend(j.segPath(next))
	if err != nil {
		return fmt.Errorf("journal: open segment: %w", err)
	}
	j.align = f.Alignment()
	if j.opts.SegmentSize%int64(j.align) != 0 || j.opts.SegmentSize < 16*int64(j.align) {
		f.Close()
		return fmt.Errorf("journal: segment size %d does not suit the file's alignment %d", j.opts.SegmentSize, j.align)
	}
	j.startSegmentLocked(next)
	j.seg.file = f
	j.stream.advance(next, 0) // earlier segments are sealed and durable
	j.takenEnd = Position{Seq: next}
	return nil
}

// writeSeal writes a seal record at off in the segment at path (through
// buffered I/O) and syncs it: the segment then ends there for replay.
func writeSeal(fs aio.FS, path string, off int64) error {
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("journal: seal %s: %w", path, err)
	}
	defer f.Close()
	var hb [SegmentHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return fmt.Errorf("journal: seal %s: %w", path, err)
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		return fmt.Errorf("journal: seal %s: %w", path, err)
	}
	var b [RecordHeaderSize]byte
	encodeSeal(b[:], 0, h.seed())
	if _, err := f.WriteAt(b[:], off); err != nil {
		return fmt.Errorf("journal: seal %s at %d: %w", path, off, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: seal %s: %w", path, err)
	}
	return nil
}

// syncFile fsyncs the file at path.
func syncFile(fs aio.FS, path string) error {
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("journal: sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", path, err)
	}
	return nil
}

// Close seals the current segment, flushes and syncs everything pending,
// runs every callback and stops the journal's goroutines. It returns the
// journal's fatal error, if any. Later calls return nil.
func (j *FileJournal) Close() error {
	j.mu.Lock()
	if j.closed || j.closing {
		j.mu.Unlock()
		return nil
	}
	if !j.loaded {
		j.closed = true
		j.mu.Unlock()
		return nil
	}
	if j.err == nil {
		j.sealLocked()
		j.waiters = append(j.waiters, waiter{sync: true})
	}
	j.closing = true
	j.space.Broadcast()
	j.mu.Unlock()
	j.signal()
	j.bgCancel()
	<-j.flusherExited
	j.bg.Wait()
	j.mu.Lock()
	g := j.gate
	j.mu.Unlock()
	if g != nil {
		g.Fail(ErrNotReplicated)
	}
	j.mu.Lock()
	tap := j.tap
	j.mu.Unlock()
	if tap != nil {
		tap.end()
	}
	j.stream.close()
	perr := j.prep.stop()
	j.cq.stop()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	var cerr error
	if f := j.seg.file; f != nil {
		j.seg.file = nil
		cerr = f.Close()
	}
	if j.err != nil {
		return j.err
	}
	if cerr == nil {
		cerr = perr
	}
	return cerr
}

var _ Journal = (*FileJournal)(nil)

// replay scans the journal and applies its records: the load without any
// write.
func replay(fs aio.FS, dir string, nm Naming) (*ScanResult, *LoadResult, *validator, []uint64, error) {
	l := newLoader()
	var e Entry
	nsegs := 0
	if segs, _, err := listSegments(fs, dir, nm); err == nil {
		for i := range segs {
			if segs[i].used() {
				nsegs++
			}
		}
	}
	// The loaded records keep their data aliasing the read buffers:
	// retained (detachData copies what is live when most of it is dead).
	sr, err := newScanner(true).scan(fs, dir, nm, func(_ string, seq uint64, _ int64, payload []byte) error {
		if seq != l.curSeg {
			if l.curSeg == 0 {
				l.firstSeg = seq
			} else if l.curSeg == l.firstSeg {
				// After the first segment: expect as many records in each.
				l.reserve(len(l.recs) * (nsegs + 1))
			}
			l.curSeg = seq
		}
		r := entryReader{p: payload}
		for {
			ok, err := r.next(&e)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			l.apply(&e, seq)
		}
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	res, v, unfinished := l.finish()
	detachData(res, sr.Bytes)
	return sr, res, v, unfinished, nil
}

// detachData copies the loaded data out of the segment read buffers into
// one arena when the live data is under a quarter of what was read, so
// mostly-dead segments do not stay in memory for the life of the result.
// Otherwise the data keeps aliasing the read buffers (no copy at all).
func detachData(res *LoadResult, read int64) {
	var live int64
	each := func(f func(*[]byte)) {
		for i := range res.Records {
			r := &res.Records[i]
			f(&r.Data)
			for k := range r.Updates {
				f(&r.Updates[k].Data)
			}
		}
		for i := range res.Prepared {
			p := &res.Prepared[i]
			f(&p.Data)
			for k := range p.Entries {
				f(&p.Entries[k].Data)
			}
		}
	}
	each(func(b *[]byte) { live += int64(len(*b)) })
	if live == 0 || live >= read/4 {
		return
	}
	arena := make([]byte, 0, live)
	each(func(b *[]byte) {
		if len(*b) > 0 {
			start := len(arena)
			arena = append(arena, *b...)
			*b = arena[start:len(arena):len(arena)]
		}
	})
}
