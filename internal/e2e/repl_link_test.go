package e2e

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestReplLinkCut (F13): the replication connection between the two
// running brokers fails while an HA producer and a consumer run (a
// userspace TCP proxy sits between the backup and the primary's announced
// address; clients that learn the topology go through it too).
//   - cut: the proxy closes the connection and refuses new ones;
//   - block: the proxy forwards nothing for longer than the connection
//     TTL (both sides see silence).
//
// The live drops the replica, moves the activation sequence on and keeps
// serving unreplicated (/status replication state none, its log); the
// backup never activates (the live holds the ZooKeeper lock). After Heal
// the backup syncs again. Nothing acknowledged is lost.
func TestReplLinkCut(t *testing.T) {
	for _, mode := range []string{"cut", "block"} {
		t.Run(mode, func(t *testing.T) {
			p := newReplPair(t, replOpts{proxy: true})
			p.startSynced()
			e0 := p.primary.rstatus().epoch
			rate := float64(200 + rand.IntN(300))
			l := p.startLoad("c", int(rate*8), 1+rand.IntN(32), rate)
			at := time.Duration(300+rand.IntN(1500)) * time.Millisecond
			time.Sleep(at)
			skip := p.primary.logSize()
			cut := time.Now()
			if mode == "cut" {
				p.proxy.Cut()
			} else {
				p.proxy.Block()
			}
			line := p.primary.waitLog(t, "replica lost: answers held until the activation sequence moves on", skip)
			dropped := time.Since(cut)
			st := p.primary.waitStatus(t, "active, unreplicated, with a newer epoch", func(s replStatus) bool {
				return s.state == "active" && s.repl == "none" && s.epoch > e0 && s.coordinated == int64(s.epoch)
			})
			// It acknowledges alone while the link is down.
			n0 := len(readLines(t, l.pids))
			waitLines(t, l.pids, min(n0+100, l.count))
			if bs := p.backup.rstatus(); bs.state == "active" || bs.repl == "synced" {
				t.Fatalf("the backup, cut off from the live: %v", bs)
			}
			heal := time.Duration(rand.IntN(2000)) * time.Millisecond
			time.Sleep(heal)
			p.proxy.Heal()
			healed := time.Now()
			p.waitSynced(p.primary)
			t.Logf("%s %v into the run; the live dropped the replica %v later (%v; %s); healed %v after that; re-synced %v after the heal",
				mode, at, dropped.Round(time.Millisecond), st, line, heal, time.Since(healed).Round(time.Millisecond))
			r := l.finish(t)
			t.Logf("%v", r)
			if acts := p.checkActivations(); len(acts) != 1 {
				t.Fatalf("%d activations, want the primary's only", len(acts))
			}
		})
	}
}
