package ha

import (
	"flag"
	"strings"
	"testing"
	"time"
)

var replDepth = flag.Int("repl-depth", 0, "depth bound of the replication explorations (0: the default of each case; -long raises it)")

func rsConfig(mod func(*ReplConfig)) func(Role) ReplConfig {
	return func(r Role) ReplConfig {
		c := DefaultReplConfig(r)
		c.RetryInterval, c.Lease, c.FailbackHoldoff = rsRetry, rsLease, rsHoldoff
		if mod != nil {
			mod(&c)
		}
		return c
	}
}

const (
	// Bounds on the depth first search's path (exploreDFS): the CI
	// budgets' longest is about 310 steps, -long's about 1,000; the
	// search holds one world per step of it.
	rsDepthShort = 2_000
	rsDepthLong  = 4_000
	rsMaxStates  = 8_000_000
)

func rsDepth() int {
	switch {
	case *replDepth > 0:
		return *replDepth
	case *long:
		return rsDepthLong
	}
	return rsDepthShort
}

// TestReplExhaustive enumerates every interleaving of the two brokers of a
// replication pair, the ZooKeeper model, the data model and a fault budget
// (every reachable state within the depth bound, states hashed up to a
// shift of time) and checks after every step: I4 at most one broker can
// acknowledge, and epochs that serve strictly increase; I1 a broker that
// can acknowledge holds every message any live acknowledged; I9 a broker
// whose data is older than an epoch that served never loads the store.
// The CI budgets are explored completely (the depth bound is never
// reached: the test fails if it is).
func TestReplExhaustive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*ReplConfig)
		budget rsBudget
		long   bool
		want   func(st *rsStats) string // "" when the run reached what it must
	}{
		{"kill the live, restart it (failback)", nil, rsBudget{crashes: 1, restarts: 1, msgs: 2, failbacks: 1}, false, wantHandover},
		{"kill both, restart one", nil, rsBudget{crashes: 2, restarts: 1, msgs: 1, failbacks: 1}, false, wantBackupServed},
		{"link cut then the live dies: stale backup", nil, rsBudget{cuts: 1, crashes: 1, msgs: 1}, false, wantStale},
		{"live paused or partitioned past its session", nil, rsBudget{expiries: 1, msgs: 2}, false, wantBackupServed},
		{"ZooKeeper lost by either broker", nil, rsBudget{zkLosses: 1, crashes: 1, msgs: 1}, false, wantBackupServed},
		{"clean stop", nil, rsBudget{stops: 1, restarts: 1, msgs: 1, failbacks: 1}, false, wantBackupServed},
		{"storage error", nil, rsBudget{storageErrs: 1, restarts: 1, msgs: 1, failbacks: 1}, false, wantBackupServed},
		{"no failback", func(c *ReplConfig) { c.AllowFailback = false }, rsBudget{crashes: 1, restarts: 1, msgs: 1, failbacks: 1}, false, wantNoHandover},
		// -long: larger budgets (minutes of CPU, gigabytes of memory).
		{"kill both, restart in either order", nil, rsBudget{crashes: 2, restarts: 2, msgs: 1, failbacks: 1}, true, wantHandover},
		{"link cut, the live dies, both return", nil, rsBudget{cuts: 1, crashes: 1, restarts: 1, msgs: 1, failbacks: 1}, true, wantStale},
		{"session expiry and restart", nil, rsBudget{expiries: 1, restarts: 1, msgs: 1, failbacks: 1}, true, wantBackupServed},
		{"cut, ZooKeeper loss, crash", nil, rsBudget{cuts: 1, zkLosses: 1, crashes: 1, msgs: 1}, true, wantStale},
		{"two failbacks", nil, rsBudget{crashes: 1, restarts: 1, msgs: 1, failbacks: 2}, true, wantHandover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && !*long {
				t.Skip("long exploration; run with -long")
			}
			if raceEnabled && !*long && tc.budget.total() > 2 {
				t.Skip("large exploration skipped under -race (run with -long to force)")
			}
			start := time.Now()
			st, err := exploreRepl(newRSWorld(rsConfig(tc.mod), tc.budget, 0, rsSession), rsDepth(), rsMaxStates)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d states, search depth %d, %v; backup served %v, primary again %v, handover %v, stale %v, halted %v, max epoch %d",
				st.states, st.maxDepth, time.Since(start).Round(time.Millisecond), st.backupServed, st.primaryAgain, st.handover, st.stale, st.halted, st.maxEpoch)
			if st.truncated > 0 {
				t.Fatalf("the depth bound %d cut %d states off: not exhaustive (raise -repl-depth, or bound the loop); a path to one:\n  %s",
					rsDepth(), st.truncated, st.deepTrace)
			}
			if !st.acked {
				t.Error("no explored run acknowledges a message")
			}
			if msg := tc.want(st); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func wantBackupServed(st *rsStats) string {
	if !st.backupServed {
		return "no explored run activates the backup"
	}
	return ""
}

func wantNoHandover(st *rsStats) string {
	if st.handover {
		return "a live configured as the backup handed over with allow-failback=false"
	}
	return wantBackupServed(st)
}

func wantStale(st *rsStats) string {
	if !st.stale {
		return "no explored run has a broker wait as stale"
	}
	return wantBackupServed(st)
}

func wantHandover(st *rsStats) string {
	if !st.handover || !st.primaryAgain {
		return "no explored run fails back to the primary"
	}
	return ""
}

// The exploration must catch broken protocols, or it proves nothing.
func TestReplExhaustiveFindsBugs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		seeded seededBug
		mod    func(*ReplConfig)
		budget rsBudget
		want   []string // any of these invariants
	}{
		{"no bump when the live loses a synced backup", seedNoBumpOnBackupLoss, nil, rsBudget{cuts: 1, crashes: 1, msgs: 1}, []string{"I1"}},
		{"held completions released before the bump", seedReleaseBeforeBump, nil, rsBudget{cuts: 1, crashes: 1, msgs: 1}, []string{"I1"}},
		{"activating without re-reading C under the lock", seedNoRecheckAfterLock, nil, rsBudget{cuts: 1, crashes: 1, msgs: 1}, []string{"I1", "I9"}},
		{"activating without re-reading C, nothing acknowledged", seedNoRecheckAfterLock, nil, rsBudget{cuts: 1, crashes: 1}, []string{"I9"}},
		{"a late report of an earlier replication connection obeyed", seedNoConnFilter, nil, rsBudget{zkLosses: 1, crashes: 1, msgs: 1}, []string{"I1", "protocol"}},
		// Two brokers overlap: either both can ack (I4), or the new live,
		// which took over while the old one still acknowledged, loads
		// data older than the epoch that served (I9); which the search
		// meets first depends on its order.
		{"a lease longer than the session", 0, func(c *ReplConfig) { c.Lease = rsSession + 1 }, rsBudget{expiries: 1, cuts: 1}, []string{"I4", "I9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := exploreRepl(newRSWorld(rsConfig(tc.mod), tc.budget, tc.seeded, rsSession), rsDepthShort, rsMaxStates)
			found := false
			for _, w := range tc.want {
				found = found || err != nil && strings.Contains(err.Error(), "invariant violated: "+w+":")
			}
			if !found {
				t.Fatalf("got %v, want a violation of %s", err, strings.Join(tc.want, " or "))
			}
			t.Logf("found as expected: %v", err)
		})
	}
}
