package ha

import (
	"testing"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// TestFenceWaitsLeasePlusMargin (issue 21 §5): the file-lock fence waits
// the lease plus FenceMargin(lease), a tenth of the lease plus 100 ms, and
// the node loads the store exactly then, not one lease after the bump.
func TestFenceWaitsLeasePlusMargin(t *testing.T) {
	for _, lease := range []time.Duration{time.Second, 10 * time.Second} {
		cfg := DefaultConfig(Backup, FileLock)
		cfg.Lease = lease
		cfg.FenceWait = cfg.Lease + FenceMargin(cfg.Lease)
		if want := lease + lease/10 + 100*time.Millisecond; cfg.FenceWait != want {
			t.Fatalf("lease %v: fence %v, want %v", lease, cfg.FenceWait, want)
		}
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.Step(Event{Kind: EvStart})
		n.Step(Event{Kind: EvDone, Op: ActTryAcquireBackup, Ok: true})
		n.Step(Event{Kind: EvDone, Op: ActTryAcquirePrimary, Ok: true})
		n.Step(Event{Kind: EvDone, Op: ActReadState, State: lockfile.StateActive})
		bump := 5 * time.Second
		n.Step(Event{Kind: EvDone, Op: ActBumpEpoch, Epoch: 3, Now: bump})
		for _, at := range []time.Duration{bump + lease, bump + cfg.FenceWait - 1} {
			if acts := n.Step(Event{Kind: EvTick, Now: at}); len(acts) != 0 || n.Phase() != PhaseFencing {
				t.Fatalf("lease %v: at bump+%v the node did %v (%s), want it still fencing", lease, at-bump, acts, n)
			}
		}
		acts := n.Step(Event{Kind: EvTick, Now: bump + cfg.FenceWait})
		if len(acts) != 1 || acts[0].Kind != ActLoadStore {
			t.Fatalf("lease %v: at bump+fence the node did %v, want load-store", lease, acts)
		}
	}
	if c := DefaultConfig(Primary, FileLock); c.FenceWait != 1200*time.Millisecond {
		t.Fatalf("default fence %v, want 1.2s (lease 1s + margin)", c.FenceWait)
	}
}
