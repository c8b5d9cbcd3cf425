package ha

import (
	"testing"
)

// settle runs the world fairly (every queued action, a tick for each idle
// broker, a monitor check, then one unit of time) until cond holds,
// checking the invariants after every step. It fails after limit rounds.
func settle(t *testing.T, w *world, limit int, what string, cond func(*world) bool) {
	t.Helper()
	for round := 0; round < limit; round++ {
		if cond(w) {
			return
		}
		for i, sn := range w.nodes {
			if !sn.alive {
				continue
			}
			for len(sn.queue) > 0 {
				if err := w.exec(i); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if err := w.check(); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			if sn.n.Done() {
				continue
			}
			w.deliver(i, Event{Kind: EvTick})
			if sn.monitorOn && len(sn.queue) == 0 {
				w.verify(i)
			}
		}
		w.now++
		if err := w.check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	t.Fatalf("%s: not reached within %d rounds", what, limit)
}

func serving(i int) func(*world) bool {
	return func(w *world) bool { return w.nodes[i].serving && w.nodes[i].n.CanAck(w.now) }
}

// A primary that comes back writes F and the live backup hands over; if
// that primary dies before it takes over, its F is stale (nobody holds the
// failback lock) and the backup, waiting again, activates. Artemis's
// backup would stay passive until the primary returns.
func TestStaleFailbackDoesNotStrandTheBackup(t *testing.T) {
	w := newWorld(FileLock, simConfig(FileLock, nil), budget{}, 1)
	settle(t, w, 100, "primary serves", serving(0))
	w.crash(0)
	settle(t, w, 100, "backup takes over", serving(1))
	w.boot(0)
	// Run until the primary holds the failback lock and waits, with F
	// written, while the backup hands over.
	settle(t, w, 100, "primary waits to fail back", func(w *world) bool {
		return w.nodes[0].n.phase == PhaseWaitPrimary && !w.nodes[1].serving
	})
	w.crash(0)
	settle(t, w, 100, "backup activates on the stale F", serving(1))
	if w.state != 'L' || w.nodes[1].n.epoch != 3 {
		t.Fatalf("state %c, backup epoch %d", w.state, w.nodes[1].n.epoch)
	}
}

// With a database lease (no failback lock) the backup keeps Artemis's
// rule: an F means the primary is coming back.
func TestStaleFailbackDBLeaseStaysPassive(t *testing.T) {
	w := newWorld(DBLease, simConfig(DBLease, nil), budget{}, 1)
	settle(t, w, 100, "primary serves", serving(0))
	w.crash(0)
	settle(t, w, 100, "backup takes over", serving(1))
	w.boot(0)
	settle(t, w, 100, "primary waits to fail back", func(w *world) bool {
		return w.nodes[0].n.phase == PhaseWaitPrimary && !w.nodes[1].serving
	})
	w.crash(0)
	for range 50 {
		w.now++
		w.deliver(1, Event{Kind: EvTick})
		for len(w.nodes[1].queue) > 0 {
			if err := w.exec(1); err != nil {
				t.Fatal(err)
			}
		}
		if w.nodes[1].serving {
			t.Fatal("backup activated on an F (database lease)")
		}
	}
}
