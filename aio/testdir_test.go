package aio

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// testDir returns a temporary directory on a file system that accepts
// O_DIRECT. t.TempDir is used unless it is on tmpfs; then a directory under
// the module's .scratch is used (TANDEM_TEST_DIR overrides both).
func testDir(t testing.TB) string {
	t.Helper()
	if base := os.Getenv("TANDEM_TEST_DIR"); base != "" {
		d, err := os.MkdirTemp(base, "aio-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	d := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(d, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		t.Skipf("%s is tmpfs, which refuses O_DIRECT: set TANDEM_TEST_DIR to a directory on a disk", d)
	}
	return d
}
