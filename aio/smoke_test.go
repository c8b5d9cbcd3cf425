package aio

import (
	"bytes"
	"path/filepath"
	"testing"
)

func TestSmokeRoundTrip(t *testing.T) {
	for _, kind := range []Kind{NIO, Direct, IOUring} {
		t.Run(kind.String(), func(t *testing.T) {
			dir := testDir(t)
			fs := OS(kind, DefaultOptions())
			name := filepath.Join(dir, "seg")
			pf, err := fs.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			pf.Close()
			f, err := fs.OpenAppend(name)
			if err != nil {
				t.Fatal(err)
			}
			buf := AlignedBuffer(8192, f.Alignment())
			for i := range buf {
				buf[i] = byte(i)
			}
			ch := make(chan error, 1)
			f.Submit(buf, 0, true, func(err error) { ch <- err })
			if got := <-ch; got != nil {
				t.Fatalf("submit: %v", got)
			}
			rb := make([]byte, len(buf))
			if _, err := f.ReadAt(rb, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rb, buf) {
				t.Fatal("read back differs")
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

