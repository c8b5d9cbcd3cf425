package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestReplKillLiveLoop (F1, F15): a replicated pair under an HA producer
// and a consumer; the live (the primary) is killed with SIGKILL at a
// random moment: the synced backup takes over with a newer activation
// sequence. The primary is restarted a random time later, still under
// load: it finds itself behind, replicates from the backup, asks for the
// failback and takes over again; the backup becomes its synced replica.
// -repl.loops iterations (2 by default). After each: nothing lost,
// unexpected or duplicated, every message acknowledged; at the end each
// activation sequence was activated by one broker, in order.
func TestReplKillLiveLoop(t *testing.T) {
	jt := journalTypes[rand.IntN(len(journalTypes))]
	t.Logf("journal-type %s, %d iterations", jt, *replLoops)
	p := newReplPair(t, replOpts{journalType: jt})
	p.startSynced()
	for it := range *replLoops {
		start := time.Now()
		e0 := p.primary.waitActive(t)
		rate := float64(200 + rand.IntN(400))
		count := int(rate * 10)
		killAt := time.Duration(300+rand.IntN(2000)) * time.Millisecond
		restartAfter := time.Duration(rand.IntN(2000)) * time.Millisecond
		l := p.startLoad(fmt.Sprintf("k%d", it), count, 1+rand.IntN(32), rate)
		time.Sleep(killAt)
		p.primary.kill()
		killed := time.Now()
		e1 := p.backup.waitActive(t)
		failover := time.Since(killed)
		if e1 <= e0 {
			t.Fatalf("iteration %d: the backup activated epoch %d after the primary's %d", it, e1, e0)
		}
		time.Sleep(restartAfter)
		p.primary.start()
		e2 := p.primary.waitActive(t)
		underLoad := l.prod.running()
		p.waitSynced(p.primary)
		r := l.finish(t)
		t.Logf("iteration %d (%v): killed the primary (epoch %d) %v into %d msgs at %.0f/s, window %d; backup active (epoch %d) %v later; primary restarted %v after that, failed back (epoch %d; producer still running: %v); %v",
			it, time.Since(start).Round(time.Millisecond), e0, killAt, count, rate, l.window, e1, failover.Round(time.Millisecond), restartAfter, e2, underLoad, r)
		if e2 <= e1 {
			t.Fatalf("iteration %d: the primary failed back with epoch %d after the backup's %d", it, e2, e1)
		}
	}
	p.checkActivations()
}
