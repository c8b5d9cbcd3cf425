package adversary

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// Bounds the queue flood must keep (issue 22 item 3: 70 000 non-durable
// auto-created queues took 1.2 GB and 71 000 goroutines and stayed after
// their connections closed; 16 000 durable ones came back after a restart).
const (
	// qMaxGoroutines: the broker's goroutines while every queue it allows
	// exists with a consumer: its connections' and its own, none per queue.
	qMaxGoroutines = 500
	// qMaxRSS: the broker's resident set at any sample, with max-queues
	// (20 000 in the long run) queues and consumers.
	qMaxRSS = 256 << 20
)

// TestQueueFlood creates queues as fast as the protocol carries them,
// against a broker with <max-queues>, while a well-behaved client sends,
// receives and acks on its own queue: non-durable auto-created queues up
// to the limit (held, then their connections close), durable ones
// (connections close), durable ones left by a broker killed with SIGKILL.
// The limit holds (CodeLimit beyond it), every queue goes once its
// consumers leave (after the restart, at the first scan), goroutines and
// RSS stay under the bounds above, and the well-behaved client keeps
// completing round trips, also while 50 clients poll /status. -short
// floods with fewer queues.
func TestQueueFlood(t *testing.T) {
	maxQueues, conns := 20000, 8
	if testing.Short() {
		maxQueues, conns = 3000, 4
	}
	b := qStartBroker(t, fmt.Sprintf("<max-queues>%d</max-queues>\n<address-queue-scan-period>200</address-queue-scan-period>", maxQueues))
	start := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	probe := qStartProbe(t, b.url())
	probe.waitTrips(5, time.Minute, "start")

	// Non-durable queues, more than the limit allows, from conns connections.
	per := (maxQueues + maxQueues/10) / conns
	attackers := make([]*qAttacker, conns)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[wire.Code]int{}
	for i := range attackers {
		a, err := qDialAttacker(b.addr)
		if err != nil {
			t.Fatal(err)
		}
		attackers[i] = a
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := a.create(fmt.Sprintf("nd%d", i), per, false)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("attacker %d: %v", i, err)
			}
			for k, v := range c {
				codes[k] += v
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	phase("non-durable flood done")
	t.Logf("non-durable flood: %d attempts, answers %v, RSS %d MiB", conns*per, codes, b.rss()>>20)
	if codes[wire.CodeOK]+1 > maxQueues || codes[wire.CodeLimit] == 0 || codes[wire.CodeOK]+codes[wire.CodeLimit] != conns*per {
		t.Fatalf("answers %v to %d attempts with max-queues %d (one taken by the probe): want OK up to the limit, CodeLimit beyond", codes, conns*per, maxQueues)
	}
	if n := b.queuesTotal(); n > maxQueues {
		t.Fatalf("%d queues exist, max-queues is %d", n, maxQueues)
	}
	if g := b.goroutines(); g > qMaxGoroutines {
		t.Fatalf("%d goroutines with %d idle queues, want at most %d (no goroutine per queue)", g, codes[wire.CodeOK], qMaxGoroutines)
	} else {
		t.Logf("%d goroutines with %d idle queues", g, codes[wire.CodeOK])
	}

	// 50 clients poll /status while the queues exist.
	stopPolls := make(chan struct{})
	var polls sync.WaitGroup
	var polled, pollErrs sync.Map
	for i := range 50 {
		polls.Add(1)
		go func() {
			defer polls.Done()
			n := 0
			for {
				select {
				case <-stopPolls:
					polled.Store(i, n)
					return
				default:
				}
				if _, code, err := b.get("/status"); err != nil || code != http.StatusOK {
					pollErrs.Store(i, fmt.Sprintf("HTTP %d %v", code, err))
				}
				n++
			}
		}()
	}
	probe.waitTrips(20, 2*time.Minute, "50 clients polling /status with the queues held")
	close(stopPolls)
	polls.Wait()
	total := 0
	polled.Range(func(_, v any) bool { total += v.(int); return true })
	pollErrs.Range(func(k, v any) bool { t.Errorf("/status poller %v: %v", k, v); return true })
	t.Logf("/status answered %d times during 20 round trips, RSS %d MiB", total, b.rss()>>20)

	phase("polls done")
	// The connections close: their non-durable queues go with their consumers.
	for _, a := range attackers {
		a.close()
	}
	qWaitQueues(t, b, 1, "non-durable auto-created queues after their connections closed")
	probe.waitTrips(5, time.Minute, "after the non-durable flood")

	phase("non-durable queues gone")
	// Durable queues: the connections close, the (empty) queues go.
	durable := min(5000, maxQueues/2)
	a, err := qDialAttacker(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.create("d", durable, true); err != nil || c[wire.CodeOK] != durable {
		t.Fatalf("durable flood: %v %v", c, err)
	}
	b.rss()
	phase("durable queues created")
	a.close()
	qWaitQueues(t, b, 1, "durable auto-created queues after their connection closed")
	phase("durable queues gone")
	probe.waitTrips(5, time.Minute, "after the durable flood")
	probe.end()

	// Durable queues left by a broker killed while their consumers held
	// them: they come back at the restart and go at the first scan.
	a, err = qDialAttacker(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.create("k", durable, true); err != nil || c[wire.CodeOK] != durable {
		t.Fatalf("durable flood before the kill: %v %v", c, err)
	}
	phase("durable queues created again")
	b.kill()
	a.close()
	b.start()
	phase("restarted")
	probe = qStartProbe(t, b.url())
	qWaitQueues(t, b, 1, "durable auto-created queues of a killed broker after its restart")
	phase("durable queues gone after the restart")
	probe.waitTrips(5, time.Minute, "after the restart")
	probe.end()
	if g := b.goroutines(); g > qMaxGoroutines {
		t.Fatalf("%d goroutines at the end, want at most %d", g, qMaxGoroutines)
	}
	b.rss()
	if peak := b.peakRSS.Load(); peak > qMaxRSS {
		t.Fatalf("broker RSS peaked at %d MiB, over the stated %d MiB", peak>>20, qMaxRSS>>20)
	} else {
		t.Logf("broker RSS peaked at %d MiB (bound %d MiB)", peak>>20, qMaxRSS>>20)
	}
}
