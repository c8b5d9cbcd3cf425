package aio

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"
)

func TestAlignedBuffer(t *testing.T) {
	cases := []struct{ n, align int }{
		{0, 4096}, {1, 1}, {100, 8}, {4096, 512}, {4096, 4096}, {1 << 20, 4096}, {10, 0},
	}
	for _, tc := range cases {
		p := AlignedBuffer(tc.n, tc.align)
		if len(p) != tc.n || cap(p) != tc.n {
			t.Errorf("AlignedBuffer(%d, %d): len %d cap %d", tc.n, tc.align, len(p), cap(p))
		}
		if a := max(tc.align, 1); tc.n > 0 && uintptr(unsafe.Pointer(&p[0]))%uintptr(a) != 0 {
			t.Errorf("AlignedBuffer(%d, %d) is at %p", tc.n, tc.align, &p[0])
		}
	}
}

func TestOSFileSystem(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind Kind) {
		fsys := OS(kind, DefaultOptions())
		dir := filepath.Join(testDir(t), "a", "b")
		steps := []struct {
			name string
			run  func() error
		}{
			{"MkdirAll", func() error { return fsys.MkdirAll(dir) }},
			{"Create and write", func() error {
				for _, n := range []string{"c", "a", "b"} {
					f, err := fsys.Create(filepath.Join(dir, n))
					if err != nil {
						return err
					}
					if _, err := f.WriteAt([]byte("hello "+n), 0); err != nil {
						return err
					}
					if err := f.Sync(); err != nil {
						return err
					}
					if err := f.Close(); err != nil {
						return err
					}
				}
				return nil
			}},
			{"Open, Size, Truncate", func() error {
				f, err := fsys.Open(filepath.Join(dir, "a"))
				if err != nil {
					return err
				}
				defer f.Close()
				if sz, err := f.Size(); err != nil || sz != 7 {
					return errors.Join(err, errors.New("size is not 7"))
				}
				if err := f.Truncate(4096); err != nil {
					return err
				}
				if sz, _ := f.Size(); sz != 4096 {
					return errors.New("truncate did not extend to 4096")
				}
				return nil
			}},
			{"Rename", func() error { return fsys.Rename(filepath.Join(dir, "c"), filepath.Join(dir, "d")) }},
			{"Remove", func() error { return fsys.Remove(filepath.Join(dir, "b")) }},
			{"SyncDir", func() error { return fsys.SyncDir(dir) }},
			{"List sorted", func() error {
				names, err := fsys.List(dir)
				if err != nil {
					return err
				}
				if !slices.Equal(names, []string{"a", "d"}) {
					return errors.New("List = " + filepath.Join(names...) + ", want a, d")
				}
				return nil
			}},
			{"Open missing", func() error {
				if _, err := fsys.Open(filepath.Join(dir, "b")); !errors.Is(err, fs.ErrNotExist) {
					return errors.Join(errors.New("want ErrNotExist"), err)
				}
				if _, err := fsys.OpenAppend(filepath.Join(dir, "b")); !errors.Is(err, fs.ErrNotExist) {
					return errors.Join(errors.New("OpenAppend: want ErrNotExist"), err)
				}
				return nil
			}},
		}
		for _, s := range steps {
			if err := s.run(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
	})
}

func TestParseJournalType(t *testing.T) {
	cases := []struct {
		in   string
		kind Kind
		warn bool
		bad  bool
	}{
		{"ASYNCIO", IOUring, false, false},
		{"nio", NIO, false, false},
		{" DIRECT ", Direct, false, false},
		{"MAPPED", NIO, true, false},
		{"aio", 0, false, true},
	}
	for _, tc := range cases {
		k, w, err := ParseJournalType(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && (k != tc.kind || w != tc.warn)) {
			t.Errorf("ParseJournalType(%q) = %v, %v, %v", tc.in, k, w, err)
		}
	}
}
