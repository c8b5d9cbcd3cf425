package ha

import (
	"flag"
	"strings"
	"testing"
	"time"
)

// quorumFull explores the quorum cases with their full fault budgets
// (minutes of CPU each); by default each case runs a smaller budget that
// keeps the package's tests within CI's time.
var quorumFull = flag.Bool("quorum-full", false, "explore the quorum vote with the full fault budgets (minutes of CPU; -long implies it)")

const (
	// Bounds on the depth first search's path (exploreDFS); it holds one
	// world per step of it.
	qsDepthShort = 2_000
	qsDepthLong  = 4_000
	qsMaxStates  = 100_000_000
)

func qsDepth() int {
	switch {
	case *replDepth > 0:
		return *replDepth
	case *long:
		return qsDepthLong
	}
	return qsDepthShort
}

// TestQuorumExhaustive enumerates every interleaving of the two brokers of
// a pair coordinated by the quorum vote, the cluster's other voters, every
// request and answer in flight (delivered in any order or lost) and a
// fault budget, and checks after every step: I4 at most one broker can
// acknowledge, and epochs that serve strictly increase; I1 a broker that
// can acknowledge holds every message any live acknowledged; I9 a broker
// whose data is older than an epoch that served never loads the store;
// Q1 a claim is acted on only when a majority of distinct voters granted
// it. The CI budgets are explored completely (the test fails if the depth
// bound cuts states off).
func TestQuorumExhaustive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		voters int // plain voters besides the pair
		alias  bool
		mod    func(*QuorumConfig)
		budget qsBudget // explored with -quorum-full (and -long)
		ci     qsBudget // explored by default (zero: only with -quorum-full)
		want   func(st *qsStats) string
	}{
		{"kill the live (backup vote)", 1, false, nil, qsBudget{crashes: 1, msgs: 2}, qsBudget{crashes: 1, msgs: 2}, wantQBackupServed},
		{"kill the live, restart it (failback)", 1, false, nil, qsBudget{crashes: 1, restarts: 1, msgs: 1, failbacks: 1}, qsBudget{}, wantQHandover},
		{"replication link cut: live vote", 1, false, nil, qsBudget{cuts: 1, crashes: 1, msgs: 1}, qsBudget{cuts: 1, crashes: 1}, wantQStale},
		{"live isolated from every broker", 1, false, nil, qsBudget{isolations: 1, msgs: 2}, qsBudget{}, wantQBackupServed},
		{"a voter crashes and restarts", 1, false, nil, qsBudget{crashes: 1, voterCrashes: 1, voterRestarts: 1, msgs: 1}, qsBudget{crashes: 1, voterCrashes: 1, voterRestarts: 1}, wantQBackupServed},
		{"lost messages", 1, false, nil, qsBudget{losses: 2, crashes: 1, msgs: 1}, qsBudget{losses: 2, crashes: 1, msgs: 1}, wantQBackupServed},
		{"a voter known under two addresses", 1, true, nil, qsBudget{isolations: 1, cuts: 1, msgs: 1}, qsBudget{}, wantQBackupServed},

		{"no failback", 1, false, func(c *QuorumConfig) { c.AllowFailback = false }, qsBudget{crashes: 1, restarts: 1, msgs: 1, failbacks: 1}, qsBudget{}, wantQNoHandover},
		// Larger budgets.
		{"kill both, restart in either order", 1, false, nil, qsBudget{crashes: 2, restarts: 2, msgs: 1, failbacks: 1}, qsBudget{}, wantQBackupServed},
		{"cut, crash, restart: stale backup", 1, false, nil, qsBudget{cuts: 1, crashes: 2, restarts: 1, msgs: 1}, qsBudget{cuts: 1, crashes: 2}, wantQStale},
		{"four voters, the live isolated", 2, false, nil, qsBudget{isolations: 1, msgs: 1}, qsBudget{}, wantQBackupServed},
		{"isolation and a voter restart", 2, false, nil, qsBudget{isolations: 1, voterCrashes: 1, voterRestarts: 1, msgs: 1}, qsBudget{}, wantQBackupServed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := tc.ci
			if *quorumFull || *long {
				budget = tc.budget
			}
			if budget == (qsBudget{}) {
				t.Skip("long exploration; run with -quorum-full or -long")
			}
			if raceEnabled && !*quorumFull && !*long && budget.total() > 2 {
				t.Skip("large exploration skipped under -race (run with -quorum-full to force)")
			}
			start := time.Now()
			st, err := exploreQuorum(newQSWorld(qsConfig(tc.mod), tc.voters, tc.alias, budget, 0, 0), qsDepth(), qsMaxStates)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d states, search depth %d, %v; backup served %v, primary again %v, handover %v, stale %v, halted %v, max epoch %d",
				st.states, st.maxDepth, time.Since(start).Round(time.Millisecond), st.backupServed, st.primaryAgain, st.handover, st.stale, st.halted, st.maxEpoch)
			if st.truncated > 0 {
				t.Fatalf("the depth bound %d cut %d states off: not exhaustive; a path to one:\n  %s", qsDepth(), st.truncated, st.deepTrace)
			}
			if !st.acked && budget.msgs > 0 {
				t.Error("no explored run acknowledges a message")
			}
			if msg := tc.want(st); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func wantQBackupServed(st *qsStats) string {
	if !st.backupServed {
		return "no explored run activates the backup"
	}
	return ""
}

func wantQStale(st *qsStats) string {
	if !st.stale {
		return "no explored run has a broker wait as stale"
	}
	return wantQBackupServed(st)
}

func wantQHandover(st *qsStats) string {
	if !st.handover || !st.primaryAgain {
		return "no explored run fails back to the primary"
	}
	return ""
}

func wantQNoHandover(st *qsStats) string {
	if st.handover {
		return "a live configured as the backup handed over with allow-failback=false"
	}
	return wantQBackupServed(st)
}

// The exploration must catch broken votes, or it proves nothing. ci: found
// within CI's time (each in a few seconds); the others run with
// -quorum-full.
func TestQuorumExhaustiveFindsBugs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		seeded  seededBug
		vseeded seededVoterBug
		voters  int
		alias   bool
		mod     func(*QuorumConfig)
		budget  qsBudget
		ci      bool
		want    []string
	}{
		{"activating on a minority", seedMinority, 0, 2, false, nil, qsBudget{isolations: 1, msgs: 1}, true, []string{"Q1", "I4"}},
		{"counting a vote twice", seedDoubleCount, 0, 1, true, nil, qsBudget{isolations: 1, msgs: 1}, true, []string{"Q1", "I4"}},
		// The data-version check: the node checks what the voters show
		// and the voters check the request; both must be broken for a
		// stale broker to serve.
		{"accepting a stale data version", seedQIgnoreNewest, seedVoterStaleAccepted, 1, false, nil, qsBudget{cuts: 1, crashes: 1, msgs: 1}, true, []string{"I1", "I9"}},
		// The live releases what it held once its backup went, before the
		// voters hold L+1, and dies: the backup wins with L and lacks
		// them. (With an isolation instead of the crash the same bug
		// hides in a space of more than 4,000,000 states.)
		{"held answers released before the lease under L+1", seedQReleaseBeforeLease, 0, 1, false, nil, qsBudget{cuts: 1, crashes: 1, msgs: 1}, true, []string{"I1", "I4"}},
		{"the live trusts its lease longer than voters keep it", seedTrustTooLong, 0, 1, false, nil, qsBudget{isolations: 1, msgs: 1}, true, []string{"I4"}},
		{"a restarted voter grants at once", 0, seedVoterNoGrace, 1, false, nil, qsBudget{isolations: 1, voterCrashes: 1, voterRestarts: 1}, false, []string{"I4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ci && !*quorumFull && !*long {
				t.Skip("long exploration; run with -quorum-full")
			}
			_, err := exploreQuorum(newQSWorld(qsConfig(tc.mod), tc.voters, tc.alias, tc.budget, tc.seeded, tc.vseeded), qsDepthShort, qsMaxStates)
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
