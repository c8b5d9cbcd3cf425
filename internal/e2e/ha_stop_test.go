package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/wire"
)

// requireRefused: a client connecting to m alone (no HA) is refused with
// CodeUnavailable while m waits.
func requireRefused(t *testing.T, m *haMember) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, m.URL())
	if err == nil {
		c.Close()
		t.Fatalf("%s accepted a client while waiting", m.name)
	}
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != wire.CodeUnavailable {
		t.Fatalf("%s: dial error %v, want CodeUnavailable", m.name, err)
	}
}

// TestHACleanStop: SIGTERM of the live primary under load exits 0. With
// failover-on-shutdown=false the backup stays passive (state waiting,
// refusing clients) until the primary returns; with true it takes over at
// once, and the primary fails back when it returns. Either way the
// producer (reconnecting forever) ends with every message acknowledged
// and nothing is lost or duplicated.
func TestHACleanStop(t *testing.T) {
	for _, fos := range []bool{false, true} {
		t.Run(fmt.Sprintf("failover-on-shutdown=%v", fos), func(t *testing.T) {
			p := newHAPair(t, haOpts{failoverOnShutdown: fos})
			p.primary.start()
			p.primary.requireFileStore()
			p.backup.start()
			if p.waitActive() != p.primary {
				t.Fatal("the backup activated first")
			}
			p.backup.waitState(t, "waiting")
			requireRefused(t, p.backup)
			st := p.backup.status()
			if peers, _ := st["peers"].([]any); len(peers) != 2 {
				t.Fatalf("backup /status peers %v, want both brokers", st["peers"])
			}
			_, e0 := p.primary.state()
			r := p.haLoad(t, "s", 400, func() {
				time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
				if code := p.primary.stop(); code != 0 {
					t.Errorf("SIGTERM of the live primary: exit %d, want 0", code)
				}
				if !fos {
					// Not failing over is the point: give the backup
					// ample time to (wrongly) activate.
					time.Sleep(3 * time.Second)
					if s, _ := p.backup.state(); s != "waiting" {
						t.Errorf("backup state %q after a clean stop without failover-on-shutdown, want waiting", s)
					}
					requireRefused(t, p.backup)
				} else {
					e := p.backup.waitState(t, "active")
					if e <= e0 {
						t.Errorf("backup activated with epoch %d, primary had %d", e, e0)
					}
				}
				p.primary.start()
			})
			if now := p.waitActive(); now != p.primary {
				t.Fatalf("%s active after the primary returned, want the primary (failback)", now.name)
			}
			p.backup.waitState(t, "waiting")
			t.Log(r)
			acts := p.checkEpochs()
			want := 2
			if fos {
				want = 3
			}
			if len(acts) != want {
				t.Fatalf("%d activations %v, want %d", len(acts), acts, want)
			}
			for _, m := range p.members() {
				if code := m.stop(); code != 0 {
					t.Fatalf("SIGTERM of the %s: exit %d", m.name, code)
				}
			}
		})
	}
}

// TestHAFailbackLoop (F15): the primary stops cleanly under load with
// failover-on-shutdown (the backup takes over), returns, and the backup
// hands back; looped.
func TestHAFailbackLoop(t *testing.T) {
	n := 4
	if testing.Short() {
		n = 1
	}
	p := newHAPair(t, haOpts{failoverOnShutdown: true})
	p.primary.start()
	p.primary.requireFileStore()
	p.backup.start()
	for it := 0; it < n; it++ {
		if live := p.waitActive(); live != p.primary {
			t.Fatalf("iteration %d: %s active, want the primary", it, live.name)
		}
		stopAt := time.Duration(rand.IntN(500)) * time.Millisecond
		r := p.haLoad(t, fmt.Sprintf("f%d", it), 200+rand.IntN(200), func() {
			time.Sleep(stopAt)
			if code := p.primary.stop(); code != 0 {
				t.Errorf("SIGTERM: exit %d", code)
			}
			p.backup.waitState(t, "active")
			p.primary.start()
		})
		t.Logf("iteration %d: primary stopped after %v; %v", it, stopAt, r)
	}
	p.checkEpochs()
}

// TestHARestartBackupFalse: with restart-backup=false a backup that hands
// back to its returning primary exits 0 instead of waiting again.
func TestHARestartBackupFalse(t *testing.T) {
	p := newHAPair(t, haOpts{noRestartBackup: true})
	p.primary.start()
	p.primary.requireFileStore()
	p.backup.start()
	p.waitActive()
	p.primary.kill()
	p.backup.waitState(t, "active")
	p.primary.start()
	if code := p.backup.waitExit(t); code != 0 {
		t.Fatalf("backup exit %d after failing back with restart-backup=false, want 0", code)
	}
	if now := p.waitActive(); now != p.primary {
		t.Fatalf("%s active, want the primary", now.name)
	}
	p.checkEpochs()
}
