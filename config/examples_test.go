package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples loads every etc/examples/*.xml: each must pass config check
// and mean the topology its name says, with the warnings counted.
func TestExamples(t *testing.T) {
	want := map[string]struct {
		policy Policy
		role   Role
		coord  Coordinator
		port   int
		warns  int
	}{
		"shared-store-primary.xml":            {PolicySharedStore, RolePrimary, CoordFileLock, 61616, 0},
		"shared-store-backup.xml":             {PolicySharedStore, RoleBackup, CoordFileLock, 61617, 0},
		"shared-store-jdbc-primary.xml":       {PolicySharedStore, RolePrimary, CoordJDBCLease, 61616, 0},
		"shared-store-jdbc-backup.xml":        {PolicySharedStore, RoleBackup, CoordJDBCLease, 61617, 0},
		"replication-zookeeper-primary.xml":   {PolicyReplication, RolePrimary, CoordZooKeeper, 61616, 0},
		"replication-zookeeper-backup.xml":    {PolicyReplication, RoleBackup, CoordZooKeeper, 61617, 0},
		"replication-quorum-master.xml":       {PolicyReplication, RolePrimary, CoordQuorum, 61616, 0},
		"replication-quorum-slave.xml":        {PolicyReplication, RoleBackup, CoordQuorum, 61617, 0},
		"live-only-scale-down-connectors.xml": {PolicyLiveOnly, RolePrimary, CoordNone, 61616, 0},
		"live-only-scale-down-discovery.xml":  {PolicyLiveOnly, RolePrimary, CoordNone, 61616, 0},
		"live-only-scale-down-group.xml":      {PolicyLiveOnly, RolePrimary, CoordNone, 61616, 0},
		"colocated-shared-store.xml":          {PolicyColocated, RolePrimary, CoordFileLock, 61616, 0},
		"colocated-replication.xml":           {PolicyColocated, RolePrimary, CoordQuorum, 61616, 0},
	}
	files, err := filepath.Glob("../etc/examples/*.xml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d examples, %d expected", len(files), len(want))
	}
	var shared []string
	for _, f := range files {
		w, ok := want[filepath.Base(f)]
		if !ok {
			t.Errorf("%s: no expectation for this example", f)
			continue
		}
		c, warns, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		h := c.HA
		if h.Policy != w.policy || h.Role != w.role || h.Coordinator != w.coord {
			t.Errorf("%s: %s/%s/%s, want %s/%s/%s", f, h.Policy, h.Role, h.Coordinator, w.policy, w.role, w.coord)
		}
		if c.Acceptors[0].Port != w.port {
			t.Errorf("%s: port %d, want %d", f, c.Acceptors[0].Port, w.port)
		}
		if len(warns) != w.warns {
			t.Errorf("%s: warnings %v, want %d", f, warns, w.warns)
		}
		if strings.HasPrefix(filepath.Base(f), "shared-store-") && !strings.Contains(f, "jdbc") {
			shared = append(shared, c.Dirs.Journal+"|"+c.Dirs.NodeManagerLock+"|"+c.ManagementAddress)
		}
	}
	// The shared-store pair runs on one machine: same journal and lock
	// directory, different ports (checked above) and management addresses.
	if len(shared) == 2 {
		a, b := strings.Split(shared[0], "|"), strings.Split(shared[1], "|")
		if a[0] != b[0] || a[1] != b[1] || a[2] == b[2] {
			t.Errorf("shared-store pair: %v vs %v", a, b)
		}
	}
}
