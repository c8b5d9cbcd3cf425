package e2e

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/faultfs"
)

// TestHaltOnFsyncError: the journal's fdatasync fails with EIO (a FUSE
// fault layer under the data directory). The broker must acknowledge
// nothing from then on and exit 3; everything it acknowledged before is
// there after a restart on healthy storage.
func TestHaltOnFsyncError(t *testing.T) {
	m := faultfs.New(t)
	b := newBrokerProc(t)
	b.data = filepath.Join(m.Dir, "data")
	cfg := filepath.Join(t.TempDir(), "broker.xml")
	// NIO: O_DIRECT is not available through this FUSE layer.
	xml := `<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">
  <journal-type>NIO</journal-type>
</core></configuration>`
	if err := os.WriteFile(cfg, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start("--config", cfg)
	b.requireFileStore()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := NewLedger()
	if err := produce(ctx, b.URL(), "h", "before", 200, 16, l); err != nil {
		t.Fatalf("produce before the fault: %v", err)
	}
	if err := m.Faults.Set("*.tj", faultfs.Fault{FsyncErr: syscall.EIO, WriteErr: syscall.EIO}); err != nil {
		t.Fatal(err)
	}
	err := produce(ctx, b.URL(), "h", "after", 50, 1, l)
	if err == nil {
		t.Fatal("a durable send was acknowledged after the journal's fsync failed")
	}
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("broker still running 30s after a storage error")
	}
	if b.exitCode != 3 {
		t.Fatalf("exit code %d, want 3 (halted on a storage error)", b.exitCode)
	}
	b.cmd = nil
	for id := range l.acked {
		if len(id) > 5 && id[:5] == "after" {
			t.Fatalf("%s acknowledged after the fault", id)
		}
	}
	m.Faults.Clear()
	b.start("--config", cfg)
	if _, err := drain(ctx, b.URL(), "h", 2*time.Second, 0, l); err != nil {
		t.Fatalf("drain: %v", err)
	}
	r := l.Check()
	t.Log(r)
	if !r.OK() {
		t.Fatal(r)
	}
	if r.Consumed < 200 {
		t.Fatalf("consumed %d, want the 200 acknowledged before the fault", r.Consumed)
	}
}
