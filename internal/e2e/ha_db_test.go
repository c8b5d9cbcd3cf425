package e2e

import (
	"fmt"
	"html"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// dbPair is a shared-store pair on a database store of its own (a fresh
// PostgreSQL database from TANDEM_TEST_PG; skipped without it) with a
// short lease: jdbc-lock-expiration 3 s, renewed every 500 ms.
func dbPair(t *testing.T, failoverOnShutdown bool) *haPair {
	t.Helper()
	url := testenv.PGDatabase(t)
	store := fmt.Sprintf(`<store><database-store>
    <jdbc-connection-url>%s</jdbc-connection-url>
    <jdbc-driver-class-name>org.postgresql.Driver</jdbc-driver-class-name>
    <jdbc-lock-expiration>3000</jdbc-lock-expiration>
    <jdbc-lock-renew-period>500</jdbc-lock-renew-period>
  </database-store></store>`, html.EscapeString(url))
	p := newHAPair(t, haOpts{store: store, failoverOnShutdown: failoverOnShutdown})
	p.primary.start()
	if st := p.primary.status(); st["store"] != "jdbc" {
		t.Fatalf("store %v, want jdbc", st["store"])
	}
	p.backup.start()
	if p.waitActive() != p.primary {
		t.Fatal("the backup activated first")
	}
	p.backup.waitState(t, "waiting")
	return p
}

// TestHADBLeaseZombie (F7 with the database lease): the live is paused
// with SIGSTOP past its lease; the backup takes the lease (a new epoch
// fences the tables) and serves; the old live, resumed, acknowledges
// nothing (its lease expired by its own monotonic clock) and halts.
func TestHADBLeaseZombie(t *testing.T) {
	p := dbPair(t, false)
	at := time.Duration(100+rand.IntN(400)) * time.Millisecond
	var took time.Duration
	r := p.haLoad(t, "dz", 400, func() {
		time.Sleep(at)
		if err := p.primary.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		p.backup.waitState(t, "active")
		took = time.Since(stopped)
		if err := p.primary.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if code := p.primary.waitExit(t); code != 3 {
			t.Errorf("resumed zombie exit %d, want 3 (halted)", code)
		}
	})
	t.Logf("SIGSTOP after %v, backup active %v later (jdbc-lock-expiration 3s); %v", at, took.Round(time.Millisecond), r)
	p.primary.requireHalt(t, "")
	p.replayCheck(t, "dz", true)
	p.checkEpochs()
}

// TestHADBLeaseKillLoop: SIGKILL of the live under load with the database
// lease (the backup waits for the lease to expire), then a clean stop
// with failover-on-shutdown (the lease is released: no wait); the killed
// broker restarts each time.
func TestHADBLeaseKillLoop(t *testing.T) {
	n := 3
	if testing.Short() {
		n = 1
	}
	p := dbPair(t, true)
	for it := 0; it <= n; it++ {
		live := p.waitActive()
		other := p.other(live)
		clean := it == n
		at := time.Duration(rand.IntN(500)) * time.Millisecond
		var took time.Duration
		r := p.haLoad(t, fmt.Sprintf("dk%d", it), 200+rand.IntN(200), func() {
			time.Sleep(at)
			start := time.Now()
			if clean {
				if code := live.stop(); code != 0 {
					t.Errorf("SIGTERM: exit %d", code)
				}
			} else {
				live.kill()
			}
			other.waitState(t, "active")
			took = time.Since(start)
			live.start()
		})
		how := "SIGKILL"
		if clean {
			how = "SIGTERM (failover-on-shutdown)"
		}
		t.Logf("iteration %d: %s of the %s after %v; %s active %v later; %v", it, how, live.name, at, other.name, took.Round(time.Millisecond), r)
	}
	p.checkEpochs()
}
