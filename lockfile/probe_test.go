package lockfile

import (
	"testing"
)

func TestProbe(t *testing.T) {
	dir := t.TempDir()
	if _, err := Probe(dir); err == nil {
		t.Fatal("probe of an empty directory succeeded")
	}
	live := openT(t, dir, monOpts)
	backup := openT(t, dir, monOpts)
	st, err := Probe(dir)
	if err != nil || st.PrimaryLocked || st.BackupLocked || st.State.State != StateFirstStart || st.State.NodeID != live.NodeID() {
		t.Fatalf("fresh: %+v %v", st, err)
	}
	mustTry(t, live.TryAcquirePrimary, true)
	mustTry(t, backup.TryAcquireBackup, true)
	e, err := live.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Verify(e); err != nil {
		t.Fatal(err)
	}
	st, err = Probe(dir)
	if err != nil || !st.PrimaryLocked || !st.BackupLocked || st.State.Epoch != e || st.Heartbeat.Epoch != e || st.Heartbeat.Seq != 2 {
		t.Fatalf("live: %+v %v", st, err)
	}
	// Probing opened and closed the lock files in this process: the OFD
	// locks survive.
	mustTry(t, backup.TryAcquirePrimary, false)
}
