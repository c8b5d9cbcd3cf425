package testenv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"

	"github.com/tandemmq/tandem/internal/testenv"
)

// TestZKQuorum proves the ensemble that make test started has a quorum:
// every node serves, and exactly one of them leads.
func TestZKQuorum(t *testing.T) {
	servers := testenv.ZKServers(t)
	if len(servers) != 3 {
		t.Fatalf("%s names %d servers, want 3: %v", testenv.EnvZK, len(servers), servers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	modes := map[string]int{}
	for _, s := range servers {
		m, err := testenv.ZKMode(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: Mode: %s", s, m)
		modes[m]++
	}
	if modes["leader"] != 1 || modes["follower"] != len(servers)-1 {
		t.Fatalf("modes %v, want 1 leader and %d followers", modes, len(servers)-1)
	}
}

// TestZKZnode creates, reads and deletes a znode with go-zookeeper/zk
// through the whole connect string.
func TestZKZnode(t *testing.T) {
	servers := testenv.ZKServers(t)
	conn, events, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zk.Connect %v: %v", servers, err)
	}
	defer conn.Close()
	waitConnected(t, events)

	path := "/" + testenv.UniqueName(t)
	want := []byte("tandem smoke " + time.Now().UTC().Format(time.RFC3339Nano))
	got, err := conn.Create(path, want, 0, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	if got != path {
		t.Fatalf("create returned %q, want %q", got, path)
	}
	data, stat, err := conn.Get(path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	if string(data) != string(want) {
		t.Fatalf("get %s = %q, want %q", path, data, want)
	}
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("second create of %s: err %v, want ErrNodeExists", path, err)
	}
	if err := conn.Delete(path, stat.Version); err != nil {
		t.Fatalf("delete %s: %v", path, err)
	}
	if ok, _, err := conn.Exists(path); err != nil || ok {
		t.Fatalf("exists %s after delete = %v, %v; want false", path, ok, err)
	}
}

// TestZKConnect checks the helper: a base znode of the test's own, and the
// whole subtree gone after the test.
func TestZKConnect(t *testing.T) {
	var base string
	t.Run("inner", func(t *testing.T) {
		var conn *zk.Conn
		conn, base = testenv.ZKConnect(t)
		for _, p := range []string{base + "/a", base + "/a/b", base + "/c"} {
			if _, err := conn.Create(p, []byte(p), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("create %s: %v", p, err)
			}
		}
		if _, err := conn.Create(base+"/e", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create ephemeral: %v", err)
		}
	})
	conn, events, err := zk.Connect(testenv.ZKServers(t), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitConnected(t, events)
	if ok, _, err := conn.Exists(base); err != nil || ok {
		t.Fatalf("exists %s after the test = %v, %v; want false", base, ok, err)
	}
}

func waitConnected(t *testing.T, events <-chan zk.Event) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return
			}
		case <-timeout:
			t.Fatal("no ZooKeeper session within 20 s")
		}
	}
}

// TestPGRoundTrip creates a table with pgx, writes a row and reads it back,
// in a database of its own.
func TestPGRoundTrip(t *testing.T) {
	url := testenv.PGDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(context.Background())

	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "on" {
		t.Errorf("fsync = %s, want on (durability is measured against this server)", fsync)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE smoke (id bigint PRIMARY KEY, body bytea NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   int64
		body []byte
	}{
		{1, []byte("hello")},
		{2, []byte{}},
		{3, []byte{0, 0xff, '\n', 0}},
	}
	for _, tc := range tests {
		if _, err := conn.Exec(ctx, `INSERT INTO smoke (id, body) VALUES ($1, $2)`, tc.id, tc.body); err != nil {
			t.Fatalf("insert %d: %v", tc.id, err)
		}
	}
	for _, tc := range tests {
		var body []byte
		if err := conn.QueryRow(ctx, `SELECT body FROM smoke WHERE id = $1`, tc.id).Scan(&body); err != nil {
			t.Fatalf("select %d: %v", tc.id, err)
		}
		if string(body) != string(tc.body) {
			t.Errorf("row %d = %q, want %q", tc.id, body, tc.body)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM smoke`).Scan(&n); err != nil || n != len(tests) {
		t.Fatalf("count = %d, %v; want %d", n, err, len(tests))
	}
}

// TestPGShared checks the shared database of TANDEM_TEST_PG answers too.
func TestPGShared(t *testing.T) {
	url := testenv.PG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "15") {
		t.Logf("server_version %s (make test starts PostgreSQL 15)", version)
	}
	t.Logf("PostgreSQL %s at %s", version, url)
}
