package e2e

import (
	"math/rand/v2"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// TestReplZombiePause (F7): the live is paused with SIGSTOP for longer
// than session-ms under an HA producer and a consumer, and under a probe
// producer connected to it alone (no failover, a connection that outlives
// the pause: its sends wait in the paused broker's socket). The backup
// takes over once the live's session expired. Then the old live is
// resumed with SIGCONT: it must acknowledge nothing more (no probe send
// is acknowledged after the backup was seen active) and halt (exit 3).
// Nothing acknowledged is lost; the primary, restarted, fails back.
func TestReplZombiePause(t *testing.T) {
	p := newReplPair(t, replOpts{})
	// HA clients leave the paused live after 2 s of silence.
	p.urlOptions = "&clientFailureCheckPeriod=2000&connectionTTL=4000"
	p.startSynced()
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(300))
	l := p.startLoad("z", int(rate*10), 1+rand.IntN(32), rate)
	probe := startAckProbe(t, p.primary.URL(), "repl-zprobe", "zp", 1+rand.IntN(16))
	at := time.Duration(300+rand.IntN(1500)) * time.Millisecond
	time.Sleep(at)
	signal := func(sig syscall.Signal) {
		t.Helper()
		if err := p.primary.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	signal(syscall.SIGSTOP)
	stopped := time.Now()
	e1 := p.backup.waitActive(t)
	activeSeen := time.Now()
	if e1 <= e0 {
		t.Fatalf("the backup activated epoch %d after the paused live's %d", e1, e0)
	}
	n0, last0 := probe.acks()
	resumeAfter := time.Duration(rand.IntN(2000)) * time.Millisecond
	time.Sleep(resumeAfter)
	skip := p.primary.logSize()
	signal(syscall.SIGCONT)
	if code := p.primary.waitExit(t); code != 3 {
		t.Fatalf("the resumed old live exit %d, want 3 (halted)", code)
	}
	p.primary.requireHalt(t, "")
	probe.stop()
	n1, last1 := probe.acks()
	t.Logf("SIGSTOP %v into the run; backup active (epoch %d) %v later; SIGCONT %v after that; probe: %d acks before the takeover (last %v after the SIGSTOP), %d in all (last %v after it); probe ended with %v",
		at, e1, activeSeen.Sub(stopped).Round(time.Millisecond), resumeAfter, n0, last0.Sub(stopped).Round(time.Millisecond),
		n1, last1.Sub(stopped).Round(time.Millisecond), probe.err)
	if late := probe.ackedAfter(activeSeen); len(late) > 0 {
		t.Fatalf("the old live acknowledged %d sends after the backup activated: %v (its log after SIGCONT: %s)",
			len(late), late[:min(len(late), 10)], p.primary.logLine("", skip))
	}
	r := l.finish(t)
	t.Logf("%v", r)
	pr := probe.drainCheck(t, p.backup.URL())
	t.Logf("probe: %v", pr)
	p.primary.start()
	p.waitSynced(p.primary)
	p.checkActivations()
}

// TestReplZKMajorityLost (F6, F14): a pair on a private 3-node ensemble
// (tick 500 ms, session-ms 4000) under an HA producer, a consumer and a
// probe producer on the live. Two of the three ZooKeeper nodes are
// killed: the live can no longer verify its lock, so it must halt (exit
// 3) on its own while the majority is still gone, before ZooKeeper could
// expire its session and let the backup in; the backup (it lost the
// majority too) stops applying, so the live loses it and cannot move the
// sequence on, or its lease runs out first. When the nodes return, the
// backup, in sync, activates. Every acknowledged send is consumed; the
// primary, restarted, fails back. Then the same with the live alone
// (the backup killed, the live went on unreplicated): only its lease can
// stop it, and it must halt; the backup, behind, waits for it.
func TestReplZKMajorityLost(t *testing.T) {
	ens := testenv.StartEnsemble(t, 3)
	p := newReplPair(t, replOpts{zk: ens.Connect()})
	p.startSynced()
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(300))
	l := p.startLoad("q", int(rate*10), 1+rand.IntN(32), rate)
	probe := startAckProbe(t, p.primary.URL(), "repl-qprobe", "qp", 1+rand.IntN(16))
	at := time.Duration(300+rand.IntN(1500)) * time.Millisecond
	time.Sleep(at)
	keep := rand.IntN(3)
	for i := range 3 {
		if i != keep {
			ens.Kill(i)
		}
	}
	killed := time.Now()
	if code := p.primary.waitExit(t); code != 3 {
		t.Fatalf("the live exit %d after losing the ZooKeeper majority, want 3 (halted)", code)
	}
	exited := time.Now()
	p.primary.requireHalt(t, "")
	probe.stop()
	n, last := probe.acks()
	if bs := p.backup.rstatus(); bs.state == "active" {
		t.Fatalf("the backup activated without a ZooKeeper majority: %v", bs)
	}
	t.Logf("killed 2 of 3 ZooKeeper nodes %v into the run; the live halted %v later; its probe had %d acks, the last %v after the kill (%v before the exit)",
		at, exited.Sub(killed).Round(time.Millisecond), n, last.Sub(killed).Round(time.Millisecond), exited.Sub(last).Round(time.Millisecond))
	for i := range 3 {
		if i != keep {
			ens.Start(i)
		}
	}
	ens.WaitQuorum(replLiveness)
	e1 := p.backup.waitActive(t)
	t.Logf("the ensemble is back %v after the kill; the backup activated epoch %d", time.Since(killed).Round(time.Millisecond), e1)
	if e1 <= e0 {
		t.Fatalf("the backup activated epoch %d after the live's %d", e1, e0)
	}
	r := l.finish(t)
	t.Logf("%v", r)
	pr := probe.drainCheck(t, p.backup.URL())
	t.Logf("probe: %v", pr)
	p.primary.start()
	p.waitSynced(p.primary)

	// Then the live alone: the backup is killed (the live goes on
	// unreplicated), and the majority is lost again. Nothing but the
	// lease can stop the live now: it must halt on its own.
	e2 := p.primary.rstatus().epoch
	p.backup.kill()
	p.primary.waitStatus(t, "active alone with a newer epoch", func(s replStatus) bool {
		return s.state == "active" && s.repl == "none" && s.epoch > e2 && s.coordinated == int64(s.epoch)
	})
	probe2 := startAckProbe(t, p.primary.URL(), "repl-qprobe2", "qa", 1+rand.IntN(16))
	waitAcks(t, probe2, 50)
	skip := p.primary.logSize()
	keep = rand.IntN(3)
	for i := range 3 {
		if i != keep {
			ens.Kill(i)
		}
	}
	killed = time.Now()
	if code := p.primary.waitExit(t); code != 3 {
		t.Fatalf("the live alone exit %d after losing the ZooKeeper majority, want 3 (halted)", code)
	}
	exited = time.Now()
	probe2.stop()
	n, last = probe2.acks()
	t.Logf("alone: the live halted %v after the kill; its probe had %d acks, the last %v after the kill (the lease: %s); %s",
		exited.Sub(killed).Round(time.Millisecond), n, last.Sub(killed).Round(time.Millisecond),
		leaseRe.FindString(p.primary.logLine("lease_ms=", 0)), p.primary.waitLog(t, "msg=halting", skip))
	for i := range 3 {
		if i != keep {
			ens.Start(i)
		}
	}
	ens.WaitQuorum(replLiveness)
	// The primary has the newest data: the backup, started first, waits.
	skip = p.backup.logSize()
	p.backup.start()
	p.requirePassive(p.backup, "is behind the coordinated", skip)
	p.primary.start()
	p.waitSynced(p.primary)
	pr2 := probe2.drainCheck(t, p.primary.URL())
	t.Logf("probe alone: %v", pr2)
	p.checkActivations()
}

var leaseRe = regexp.MustCompile(`lease_ms=\d+`)

// waitAcks waits (replLiveness) until the probe has n acknowledgements.
func waitAcks(t *testing.T, a *ackProbe, n int) {
	t.Helper()
	deadline := time.Now().Add(replLiveness)
	for {
		if got, _ := a.acks(); got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack probe: fewer than %d acknowledgements after %v (%v)", n, replLiveness, a.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
