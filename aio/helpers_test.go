package aio

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// backends is every Kind the suite runs on (TANDEM_TEST_JOURNAL_TYPES
// narrows it). io_uring is included even when the kernel refuses it: OS
// then falls back and the tests run on DIRECT.
func backends(t testing.TB) []Kind {
	t.Helper()
	k, err := KindsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func forEachBackend(t *testing.T, f func(t *testing.T, kind Kind)) {
	for _, kind := range backends(t) {
		t.Run(kind.String(), func(t *testing.T) { f(t, kind) })
	}
}

// newFile creates a zero-filled file of size bytes in a fresh directory and
// opens it for appends through kind's backend.
func newFile(t testing.TB, kind Kind, opts Options, size int64) (FS, File) {
	t.Helper()
	fs := OS(kind, opts)
	name := filepath.Join(testDir(t), "segment")
	pf, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if size > 0 {
		if _, err := pf.WriteAt(make([]byte, size), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := pf.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return fs, f
}

// submitWait submits one write and waits for its completion.
func submitWait(t testing.TB, f File, p []byte, off int64, sync bool) error {
	t.Helper()
	ch := make(chan error, 1)
	f.Submit(p, off, sync, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: completion of write at %d never arrived", f.Name(), off)
		return nil
	}
}

// pattern returns an aligned buffer of n bytes filled from seed.
func pattern(n, align int, seed byte) []byte {
	p := AlignedBuffer(n, align)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func readBack(t testing.TB, f File, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := f.ReadAt(p, off); err != nil {
		t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
	}
	return p
}

func mustEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: differs at byte %d (got %d bytes, want %d)", what, i, len(got), len(want))
	}
}

// logBuffer is a slog handler target tests can inspect.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
