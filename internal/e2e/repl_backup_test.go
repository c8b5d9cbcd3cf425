package e2e

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// preload fills the primary's journal with count durable messages of size
// bytes on queue, never consumed: the journal stays big and an initial
// sync has something to copy.
func (p *replPair) preload(queue string, count, size int) {
	p.t.Helper()
	pr := p.startClient("preload", "producer", "--url", p.primary.URL(), "--destination", "queue://"+queue,
		"--count", strconv.Itoa(count), "--window", "64", "--size", strconv.Itoa(size), "--id-prefix", "pre")
	if code := pr.wait(p.t, "preload", 5*time.Minute); code != 0 {
		p.t.Fatalf("preload exit %d:\n%s", code, pr.errText())
	}
}

// TestReplKillBackupInitialSync (F2): the backup is killed with SIGKILL
// as soon as it logs that its initial sync started, while the sync copies
// a journal of about 50 MB (it takes some 200 ms here), under producer and
// consumer load on the live. The live keeps serving, unreplicated, and
// says so (/status replication state none; its log). Then the live is
// killed too and only the half-synced backup is restarted: it must stay
// passive (L = 0: no valid data) and say why, however long it waits; when
// the primary returns, it serves and the backup syncs from it. Nothing
// acknowledged is lost.
func TestReplKillBackupInitialSync(t *testing.T) {
	p := newReplPair(t, replOpts{fileSize: "4M"})
	p.primary.start()
	p.primary.requireFileStore()
	e0 := p.primary.waitActive(t)
	p.preload("repl-preload", 3000, 16<<10)
	l := p.startLoad("s", 3000, 1+rand.IntN(16), float64(200+rand.IntN(200)))
	skip := p.backup.logSize()
	p.backup.start()
	line := p.backup.waitLogEvery(t, "initial sync started", skip, time.Millisecond)
	p.backup.kill()
	t.Logf("killed the backup at %s", line)
	if p.backup.logLine("sync complete", skip) != "" {
		t.Fatal("the backup completed its sync before the kill: the preloaded journal is too small for this machine")
	}
	p.primary.waitLog(t, "replica dropped before its sync completed; running unreplicated", 0)
	st := p.primary.waitStatus(t, "active and unreplicated", func(s replStatus) bool { return s.state == "active" && s.repl == "none" })
	t.Logf("the live: %v", st)
	if st.epoch != e0 {
		t.Fatalf("the live moved from epoch %d to %d on losing a replica that never synced", e0, st.epoch)
	}
	// The live acknowledges alone.
	n0 := len(readLines(t, l.pids))
	waitLines(t, l.pids, n0+100)

	p.primary.kill()
	skip = p.backup.logSize()
	p.backup.start()
	bst := p.requirePassive(p.backup, "no valid local data", skip)
	if bst.local != 0 {
		t.Fatalf("the half-synced backup has L = %d, want 0", bst.local)
	}
	skip = p.primary.logSize()
	p.primary.start()
	p.waitSynced(p.primary)
	t.Logf("the full sync: %s", p.primary.logLine("replica synced", skip))
	r := l.finish(t)
	t.Logf("%v", r)
	p.checkActivations()
}

// waitLines waits (replLiveness) until the file has at least n lines.
func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(replLiveness)
	for len(readLines(t, path)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %d lines after %v", path, n, replLiveness)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplKillBackupStreaming (F2): the synced backup is killed with
// SIGKILL at a random moment of a producer and consumer run. The live
// moves the activation sequence on (the backup's copy is now stale),
// keeps serving unreplicated and says so (/status replication state none;
// its log); every send is acknowledged. The backup, restarted, finds
// itself behind, syncs again (setting its old copy aside) and becomes a
// synced replica. Nothing lost.
func TestReplKillBackupStreaming(t *testing.T) {
	p := newReplPair(t, replOpts{})
	p.startSynced()
	e0 := p.primary.rstatus().epoch
	rate := float64(200 + rand.IntN(300))
	l := p.startLoad("b", int(rate*6), 1+rand.IntN(32), rate)
	at := time.Duration(300+rand.IntN(2000)) * time.Millisecond
	time.Sleep(at)
	p.backup.kill()
	line := p.primary.waitLog(t, "replica lost: answers held until the activation sequence moves on", 0)
	st := p.primary.waitStatus(t, "active, unreplicated, with a newer epoch", func(s replStatus) bool {
		return s.state == "active" && s.repl == "none" && s.epoch > e0 && s.coordinated == int64(s.epoch)
	})
	t.Logf("killed the backup %v into the run; the live: %v; %s", at, st, line)
	skip := p.backup.logSize()
	p.backup.start()
	p.waitSynced(p.primary)
	t.Logf("the backup re-synced: %s", p.backup.waitLog(t, "previous journal files were moved aside", skip))
	r := l.finish(t)
	t.Logf("%v", r)
	p.checkActivations()
}
