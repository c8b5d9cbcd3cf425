package e2e

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestReplStaleBackup (F2, I9; the stale-backup case of issue 13): the
// synced backup dies; the live moves the activation sequence on and
// acknowledges sends alone; then the live dies too. The backup, started
// alone, must stay passive and say why (its log, and /status: L behind
// C), however long it waits; when the primary (the newer broker)
// returns, it serves and the backup syncs from it. Every send
// acknowledged, the ones only the primary had included, is consumed.
func TestReplStaleBackup(t *testing.T) {
	p := newReplPair(t, replOpts{})
	p.startSynced()
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(200))
	l := p.startLoad("st", int(rate*8), 1+rand.IntN(32), rate)
	time.Sleep(time.Duration(200+rand.IntN(1000)) * time.Millisecond)
	p.backup.kill()
	st := p.primary.waitStatus(t, "active alone with a newer epoch", func(s replStatus) bool {
		return s.state == "active" && s.repl == "none" && s.epoch > e0 && s.coordinated == int64(s.epoch)
	})
	// The live acknowledges alone: these sends exist only on the primary.
	n0 := len(readLines(t, l.pids))
	waitLines(t, l.pids, n0+200)
	p.primary.kill()
	t.Logf("backup killed; the live went on alone (%v) and acknowledged %d+ more, then was killed", st, len(readLines(t, l.pids))-n0)

	skip := p.backup.logSize()
	p.backup.start()
	bst := p.requirePassive(p.backup, "is behind the coordinated", skip)
	if bst.local >= uint64(st.epoch) {
		t.Fatalf("stale backup's L %d, the live went on with %d", bst.local, st.epoch)
	}
	p.primary.start()
	p.waitSynced(p.primary)
	r := l.finish(t)
	t.Logf("%v", r)
	p.checkActivations()
}

// TestReplRestartBoth (F15): both brokers go down under an HA producer and
// a consumer and come back one after the other. Whatever the order, the
// broker with the newest data activates first (the other waits, passive,
// until it returns), the other syncs from it, and nothing acknowledged is
// lost.
//   - kill-both/*: SIGKILL of the live, then at once of the backup: both
//     are in sync; whichever starts first becomes live once the dead
//     live's session expired.
//   - stop-live-first: the live stops cleanly, so the backup takes over
//     (a newer activation), then the backup stops cleanly; the primary,
//     started first, is behind: it waits for the backup.
//   - stop-backup-first: the backup stops cleanly, so the live goes on
//     alone (a newer activation), then stops cleanly; the backup, started
//     first, is behind: it waits for the primary.
func TestReplRestartBoth(t *testing.T) {
	cases := []struct {
		name  string
		down  func(t *testing.T, p *replPair)
		first func(p *replPair) *haMember // started first
		stale bool                        // the first one must wait for the other
	}{
		{"kill-both/primary-first", killBoth, func(p *replPair) *haMember { return p.primary }, false},
		{"kill-both/backup-first", killBoth, func(p *replPair) *haMember { return p.backup }, false},
		{"stop-live-first", func(t *testing.T, p *replPair) {
			e0 := p.primary.rstatus().epoch
			if code := p.primary.stop(); code != 0 {
				t.Fatalf("the live's clean stop: exit %d", code)
			}
			if e := p.backup.waitActive(t); e <= e0 {
				t.Fatalf("the backup took over with epoch %d after %d", e, e0)
			}
			if code := p.backup.stop(); code != 0 {
				t.Fatalf("the backup's clean stop: exit %d", code)
			}
		}, func(p *replPair) *haMember { return p.primary }, true},
		{"stop-backup-first", func(t *testing.T, p *replPair) {
			e0 := p.primary.rstatus().epoch
			if code := p.backup.stop(); code != 0 {
				t.Fatalf("the backup's clean stop: exit %d", code)
			}
			p.primary.waitStatus(t, "active alone with a newer epoch", func(s replStatus) bool {
				return s.state == "active" && s.repl == "none" && s.epoch > e0 && s.coordinated == int64(s.epoch)
			})
			if code := p.primary.stop(); code != 0 {
				t.Fatalf("the live's clean stop: exit %d", code)
			}
		}, func(p *replPair) *haMember { return p.backup }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newReplPair(t, replOpts{})
			p.startSynced()
			rate := float64(200 + rand.IntN(200))
			l := p.startLoad("r", int(rate*6), 1+rand.IntN(32), rate)
			time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
			tc.down(t, p)
			first := tc.first(p)
			second := p.other(first)
			skip := first.logSize()
			first.start()
			if tc.stale {
				pst := p.requirePassive(first, "is behind the coordinated", skip)
				second.start()
				if second == p.backup {
					// The backup activates with the newest data, and the
					// waiting primary syncs from it and fails back at once:
					// the backup may serve too briefly for a poll of its
					// /status to see it. Its log shows the activation.
					p.primary.waitStatus(t, "live again after a failback", func(s replStatus) bool {
						return s.state == "active" && s.coordinated > pst.coordinated+1
					})
					var took bool
					for _, a := range p.activations() {
						took = took || (a.broker == second.name && int64(a.epoch) > pst.coordinated)
					}
					if !took {
						t.Fatalf("the primary is live again but the backup never activated with the newest data (sequence above %d)", pst.coordinated)
					}
				} else {
					second.waitActive(t)
				}
			} else {
				first.waitActive(t)
				second.start()
			}
			// The primary ends live (a returning primary fails back).
			p.waitSynced(p.primary)
			r := l.finish(t)
			t.Logf("%v", r)
			p.checkActivations()
		})
	}
}

// killBoth kills the live (the primary) and at once the backup: the
// backup cannot have taken over (the live's session is still open), so
// both hold the same data and activation sequence.
func killBoth(t *testing.T, p *replPair) {
	p.primary.kill()
	p.backup.kill()
}
