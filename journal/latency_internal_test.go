package journal

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/aio/crashfs"
)

// recFS wraps a file system and records what the journal does through it:
// the operations the flusher goroutine runs itself, the plain writes into
// a segment being prepared (*.tmp) and the writebacks started on them.
type recFS struct {
	aio.FS
	mu       sync.Mutex
	flusher  []string    // operations run on the flusher goroutine
	tmpWrite []int64     // sizes of the writes into *.tmp files, in order
	tmpWB    []int64     // offsets whose writeback was started
	onWrite  func()      // called at each write into a *.tmp file
	onRead   func(n int) // called at each plain read of more than a page
	opened   atomic.Int64
	closed   atomic.Int64
}

// onFlusher reports whether the calling goroutine is the journal's flusher.
func onFlusher() bool {
	buf := make([]byte, 64<<10)
	return bytes.Contains(buf[:runtime.Stack(buf, false)], []byte("flushLoop"))
}

func (r *recFS) note(op, name string) {
	if onFlusher() {
		r.mu.Lock()
		r.flusher = append(r.flusher, op+" "+filepath.Base(name))
		r.mu.Unlock()
	}
}

func (r *recFS) OpenAppend(name string) (aio.File, error) {
	r.note("open", name)
	f, err := r.FS.OpenAppend(name)
	if err != nil {
		return nil, err
	}
	r.opened.Add(1)
	return &recFile{File: f, r: r}, nil
}

func (r *recFS) Create(name string) (aio.PlainFile, error) {
	r.note("create", name)
	f, err := r.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &recPlain{PlainFile: f, r: r, tmp: strings.HasSuffix(name, ".tmp")}, nil
}

func (r *recFS) Open(name string) (aio.PlainFile, error) {
	r.note("open-plain", name)
	f, err := r.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return &recPlain{PlainFile: f, r: r}, nil
}

func (r *recFS) Rename(a, b string) error { r.note("rename", a); return r.FS.Rename(a, b) }
func (r *recFS) Remove(name string) error { r.note("remove", name); return r.FS.Remove(name) }
func (r *recFS) SyncDir(dir string) error { r.note("syncdir", dir); return r.FS.SyncDir(dir) }

type recFile struct {
	aio.File
	r *recFS
}

func (f *recFile) Close() error {
	f.r.note("close", f.Name())
	f.r.closed.Add(1)
	return f.File.Close()
}

type recPlain struct {
	aio.PlainFile
	r   *recFS
	tmp bool
}

func (f *recPlain) WriteAt(p []byte, off int64) (int, error) {
	if f.tmp {
		f.r.mu.Lock()
		f.r.tmpWrite = append(f.r.tmpWrite, int64(len(p)))
		fn := f.r.onWrite
		f.r.mu.Unlock()
		if fn != nil {
			fn()
		}
	}
	return f.PlainFile.WriteAt(p, off)
}

func (f *recPlain) ReadAt(p []byte, off int64) (int, error) {
	f.r.mu.Lock()
	fn := f.r.onRead
	f.r.mu.Unlock()
	if fn != nil && len(p) > 4096 {
		fn(len(p))
	}
	return f.PlainFile.ReadAt(p, off)
}

// StartWriteback records the range (the wrapped file systems have none).
func (f *recPlain) StartWriteback(off, n int64) error {
	f.r.mu.Lock()
	f.r.tmpWB = append(f.r.tmpWB, off)
	f.r.mu.Unlock()
	return nil
}

// waitOpenedAhead waits until the preparer has opened segment seq ahead.
func waitOpenedAhead(t *testing.T, j *FileJournal, seq uint64) {
	t.Helper()
	p := j.prep
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if _, ok := p.opened[seq]; ok || p.err != nil || p.stopped {
			break
		}
		p.cond.Wait()
	}
	if p.opened[seq] == nil {
		t.Fatalf("segment %d not opened ahead (preparer error %v)", seq, p.err)
	}
}

// appendUntil appends synced 1 KiB records until the journal appends to
// segment seq.
func appendUntil(t *testing.T, j *FileJournal, seq uint64, id *uint64) {
	t.Helper()
	for {
		j.mu.Lock()
		cur := j.seg.hdr.seq
		j.mu.Unlock()
		if cur >= seq {
			return
		}
		*id++
		if err := AppendSync(context.Background(), j, Entry{Kind: KindAdd, ID: *id, Type: 1, Data: make([]byte, 1024)}); err != nil {
			t.Fatal(err)
		}
	}
}

// A rotation costs the flusher the seal's write and fdatasync and nothing
// else (issue 20, item 1): the next segment's file is opened ahead by the
// preparer, the sealed one is closed by it, and no directory fsync is
// needed (the segment names are durable before their first write). Every
// file opened is closed by Close.
func TestRotationOffFlusher(t *testing.T) {
	for _, kind := range []aio.Kind{aio.NIO, aio.IOUring} {
		t.Run(kind.String(), func(t *testing.T) {
			r := &recFS{FS: crashfs.New(crashfs.Options{Kind: kind, Alignment: 4096})}
			j, err := Open(Options{Dir: "/j", FS: r, SegmentSize: 64 << 10, Logger: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := j.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			var id uint64
			for seq := uint64(2); seq <= 5; seq++ {
				waitOpenedAhead(t, j, seq)
				appendUntil(t, j, seq, &id)
			}
			// The last append went into segment 5: its flush ran after the
			// seal of segment 4.
			if err := AppendSync(context.Background(), j, Entry{Kind: KindAdd, ID: id + 1, Type: 1, Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			ops := r.flusher
			r.mu.Unlock()
			if len(ops) > 0 {
				t.Errorf("the flusher ran file operations besides its writes over 4 rotations: %q", ops)
			}
			if o, c := r.opened.Load(), r.closed.Load(); o != c || o < 5 {
				t.Errorf("%d segment files opened for appends, %d closed", o, c)
			}
		})
	}
}

// A new segment's zeros go out a chunk at a time, each chunk's writeback
// started at once, so the disk never gets megabytes of zeros in one burst
// ahead of a journal fdatasync (issue 20, item 1).
func TestZeroFillInChunks(t *testing.T) {
	r := &recFS{FS: crashfs.New(crashfs.Options{Kind: aio.NIO})}
	const size = 1 << 20
	j, err := Open(Options{Dir: "/j", FS: r, SegmentSize: size, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	var id uint64
	appendUntil(t, j, 3, &id) // segment 4 is prepared by the background preparer
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tmpWrite) < 2*size/zeroChunk {
		t.Fatalf("%d writes into prepared files: %v", len(r.tmpWrite), r.tmpWrite)
	}
	var off int64
	for i, n := range r.tmpWrite {
		if n > zeroChunk {
			t.Fatalf("write %d of %d bytes, more than a chunk of %d", i, n, zeroChunk)
		}
		if i >= len(r.tmpWB) || r.tmpWB[i] != off {
			t.Fatalf("write %d at %d: writebacks started %v", i, off, r.tmpWB)
		}
		off = (off + n) % size
	}
}

// With one Go processor, other goroutines run while a segment is being
// prepared, between its chunks (issue 20, item 1: a 10 MiB zero-fill in
// one go kept the only processor for its whole duration).
func TestZeroFillYields(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r := &recFS{FS: crashfs.New(crashfs.Options{Kind: aio.NIO})}
	var ticks atomic.Int64
	var seen []int64
	r.onWrite = func() { seen = append(seen, ticks.Load()) } // the preparer's goroutine only
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // ends when stop closes
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ticks.Add(1)
			runtime.Gosched()
		}
	}()
	p := newPreparer(r, "/j", Naming{Prefix: DefaultPrefix, Ext: DefaultExt}, 4<<20, 0, -1)
	if err := r.MkdirAll("/j"); err != nil {
		t.Fatal(err)
	}
	err := p.create(1, p.pace)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 {
		t.Fatalf("%d writes", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Fatalf("no other goroutine ran between chunks %d and %d of the zero-fill (ticks %v)", i-1, i, seen)
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A compaction reads its prefix in windows of compactWindow, lets other
// goroutines run after each read (one Go processor here), and copies only
// the live records' data instead of keeping every window it read (issue
// 20, item 1: a compaction read ten segments back to back, every journal
// fdatasync meanwhile took 2-5 ms, and it allocated the whole prefix).
func TestCompactPaced(t *testing.T) {
	r := &recFS{FS: crashfs.New(crashfs.Options{Kind: aio.NIO})}
	const size = 1 << 20
	j, err := Open(Options{Dir: "/j", FS: r, SegmentSize: size, CompactMinFiles: -1, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	must := func(entries ...Entry) {
		if err := AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	// A long-lived record in each of the first segments, among records
	// that are added and deleted.
	data := bytes.Repeat([]byte{9}, 900)
	must(Entry{Kind: KindAdd, ID: 100, Data: data})
	for id := uint64(101); ; id++ {
		must(Entry{Kind: KindAdd, ID: id, Data: data}, Entry{Kind: KindDelete, ID: id - 1})
		m := j.Metrics()
		if id%1000 == 0 && m.SegmentsInUse <= 4 {
			must(Entry{Kind: KindAdd, ID: id / 1000, Type: 7, Data: []byte("long-lived")})
		}
		if m.SegmentsInUse >= 12 {
			break
		}
	}
	j.mu.Lock()
	cur := j.seg.hdr.seq
	j.mu.Unlock()
	waitOpenedAhead(t, j, cur+1) // the preparer has nothing left to do

	// The reads of the prefix's live segments: their data is copied.
	j.mu.Lock()
	s0, e := j.oldest, j.seg.hdr.seq
	snap := snapMap(j.compactSnapshotLocked(s0, e))
	j.mu.Unlock()
	hdrs, err := j.prefixHeaders(s0, e)
	if err != nil {
		t.Fatal(err)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	st, read, err := j.readLive(ctx, s0, hdrs, snap)
	runtime.ReadMemStats(&ms1)
	if err != nil || read < 3 || len(st.records) != len(snap) {
		t.Fatalf("readLive: %d segments read, %d records of %d, %v", read, len(st.records), len(snap), err)
	}
	if alloc := int64(ms1.TotalAlloc - ms0.TotalAlloc); alloc > int64(read)*size/2 {
		t.Fatalf("reading %d segments of %d bytes allocated %d bytes", read, size, alloc)
	}

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var ticks atomic.Int64
	var reads, seen []int64
	r.mu.Lock()
	r.onRead = func(n int) { // the compaction's goroutine only
		reads = append(reads, int64(n))
		seen = append(seen, ticks.Load())
	}
	r.mu.Unlock()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // ends when stop closes
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ticks.Add(1)
			runtime.Gosched()
		}
	}()
	res, err := j.Compact(ctx)
	close(stop)
	<-done
	if err != nil || res.NewSegs == 0 || res.SegmentsRead < 3 {
		t.Fatalf("compaction: %+v, %v", res, err)
	}
	if len(reads) < 2 {
		t.Fatalf("%d reads", len(reads))
	}
	for i, n := range reads {
		if n > compactWindow {
			t.Fatalf("read %d of %d bytes, more than a window of %d", i, n, compactWindow)
		}
		if i > 0 && seen[i] == seen[i-1] {
			t.Fatalf("no other goroutine ran between reads %d and %d of the compaction", i-1, i)
		}
	}
}

// compactAdopt moves only the rewritten records and the open transactions
// (not every live record) and keeps the pin counts exactly what a walk of
// every live record gives, with long-lived records, updates, a prepared
// and an open transaction in the prefix and live records after it.
func TestCompactAdoptPins(t *testing.T) {
	var logs bytes.Buffer
	j, err := Open(Options{Dir: t.TempDir(), SegmentSize: 64 << 10, CompactMinFiles: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	must := func(entries ...Entry) {
		if err := AppendSync(ctx, j, entries...); err != nil {
			t.Fatal(err)
		}
	}
	must(Entry{Kind: KindAdd, ID: 1, Type: 7, Data: []byte("long-lived")})
	must(Entry{Kind: KindAddTx, TxID: 2, ID: 3, Data: []byte("prepared add")}, Entry{Kind: KindPrepare, TxID: 2, Data: []byte("xid")})
	must(Entry{Kind: KindAddTx, TxID: 4, ID: 5, Data: []byte("open tx add")})
	data := bytes.Repeat([]byte{9}, 900)
	for i := uint64(100); i < 1100; i++ {
		entries := []Entry{{Kind: KindAdd, ID: i, Data: data}}
		switch {
		case i%50 == 0:
			entries = append(entries, Entry{Kind: KindUpdate, ID: 1, Data: []byte("update")})
		case i%97 == 0:
			continue // stays live
		}
		if i > 100 && (i-1)%97 != 0 {
			entries = append(entries, Entry{Kind: KindDelete, ID: i - 1})
		}
		must(entries...)
	}
	res, err := j.Compact(ctx)
	if err != nil || res.NewSegs == 0 {
		t.Fatalf("compaction: %+v, %v", res, err)
	}
	j.mu.Lock()
	got := j.v.pins
	var want pinCounts
	j.v.live.each(func(_ uint64, loc *recLoc) { want.addLive(loc.seg, 1, int64(loc.size)) })
	for _, tx := range j.v.txs {
		want.add(tx.firstSeg, 1)
	}
	for seg := j.oldest; seg <= j.seg.hdr.seq; seg++ {
		if got.get(seg) != want.get(seg) || got.liveBytes(seg, seg+1) != want.liveBytes(seg, seg+1) {
			t.Errorf("segment %d: pins %d (%d bytes), a walk gives %d (%d bytes)", seg,
				got.get(seg), got.liveBytes(seg, seg+1), want.get(seg), want.liveBytes(seg, seg+1))
		}
	}
	j.mu.Unlock()
	if logs.Len() > 0 {
		t.Errorf("logged: %s", logs.String())
	}
}
