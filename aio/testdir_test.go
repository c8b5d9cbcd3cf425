package aio

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// testDir returns a temporary directory on a file system that accepts
// O_DIRECT. t.TempDir is used unless it refuses O_DIRECT (the test then
// skips); TANDEM_TEST_DIR overrides it.
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
	probe := d + "/.odirect-probe"
	fd, err := unix.Open(probe, unix.O_CREAT|unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Skipf("%s refuses O_DIRECT (%v): set TANDEM_TEST_DIR to a directory on a disk", d, err)
	}
	unix.Close(fd)
	os.Remove(probe)
	return d
}
