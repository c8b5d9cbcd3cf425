package journal

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tandemmq/tandem/aio"
)

// SegmentName returns the file name of segment seq.
func SegmentName(prefix, ext string, seq uint64) string {
	return fmt.Sprintf("%s-%010d.%s", prefix, seq, ext)
}

// parseSegmentName returns the sequence in a segment file name, or false.
func parseSegmentName(prefix, ext, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, "."+ext)
	if !ok || digits == "" {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil && seq > 0
}

// Naming is a journal's file naming: the prefix and extension of its
// segment files.
type Naming struct{ Prefix, Ext string }

// FindJournals returns the namings of the journals whose segment files
// are in dir (a directory may hold more than one, though a broker keeps
// each journal in its own directory).
func FindJournals(fs aio.FS, dir string) ([]Naming, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	seen := map[Naming]bool{}
	var out []Naming
	for _, n := range names {
		dot := strings.LastIndexByte(n, '.')
		dash := strings.LastIndexByte(n, '-')
		if dot < 0 || dash < 0 || dash > dot {
			continue
		}
		nm := Naming{Prefix: n[:dash], Ext: n[dot+1:]}
		if _, ok := parseSegmentName(nm.Prefix, nm.Ext, n); ok && !seen[nm] {
			seen[nm] = true
			out = append(out, nm)
		}
	}
	return out, nil
}

// segFile is a segment file found in the directory.
type segFile struct {
	name   string
	path   string
	seq    uint64
	size   int64
	hdr    segHeader
	hdrErr error // nil: a used segment; errHeaderZero: unused; else bad
	// rawSalt is the header's salt field as stored, even when the header
	// is bad: replay uses it to tell a damaged header of a written segment
	// from a never-written one.
	rawSalt uint64
}

func (s *segFile) used() bool { return s.hdrErr == nil }

// listSegments lists dir's segment files in sequence order and reads
// their headers. Leftover temporary files are returned separately.
func listSegments(fs aio.FS, dir string, nm Naming) (segs []segFile, tmps []string, err error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: list %s: %w", dir, err)
	}
	for _, n := range names {
		if base, ok := strings.CutSuffix(n, ".tmp"); ok {
			if _, ok := parseSegmentName(nm.Prefix, nm.Ext, base); ok {
				tmps = append(tmps, filepath.Join(dir, n))
			}
			continue
		}
		seq, ok := parseSegmentName(nm.Prefix, nm.Ext, n)
		if !ok {
			continue
		}
		sf := segFile{name: n, path: filepath.Join(dir, n), seq: seq}
		if err := readSegHeader(fs, &sf); err != nil {
			return nil, nil, err
		}
		segs = append(segs, sf)
	}
	// List sorts by name; sequences are zero-padded, but sort numerically
	// anyway in case of a sequence wider than the padding.
	for i := 1; i < len(segs); i++ {
		for k := i; k > 0 && segs[k].seq < segs[k-1].seq; k-- {
			segs[k], segs[k-1] = segs[k-1], segs[k]
		}
	}
	return segs, tmps, nil
}

func readSegHeader(fs aio.FS, sf *segFile) error {
	f, err := fs.Open(sf.path)
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", sf.path, err)
	}
	defer f.Close()
	if sf.size, err = f.Size(); err != nil {
		return fmt.Errorf("journal: stat %s: %w", sf.path, err)
	}
	var b [SegmentHeaderSize]byte
	n, err := f.ReadAt(b[:], 0)
	if n < len(b) && sf.size >= SegmentHeaderSize {
		return fmt.Errorf("journal: read header of %s: %w", sf.path, err)
	}
	sf.hdr, sf.hdrErr = decodeSegHeader(b[:n])
	if n >= 32 {
		sf.rawSalt = binary.LittleEndian.Uint64(b[24:])
	}
	if sf.hdrErr == nil && sf.hdr.seq != sf.seq {
		sf.hdrErr = fmt.Errorf("%w: header sequence %d in the file of segment %d", errHeaderBad, sf.hdr.seq, sf.seq)
	}
	return nil
}
