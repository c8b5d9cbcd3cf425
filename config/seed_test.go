package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Each file in testdata/seed is a <ha-policy> snippet of the seed document
// (AMQ Broker 7 manual, section 14.3) exactly as printed there, including
// its "..." placeholders and the malformed "</backup-request-retry-interval/>".
// The test loads it verbatim, and again with only its <ha-policy> wrapped in
// a minimal namespaced <configuration><core>, and checks the resolved values.
func TestSeedSnippets(t *testing.T) {
	zk := "192.168.1.10:6666,192.168.2.10:6667,192.168.3.10:6668"
	tests := []struct {
		file  string
		check func(t *testing.T, h *HA)
	}{
		{"91-replication-primary-zk-manager-placeholder.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyReplication, RolePrimary, CoordZooKeeper)
			eq(t, "group-name", h.GroupName, "my-group-1")
			eq(t, "session-ms", h.Manager.SessionTimeout, 18*time.Second)
		}},
		{"97-replication-primary-zk.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyReplication, RolePrimary, CoordZooKeeper)
			eq(t, "class-name", h.Manager.ClassName, CuratorManager)
			eq(t, "connect-string", h.Manager.ConnectString, zk)
			eq(t, "group-name", h.GroupName, "")
		}},
		{"129-replication-backup-zk-manager-placeholder.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyReplication, RoleBackup, CoordZooKeeper)
			eq(t, "group-name", h.GroupName, "my-group-1")
			eq(t, "allow-failback", h.AllowFailback, true)
			eq(t, "restart-backup", h.RestartBackup, true)
		}},
		{"143-replication-backup-zk.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyReplication, RoleBackup, CoordZooKeeper)
			eq(t, "connect-string", h.Manager.ConnectString, zk)
		}},
		{"188-replication-master-quorum.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyReplication, RolePrimary, CoordQuorum)
			eq(t, "check-for-live-server", h.CheckForActiveServer, true)
			eq(t, "group-name", h.GroupName, "my-group-1")
			eq(t, "vote-on-replication-failure", h.VoteOnReplicationFailure, true)
			eq(t, "vote-retries", h.VoteRetries, 12)
			eq(t, "quorum-size", h.QuorumSize, -1)
			if h.Manager != nil {
				t.Error("quorum policy has a manager")
			}
		}},
		{"210-replication-slave-quorum.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyReplication, RoleBackup, CoordQuorum)
			eq(t, "allow-failback", h.AllowFailback, true)
			eq(t, "group-name", h.GroupName, "my-group-1")
			eq(t, "vote-on-replication-failure", h.VoteOnReplicationFailure, true)
		}},
		{"220-replication-slave-vote.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyReplication, RoleBackup, CoordQuorum)
			eq(t, "vote-retries", h.VoteRetries, 12)
			eq(t, "vote-retry-wait", h.VoteRetryWait, 5000*time.Millisecond)
			eq(t, "quorum-vote-wait", h.QuorumVoteWait, 30*time.Second)
		}},
		{"245-live-only.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyLiveOnly, RolePrimary, CoordNone)
			if h.ScaleDown != nil {
				t.Error("scale-down set without <scale-down>")
			}
		}},
		{"250-live-only-scale-down-connectors.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyLiveOnly, RolePrimary, CoordNone)
			eq(t, "connectors", strings.Join(h.ScaleDown.Connectors, ","), "broker1-connector")
			eq(t, "enabled", h.ScaleDown.Enabled, true)
			eq(t, "commit-interval", h.ScaleDown.CommitInterval, -1)
		}},
		{"253-live-only-scale-down-discovery.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyLiveOnly, RolePrimary, CoordNone)
			eq(t, "discovery-group-ref", h.ScaleDown.DiscoveryGroup, "my-discovery-group")
		}},
		{"256-live-only-scale-down-group.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyLiveOnly, RolePrimary, CoordNone)
			eq(t, "group-name", h.ScaleDown.GroupName, "my-group-name")
		}},
		{"275-shared-store-colocated.xml", func(t *testing.T, h *HA) {
			want(t, h, PolicyColocated, RolePrimary, CoordFileLock)
			c := h.Colocated
			eq(t, "store", c.Store, PolicySharedStore)
			eq(t, "request-backup", c.RequestBackup, true)
			eq(t, "max-backups", c.MaxBackups, 1)
			eq(t, "backup-request-retries", c.BackupRequestRetries, -1)
			eq(t, "backup-request-retry-interval", c.BackupRequestRetryInterval, 5*time.Second)
			eq(t, "backup-port-offset", c.BackupPortOffset, 150)
			eq(t, "excludes", strings.Join(c.Excludes, ","), "remote-connector")
			eq(t, "master failover-on-shutdown", c.Primary.FailoverOnShutdown, true)
			eq(t, "slave failover-on-shutdown", c.Backup.FailoverOnShutdown, true)
			eq(t, "slave allow-failback", c.Backup.AllowFailback, true)
			eq(t, "slave restart-backup", c.Backup.RestartBackup, true)
			eq(t, "top-level failover-on-shutdown", h.FailoverOnShutdown, true)
		}},
	}
	files, _ := filepath.Glob("testdata/seed/*.xml")
	if len(files) != len(tests) {
		t.Fatalf("%d seed files, %d tests: every snippet needs a test", len(files), len(tests))
	}
	policyRE := regexp.MustCompile(`(?s)<ha-policy>.*</ha-policy>`)
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata/seed", tc.file)
			c, _, err := Load(path)
			if err != nil {
				t.Fatalf("verbatim snippet rejected: %v", err)
			}
			tc.check(t, &c.HA)

			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			doc := "<configuration xmlns=\"urn:activemq\">\n<core xmlns=\"urn:activemq:core\">\n" +
				policyRE.FindString(string(b)) + "\n</core>\n</configuration>\n"
			c, _, err = Parse("wrapped.xml", strings.NewReader(doc))
			if err != nil {
				t.Fatalf("wrapped snippet rejected: %v\n%s", err, doc)
			}
			tc.check(t, &c.HA)
		})
	}
}

func want(t *testing.T, h *HA, p Policy, r Role, c Coordinator) {
	t.Helper()
	if h.Policy != p || h.Role != r || h.Coordinator != c {
		t.Fatalf("policy/role/coordinator = %s/%s/%s, want %s/%s/%s", h.Policy, h.Role, h.Coordinator, p, r, c)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
