package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// EnvBin names a prebuilt tandem binary; when set, BuildTandem returns it
// instead of building one.
const EnvBin = "TANDEM_BIN"

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// ModuleRoot returns the directory holding this module's go.mod, found by
// walking up from the working directory (a test runs in its package's
// directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testenv: module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildTandem returns the path of a tandem binary built from this module's
// ./cmd/tandem with `go build`, once per test binary (later calls reuse it).
// TANDEM_BIN, when set, names a binary to use instead. A build failure fails
// every test that asks. Call Main from TestMain to remove the binary when
// the tests end; without it, it stays in the temporary directory.
func BuildTandem(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvBin); p != "" {
		return p
	}
	build.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			build.err = err
			return
		}
		dir, err := os.MkdirTemp("", "tandem-testbin-")
		if err != nil {
			build.err = fmt.Errorf("testenv: build tandem: %w", err)
			return
		}
		build.dir = dir
		out := filepath.Join(dir, "tandem")
		// go test puts its own toolchain first on the test's PATH.
		cmd := exec.Command("go", "build", "-o", out, "./cmd/tandem")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("testenv: go build ./cmd/tandem: %w\n%s", err, msg)
			return
		}
		build.path = out
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Main runs the tests and removes what BuildTandem built. Use it as
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}
