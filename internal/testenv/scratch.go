package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago and that this process never handed out before. Another process may
// still take it before the caller binds it; tests that can, should listen
// on port 0 and read the address instead.
//
// The kernel may give the same free port to two calls in a row (the first
// listener is closed at once), so a broker asking for its acceptor and its
// HTTP port got the same one and failed with "address already in use" (CI,
// TestKillDuringTransactions); a port reserved for a broker that starts
// later, or restarts on it, could also be handed to another broker.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv.FreePort: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedOutMu.Lock()
		seen := handedOut[port]
		handedOut[port] = true
		handedOutMu.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatal("testenv.FreePort: every free port the kernel offered was handed out before")
	return 0
}

// Ports FreePort handed out in this process.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// FreeAddr returns "127.0.0.1:PORT" with PORT from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// TempDir returns a fresh directory removed when the test ends, like
// t.TempDir, named after the test and the given name so logs are easy to
// find. Unlike t.TempDir, the directory is kept when the test fails and
// TANDEM_KEEP_FAILED is set, and its path is logged then.
func TempDir(t testing.TB, name string) string {
	t.Helper()
	base := os.Getenv("TANDEM_TEST_TMPDIR")
	dir, err := os.MkdirTemp(base, sanitize(t.Name()+"-"+name)+"-")
	if err != nil {
		t.Fatalf("testenv.TempDir: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("TANDEM_KEEP_FAILED") != "" {
			t.Logf("testenv: kept %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv.TempDir: removing %s: %v", dir, err)
		}
	})
	return dir
}

// UniqueName returns a name for the test's own objects in shared services
// (tables, databases, znodes): lower case letters, digits and '_', starting
// with a letter, at most 40 bytes, with a random suffix.
func UniqueName(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv.UniqueName: %v", err)
	}
	s := strings.ToLower(sanitize(t.Name()))
	s = strings.NewReplacer("-", "_", ".", "_").Replace(s)
	if len(s) > 30 {
		s = s[:30]
	}
	return "t_" + s + "_" + hex.EncodeToString(b[:])
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '.') {
			return r
		}
		return '_'
	}, s)
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
