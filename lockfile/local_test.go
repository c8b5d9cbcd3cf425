package lockfile

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tandemmq/tandem/internal/faultfs"
)

// WriteLocal is the replication activation sequence's durable store: a
// backup adopts the live's node ID and takes its sequence at sync, and
// the record survives a reopen.
func TestWriteLocal(t *testing.T) {
	dir := t.TempDir()
	m := openT(t, dir, Options{})
	own := m.NodeID()
	live, err := NewNodeID()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteLocal(live, 7, StateActive); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("without the primary lock: %v, want ErrNotHeld", err)
	}
	mustTry(t, m.TryAcquirePrimary, true)
	if err := m.WriteLocal(NodeID{}, 7, StateActive); err == nil {
		t.Fatal("a zero node ID was accepted")
	}
	if err := m.WriteLocal(live, 7, State('x')); err == nil {
		t.Fatal("an invalid state was accepted")
	}
	before, err := m.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	if before.NodeID != own {
		t.Fatalf("a refused write changed the record: %+v", before)
	}
	if err := m.WriteLocal(live, 7, StateActive); err != nil {
		t.Fatal(err)
	}
	if m.NodeID() != live {
		t.Fatalf("NodeID() = %s, want the adopted %s", m.NodeID(), live)
	}
	r, err := m.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	if r.NodeID != live || r.Epoch != 7 || r.State != StateActive || r.Seq <= before.Seq {
		t.Fatalf("record %+v, want node %s epoch 7 state L and a new write sequence", r, live)
	}
	// 0 is "no valid data" (a sync in progress): a valid record too.
	if err := m.WriteLocal(live, 0, StateNotStarted); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteLocal(live, 9, StateActive); err != nil {
		t.Fatal(err)
	}
	m.Close()
	r, err = ReadStateFile(filepath.Join(dir, StateFileName))
	if err != nil {
		t.Fatal(err)
	}
	if r.NodeID != live || r.Epoch != 9 {
		t.Fatalf("after close: %+v", r)
	}
	m2 := openT(t, dir, Options{})
	if m2.NodeID() != live {
		t.Fatalf("reopened node ID %s, want %s", m2.NodeID(), live)
	}
}

// A failed fsync of the record is returned (the caller halts; nothing is
// retried).
func TestWriteLocalFUSEFsyncError(t *testing.T) {
	fsys := faultfs.New(t)
	m := openT(t, fsys.Dir, Options{})
	mustTry(t, m.TryAcquirePrimary, true)
	if err := fsys.Faults.Set(StateFileName, faultfs.Fault{FsyncErr: syscall.EIO}); err != nil {
		t.Fatal(err)
	}
	err := m.WriteLocal(m.NodeID(), 3, StateActive)
	var le *LockError
	if !errors.As(err, &le) || !errors.Is(err, syscall.EIO) || le.Op != "fsync" {
		t.Fatalf("got %v, want a LockError fsync EIO", err)
	}
}
