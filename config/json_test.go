package config

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// TestJSONKeys checks the keys CLI.md promises in `tandem config check`.
func TestJSONKeys(t *testing.T) {
	haKeys := map[string][]string{
		"275-shared-store-colocated.xml": {"request-backup", "max-backups", "backup-request-retries",
			"backup-request-retry-interval", "backup-port-offset", "excludes", "primary", "backup"},
		"188-replication-master-quorum.xml": {"check-for-live-server", "check-for-active-server", "group-name",
			"vote-on-replication-failure", "quorum-size", "vote-retries", "vote-retry-wait", "quorum-vote-wait",
			"initial-replication-sync-timeout", "retry-replication-wait", "cluster-name"},
		"210-replication-slave-quorum.xml": {"allow-failback", "restart-backup", "group-name",
			"max-saved-replicated-journals-size", "vote-retries", "vote-retry-wait", "scale-down"},
		"97-replication-primary-zk.xml": {"manager", "coordination-id", "group-name",
			"initial-replication-sync-timeout"},
		"250-live-only-scale-down-connectors.xml": {"scale-down"},
	}
	for file, keys := range haKeys {
		c, _, err := Load(filepath.Join("testdata", "seed", file))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"name", "journal-type", "journal-directory", "store", "acceptors", "ha"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: top-level key %q missing", file, k)
			}
		}
		ha, _ := m["ha"].(map[string]any)
		for _, k := range append([]string{"policy", "role", "coordinator", "group_name"}, keys...) {
			if _, ok := ha[k]; !ok {
				t.Errorf("%s: ha key %q missing in %v", file, k, ha)
			}
		}
	}
	b, err := Default().JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		HA struct {
			Policy, Role, Coordinator string
		}
	}
	if err := json.Unmarshal(b, &m); err != nil || m.HA.Policy != "none" || m.HA.Role != "primary" || m.HA.Coordinator != "none" {
		t.Errorf("default ha = %+v, %v", m.HA, err)
	}
}

func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"jdbc:postgresql://h/db?user=a&password=b":       "jdbc:postgresql://h/db?user=a&password=****",
		"jdbc:postgresql://h/db?password=b&user=a":       "jdbc:postgresql://h/db?password=****&user=a",
		"postgresql://u:secret@h:5432/db":                "postgresql://u:****@h:5432/db",
		"jdbc:postgresql://h:5432/db":                    "jdbc:postgresql://h:5432/db",
		"jdbc:postgresql://h/db?user=a;password=x;ssl=1": "jdbc:postgresql://h/db?user=a;password=****;ssl=1",
	} {
		if got := maskURL(in); got != want {
			t.Errorf("maskURL(%q) = %q, want %q", in, got, want)
		}
	}
}
