package ha

import (
	"flag"
	"strings"
	"testing"
	"time"
)

var long = flag.Bool("long", false, "also run the long explorations (three brokers; more faults), minutes of CPU")

func simConfig(coord Coordinator, mod func(*Config)) func(Role) Config {
	return func(r Role) Config {
		c := DefaultConfig(r, coord)
		c.RetryInterval, c.Lease = simRetry, simLease
		if coord == FileLock {
			c.FenceWait = simLease
		} else {
			c.RenewInterval = simRenew
		}
		if mod != nil {
			mod(&c)
		}
		return c
	}
}

// TestExhaustive enumerates every interleaving of two brokers, the
// coordinator and a fault budget (all reachable states, up to a shift of
// time) and checks in each state: at most one broker can acknowledge, only
// under the newest activated epoch, only while it holds the lock or a valid
// lease (or lost the file lock silently and no newer epoch is active), a
// new live loads the store only after the old one is fenced, and once a
// newer epoch was loaded no older broker writes to the store (not even
// when it closes it on a stop or failback).
func TestExhaustive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		coord  Coordinator
		mod    func(*Config)
		budget budget
		long   bool
		backup int // backups besides the primary (default 1)
	}{
		{"file crash+restart", FileLock, nil, budget{crashes: 2, restarts: 1}, false, 1},
		{"file silent loss", FileLock, nil, budget{losses: 1, crashes: 1, restarts: 1}, false, 1},
		{"file stop and storage error", FileLock, nil, budget{stops: 1, storageErrs: 1, crashes: 1, restarts: 1}, false, 1},
		{"file silent loss and stop", FileLock, nil, budget{losses: 1, stops: 1, crashes: 1}, false, 1},
		{"file silent loss, stop, restart", FileLock, nil, budget{losses: 1, stops: 1, crashes: 1, restarts: 1}, true, 1},
		{"file failover-on-shutdown no failback", FileLock, func(c *Config) { c.FailoverOnShutdown, c.AllowFailback = true, false }, budget{stops: 1, crashes: 1, restarts: 1}, false, 1},
		{"file no restart-backup", FileLock, func(c *Config) { c.RestartBackup = false }, budget{crashes: 1, restarts: 1, stops: 1}, false, 1},
		{"lease crash+restart", DBLease, nil, budget{crashes: 2, restarts: 1}, false, 1},
		{"lease stop and storage error", DBLease, nil, budget{stops: 1, storageErrs: 1, crashes: 1}, false, 1},
		{"lease stop, storage error, restart", DBLease, nil, budget{stops: 1, storageErrs: 1, crashes: 1, restarts: 1}, true, 1},
		{"file two backups", FileLock, nil, budget{crashes: 2, losses: 1}, true, 2},
		{"lease two backups", DBLease, nil, budget{crashes: 1}, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && !*long {
				t.Skip("long exploration; run with -long")
			}
			if raceEnabled && !*long && tc.budget.crashes+tc.budget.stops+tc.budget.storageErrs+tc.budget.restarts+tc.budget.losses > 2 {
				t.Skip("large exploration skipped under -race (run with -long to force)")
			}
			st, err := explore(newWorld(tc.coord, simConfig(tc.coord, tc.mod), tc.budget, max(tc.backup, 1)))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d states; backup served: %v, primary served again: %v, a node halted: %v", st.states, st.backupServed, st.failedBack, st.halted)
			if !st.backupServed {
				t.Error("no explored run activates the backup")
			}
			if tc.budget.restarts > 0 && tc.budget.crashes > 0 && !st.failedBack {
				t.Error("no explored run has the primary serve again")
			}
		})
	}
}

// The exploration must catch broken protocols, or it proves nothing.
func TestExhaustiveFindsBugs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		coord  Coordinator
		mod    func(*Config)
		budget budget
		want   string // any of these, separated by |
		rule   writeRule
	}{
		{"file lock without fence", FileLock, func(c *Config) { c.FenceWait = 0 }, budget{losses: 1}, "loads epoch|may write its store", nil},
		{"file lock fence shorter than lease", FileLock, func(c *Config) { c.FenceWait = simLease - 1 }, budget{losses: 1}, "can still ack|may write its store", nil},
		{"lease longer than the database expiry", DBLease, func(c *Config) { c.Lease = simDBExpiry + 2 }, budget{crashes: 1}, "without a valid lease", nil},
		// The rule before issue 21: any orderly close may write
		// (transition || CanAck).
		{"file lock, a stop closes the store without proof", FileLock, nil, budget{losses: 1, stops: 1}, "closes its store",
			func(n *Node, now time.Duration, closing bool) bool {
				if closing {
					return n.phase != PhaseHalted
				}
				return loadingPhase(n) || n.CanAck(now)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(tc.coord, simConfig(tc.coord, tc.mod), tc.budget, 1)
			if tc.rule != nil {
				w.mayWrite = tc.rule
			}
			_, err := explore(w)
			found := false
			for _, want := range strings.Split(tc.want, "|") {
				found = found || err != nil && strings.Contains(err.Error(), want)
			}
			if !found {
				t.Fatalf("got %v, want a violation containing one of %q", err, tc.want)
			}
			t.Logf("found as expected: %v", err)
		})
	}
}
