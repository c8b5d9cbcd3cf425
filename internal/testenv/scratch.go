package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
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
//
// The port comes from 10000-19999, below Linux's ephemeral range (read from
// /proc/sys/net/ipv4/ip_local_port_range) and below the 20000-32767 that
// scripts/test-services gives PostgreSQL and ZooKeeper. A port the kernel
// hands out for port 0 is one it also picks as the source port of outgoing
// connections, and the suite opens hundreds of those: one could take the
// port between this check and the broker's bind. Ports outside the
// ephemeral range are only ever taken by an explicit bind. Where the
// ephemeral range starts too low for that, the kernel picks (port 0).
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := fixedPortRange()
	for range 1000 {
		port := 0
		if hi > lo {
			port = lo + mrand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			if port == 0 || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("testenv.FreePort: %v", err)
			}
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedOutMu.Lock()
		seen := handedOut[port]
		handedOut[port] = true
		handedOutMu.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatal("testenv.FreePort: every free port tried was in use or handed out before")
	return 0
}

// fixedPortRange is [lo, hi) for FreePort, or lo == hi when the ephemeral
// range leaves too little room below it.
func fixedPortRange() (lo, hi int) {
	lo, hi = 10000, 20000
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	var ephLo, ephHi int
	if _, err := fmt.Sscan(string(b), &ephLo, &ephHi); err != nil {
		return 0, 0
	}
	switch {
	case ephHi < lo: // the ephemeral range is all below 10000
	case ephLo >= lo+1000:
		hi = min(hi, ephLo)
	default:
		return 0, 0
	}
	return lo, hi
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
