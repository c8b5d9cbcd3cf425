package replication

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tandemmq/tandem/journal"
	"golang.org/x/sys/unix"
)

// JournalDir is one of the replica's journal directories and the names of
// its segment files (the broker's bindings or messages journal).
type JournalDir struct {
	Dir    string
	Naming journal.Naming
}

// segFile is an open segment file of the replica.
type segFile struct {
	f      *os.File
	seq    uint64
	dirty  bool // written since the last fdatasync
	sealed bool // its seal arrived: close it after the next sync
}

// copyDir writes the stream of one journal into its directory.
type copyDir struct {
	jd JournalDir
	// bulk: the initial copy, before the sync completed. New segment files
	// are created sparse (ftruncate): they are written whole, and zero-
	// filling them first would double the copy's writes. After the sync
	// they are zero-filled, ahead of need (prep), so that the appends of
	// the live stream do not make fdatasync allocate blocks.
	bulk    bool
	prep    map[uint64]chan error // segments being zero-filled ahead
	bg      sync.WaitGroup        // bulk: sealed segments being synced and closed
	bgMu    sync.Mutex
	bgErr   error
	open    map[uint64]*segFile
	dirSync bool // a file was created, sealed or removed since the last directory fsync
	acked   journal.Position
	written journal.Position // end of the last byte written
	oldest  uint64           // segments below it were removed
}

func newCopyDir(jd JournalDir) *copyDir {
	return &copyDir{jd: jd, bulk: true, open: map[uint64]*segFile{}, prep: map[uint64]chan error{}}
}

func (d *copyDir) path(seq uint64) string {
	return filepath.Join(d.jd.Dir, journal.SegmentName(d.jd.Naming.Prefix, d.jd.Naming.Ext, seq))
}

// file returns segment seq open for writing, creating it zero-filled at
// size when it does not exist: byte copies need the same size, and zeros
// past the live's data read as the end of the segment.
func (d *copyDir) file(seq uint64, size int64) (*segFile, error) {
	if sf, ok := d.open[seq]; ok {
		return sf, nil
	}
	path := d.path(seq)
	if ch, ok := d.prep[seq]; ok {
		delete(d.prep, seq)
		if err := <-ch; err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if d.bulk {
			err = createSparseFile(path, size)
		} else {
			err = createZeroFile(path, size)
		}
		if err != nil {
			return nil, err
		}
		d.dirSync = true
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err == nil && !d.bulk {
		d.prepare(seq+1, size)
	}
	if err != nil {
		return nil, fmt.Errorf("replication: open segment: %w", err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != size {
		f.Close()
		if err == nil {
			err = fmt.Errorf("size %d, the live's segment has %d", st.Size(), size)
		}
		return nil, fmt.Errorf("replication: segment %s: %w", path, err)
	}
	sf := &segFile{f: f, seq: seq}
	d.open[seq] = sf
	return sf, nil
}

// write applies one ReplicaData range.
func (d *copyDir) write(seq uint64, off int64, size int64, data []byte, sealed bool) error {
	if size <= 0 || off < 0 || off+int64(len(data)) > size {
		return fmt.Errorf("replication: range [%d, %d) outside segment %d of %d bytes", off, off+int64(len(data)), seq, size)
	}
	sf, err := d.file(seq, size)
	if err != nil {
		return err
	}
	if len(data) > 0 {
		if _, err := sf.f.WriteAt(data, off); err != nil {
			return fmt.Errorf("replication: write segment %s at %d: %w", d.path(seq), off, err)
		}
		sf.dirty = true
	}
	if sealed {
		sf.sealed = true
	}
	end := journal.Position{Seq: seq, Offset: off + int64(len(data))}
	if sealed {
		end = journal.Position{Seq: seq + 1} // what the live's stream continues with
	}
	if d.written.Less(end) {
		d.written = end
	}
	return nil
}

// sync makes everything written durable: fdatasync of every dirty file,
// then (for created, sealed or removed files) the directory. It returns
// the position now durable.
func (d *copyDir) sync() (journal.Position, error) {
	if err := d.bgFailed(); err != nil {
		return d.acked, err
	}
	for seq, sf := range d.open {
		if sf.sealed && d.bulk {
			// The bulk copy syncs and closes a sealed segment while the next
			// one arrives; waitBulk waits for them before the sync is
			// recorded as complete.
			delete(d.open, seq)
			d.dirSync = true
			d.bg.Add(1)
			go func() {
				defer d.bg.Done()
				err := unix.Fdatasync(int(sf.f.Fd()))
				if cerr := sf.f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					d.bgMu.Lock()
					if d.bgErr == nil {
						d.bgErr = fmt.Errorf("replication: sync %s: %w", d.path(seq), err)
					}
					d.bgMu.Unlock()
				}
			}()
			continue
		}
		if sf.dirty {
			if err := unix.Fdatasync(int(sf.f.Fd())); err != nil {
				return d.acked, fmt.Errorf("replication: fdatasync %s: %w", d.path(seq), err)
			}
			sf.dirty = false
		}
		if sf.sealed {
			if err := sf.f.Close(); err != nil {
				return d.acked, fmt.Errorf("replication: close %s: %w", d.path(seq), err)
			}
			delete(d.open, seq)
			d.dirSync = true
		}
	}
	if d.dirSync {
		if err := syncDir(d.jd.Dir); err != nil {
			return d.acked, err
		}
		d.dirSync = false
	}
	d.acked = d.written
	return d.acked, nil
}

func (d *copyDir) bgFailed() error {
	d.bgMu.Lock()
	defer d.bgMu.Unlock()
	return d.bgErr
}

// waitBulk waits for the bulk copy's background syncs and returns the
// first error.
func (d *copyDir) waitBulk() error {
	d.bg.Wait()
	return d.bgFailed()
}

// dropBelow removes the copies of segments the live no longer keeps.
func (d *copyDir) dropBelow(oldest uint64) error {
	if oldest <= d.oldest {
		return nil
	}
	segs, err := listCopies(d.jd)
	if err != nil {
		return err
	}
	for _, seq := range segs {
		if seq >= oldest {
			break
		}
		if sf, ok := d.open[seq]; ok {
			sf.f.Close()
			delete(d.open, seq)
		}
		if err := os.Remove(d.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replication: remove %s: %w", d.path(seq), err)
		}
		d.dirSync = true
	}
	d.oldest = oldest
	return nil
}

func (d *copyDir) close() {
	d.bg.Wait()
	for seq, sf := range d.open {
		sf.f.Close()
		delete(d.open, seq)
	}
	for seq, ch := range d.prep {
		<-ch
		delete(d.prep, seq)
	}
}

// prepare zero-fills segment seq on a goroutine of its own unless it
// exists or is being prepared; file waits for it.
func (d *copyDir) prepare(seq uint64, size int64) {
	if _, ok := d.prep[seq]; ok {
		return
	}
	path := d.path(seq)
	if _, err := os.Stat(path); err == nil {
		return
	}
	ch := make(chan error, 1)
	d.prep[seq] = ch
	go func() { ch <- createZeroFile(path, size) }()
}

// synced ends the bulk copy: segments are zero-filled ahead from now on.
func (d *copyDir) synced() { d.bulk = false }

// listCopies returns the segment sequences in the directory, ascending.
func listCopies(jd JournalDir) ([]uint64, error) {
	ents, err := os.ReadDir(jd.Dir)
	if err != nil {
		return nil, fmt.Errorf("replication: list %s: %w", jd.Dir, err)
	}
	var seqs []uint64
	pre, ext := jd.Naming.Prefix+"-", "."+jd.Naming.Ext
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, pre) || !strings.HasSuffix(n, ext) {
			continue
		}
		if seq, err := strconv.ParseUint(n[len(pre):len(n)-len(ext)], 10, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// createSparseFile creates a file of size that holds no blocks yet (reads
// as zeros), through a temporary name, renamed.
func createSparseFile(path string, size int64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("replication: create %s: %w", tmp, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("replication: size %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("replication: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replication: rename %s: %w", tmp, err)
	}
	return nil
}

// createZeroFile writes a zero-filled file of size at path (through a
// temporary name, fsynced, renamed).
func createZeroFile(path string, size int64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("replication: create %s: %w", tmp, err)
	}
	zero := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; off += int64(len(zero)) {
		n := min(int64(len(zero)), size-off)
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			f.Close()
			return fmt.Errorf("replication: zero-fill %s: %w", tmp, err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		f.Close()
		return fmt.Errorf("replication: fdatasync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("replication: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replication: rename %s: %w", tmp, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("replication: open directory %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("replication: fsync directory %s: %w", dir, err)
	}
	return nil
}

// oldPrefix names the directories that hold earlier copies.
const oldPrefix = "oldreplica."

// setAside moves the journal files of dir (everything but lock files and
// directories) into dir/oldreplica.N, N one more than the largest there,
// and removes the oldest such directories beyond keep (keep 0: the files
// are deleted). Artemis keeps max-saved-replicated-journals-size (2) such
// copies. It returns where the files went ("" when there were none, or
// they were deleted).
func setAside(dir string, keep int, log *slog.Logger) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("replication: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("replication: list %s: %w", dir, err)
	}
	var files []string
	var olds []int
	for _, e := range ents {
		n := e.Name()
		switch {
		case e.IsDir() && strings.HasPrefix(n, oldPrefix):
			if k, err := strconv.Atoi(n[len(oldPrefix):]); err == nil {
				olds = append(olds, k)
			}
		case e.Type().IsRegular() && !strings.HasSuffix(n, ".lock"):
			files = append(files, n)
		}
	}
	slices.Sort(olds)
	dest := ""
	if len(files) > 0 {
		if keep <= 0 {
			for _, n := range files {
				if err := os.Remove(filepath.Join(dir, n)); err != nil {
					return "", fmt.Errorf("replication: remove %s: %w", n, err)
				}
			}
		} else {
			next := 1
			if len(olds) > 0 {
				next = olds[len(olds)-1] + 1
			}
			dest = filepath.Join(dir, oldPrefix+strconv.Itoa(next))
			if err := os.Mkdir(dest, 0o755); err != nil {
				return "", fmt.Errorf("replication: %w", err)
			}
			for _, n := range files {
				if err := os.Rename(filepath.Join(dir, n), filepath.Join(dest, n)); err != nil {
					return "", fmt.Errorf("replication: move %s aside: %w", n, err)
				}
			}
			if err := syncDir(dest); err != nil {
				return "", err
			}
			olds = append(olds, next)
		}
	}
	for len(olds) > max(keep, 0) {
		old := filepath.Join(dir, oldPrefix+strconv.Itoa(olds[0]))
		if err := os.RemoveAll(old); err != nil {
			return dest, fmt.Errorf("replication: remove %s: %w", old, err)
		}
		log.Info("removed an old replica copy", "dir", old)
		olds = olds[1:]
	}
	return dest, syncDir(dir)
}
