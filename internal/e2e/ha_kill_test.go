package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// haLoad runs one iteration's load against the pair: a `tandem producer`
// of count durable messages (window and rate random) and a concurrent
// `tandem consumer`, calls fault while they run, then waits for the
// producer (exit 0: every message acknowledged), the consumer, and a final
// drain, and checks the ID files: nothing lost, unexpected or duplicated.
func (p *haPair) haLoad(t *testing.T, prefix string, count int, fault func()) idReport {
	t.Helper()
	queue := "ha-" + prefix
	window := 1 + rand.IntN(32)
	rate := float64(300 + rand.IntN(500))
	prod, pids := p.producer(queue, prefix, count, window, rate)
	cons, cids := p.consumer(queue, prefix+"-live", 2*time.Second)
	fault()
	if code := prod.wait(t, "producer", 90*time.Second); code != 0 {
		t.Fatalf("producer exit %d, want 0:\n%s", code, prod.errText())
	}
	if code := cons.wait(t, "consumer", 90*time.Second); code != 0 {
		t.Logf("concurrent consumer exit %d (the drain takes the rest):\n%s", code, cons.errText())
	}
	drain, dids := p.consumer(queue, prefix+"-drain", time.Second)
	if code := drain.wait(t, "drain", 90*time.Second); code != 0 {
		t.Fatalf("drain exit %d, want 0:\n%s", code, drain.errText())
	}
	r := checkIDs(t, pids, prefix, count, cids, dids)
	if !r.ok() {
		t.Fatalf("window %d, rate %.0f: %v", window, rate, r)
	}
	if r.acked != count {
		t.Fatalf("producer exited 0 with %d of %d acknowledged IDs in its file", r.acked, count)
	}
	return r
}

// TestHAKillLiveLoop (F1): SIGKILL the live broker of a shared-store pair
// at a random moment of a producer and consumer run with an HA URL, then
// restart it: it becomes the backup, or takes over again when the backup
// allows failback. 20 iterations: half with allow-failback (the primary
// returns and the backup hands back, a second failover under load), half
// without (the roles alternate). After each: lost = unexpected =
// duplicated = 0, and at most one activation per epoch in the logs.
func TestHAKillLiveLoop(t *testing.T) {
	n := 10
	if testing.Short() {
		n = 1
	}
	for _, fb := range []bool{true, false} {
		t.Run(fmt.Sprintf("failback=%v", fb), func(t *testing.T) {
			jt := journalTypes[rand.IntN(len(journalTypes))]
			t.Logf("journal-type %s", jt)
			p := newHAPair(t, haOpts{noFailback: !fb, journalType: jt})
			p.primary.start()
			p.primary.requireFileStore()
			p.backup.start()
			for it := 0; it < n; it++ {
				live := p.waitActive()
				_, e0 := live.state()
				killAt := time.Duration(rand.IntN(700)) * time.Millisecond
				restartAfter := time.Duration(rand.IntN(1500)) * time.Millisecond
				r := p.haLoad(t, fmt.Sprintf("k%d", it), 200+rand.IntN(200), func() {
					time.Sleep(killAt)
					live.kill()
					time.Sleep(restartAfter)
					live.start()
				})
				now := p.waitActive()
				_, e1 := now.state()
				t.Logf("iteration %d: killed %s (epoch %d) after %v, restarted %v later; now %s is active (epoch %d); %v",
					it, live.name, e0, killAt, restartAfter, now.name, e1, r)
				if e1 <= e0 {
					t.Fatalf("epoch did not increase across the failover: %d -> %d", e0, e1)
				}
			}
			acts := p.checkEpochs()
			t.Logf("%d activations, last epoch %d", len(acts), acts[len(acts)-1].epoch)
		})
	}
}
