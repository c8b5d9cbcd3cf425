package journal

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/tandemmq/tandem/aio"
)

// preparer creates segment files ahead of the writer, off the hot path:
// a temporary file is filled with zeros (written extents: fdatasync then
// has no metadata to journal), fsynced, renamed to the segment's name and
// the directory fsynced. A prepared file has an all-zero header, which
// replay reads as "unused"; the writer's first flush into it writes the
// header. One goroutine, owned by the journal, started by start and ended
// by stop.
type preparer struct {
	fs   aio.FS
	dir  string
	nm   Naming
	size int64

	mu      sync.Mutex
	cond    sync.Cond
	ready   uint64 // every sequence up to ready has a prepared or used file
	want    uint64
	err     error
	stopped bool
	exited  chan struct{}

	created int // files created (metrics, tests)
}

func newPreparer(fs aio.FS, dir string, nm Naming, size int64, ready uint64) *preparer {
	p := &preparer{fs: fs, dir: dir, nm: nm, size: size, ready: ready, want: ready}
	p.cond.L = &p.mu
	return p
}

func (p *preparer) start() {
	p.exited = make(chan struct{})
	go p.loop()
}

// request asks for files up to sequence upTo.
func (p *preparer) request(upTo uint64) {
	p.mu.Lock()
	if upTo > p.want {
		p.want = upTo
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

// wait blocks until the file of seq is ready, or preparation failed.
func (p *preparer) wait(seq uint64) error {
	p.request(seq)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.ready < seq && p.err == nil && !p.stopped {
		p.cond.Wait()
	}
	switch {
	case p.ready >= seq:
		return nil
	case p.err != nil:
		return p.err
	}
	return ErrClosed
}

func (p *preparer) loop() {
	defer close(p.exited)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for !p.stopped && p.err == nil && p.ready >= p.want {
			p.cond.Wait()
		}
		if p.stopped || p.err != nil {
			return
		}
		seq := p.ready + 1
		p.mu.Unlock()
		err := p.create(seq)
		p.mu.Lock()
		if err != nil {
			p.err = err
		} else {
			p.ready = seq
			p.created++
		}
		p.cond.Broadcast()
	}
}

// prepareNow creates files up to upTo on the caller's goroutine (at load,
// before the loop starts).
func (p *preparer) prepareNow(upTo uint64) error {
	for p.ready < upTo {
		if err := p.create(p.ready + 1); err != nil {
			return err
		}
		p.ready++
		p.created++
	}
	p.want = max(p.want, p.ready)
	return nil
}

func (p *preparer) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
	if p.exited != nil {
		<-p.exited
	}
}

func (p *preparer) create(seq uint64) error {
	final := filepath.Join(p.dir, SegmentName(p.nm.Prefix, p.nm.Ext, seq))
	tmp := final + ".tmp"
	if err := writeZeroFile(p.fs, tmp, p.size); err != nil {
		return fmt.Errorf("journal: prepare segment %d: %w", seq, err)
	}
	if err := p.fs.Rename(tmp, final); err != nil {
		return fmt.Errorf("journal: prepare segment %d: %w", seq, err)
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		return fmt.Errorf("journal: prepare segment %d: %w", seq, err)
	}
	return nil
}

var zeroBlock = make([]byte, 1<<20)

// writeZeroFile creates path holding size zero bytes, durably.
func writeZeroFile(fs aio.FS, path string, size int64) error {
	f, err := fs.Create(path)
	if err != nil {
		return err
	}
	for off := int64(0); off < size; {
		n := min(int64(len(zeroBlock)), size-off)
		if _, err := f.WriteAt(zeroBlock[:n], off); err != nil {
			f.Close()
			return err
		}
		off += n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
