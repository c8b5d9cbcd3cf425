package jdbcstore

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tandemmq/tandem/internal/testenv"
)

// showSetting returns a run-time parameter as the session on conn sees it.
func showSetting(t *testing.T, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(ctxT(t), "SELECT current_setting($1)", name).Scan(&v); err != nil {
		t.Fatalf("current_setting(%s): %v", name, err)
	}
	return v
}

// execAll runs statements on a connection of the test's own to url.
func execAll(t *testing.T, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestSynchronousCommitForcedOn: a database, a role or the URL (an options
// parameter or a run-time parameter) that sets synchronous_commit to off
// would let PostgreSQL confirm the store's commits before their WAL is
// flushed. Every connection the store opens, the journal's, the node
// manager's (which the lease acquires and renews through) and the one it
// reconnects, still runs with synchronous_commit on.
func TestSynchronousCommitForcedOn(t *testing.T) {
	role := uniqueName("tandem_async")
	admin := pgURL(t)
	execAll(t, admin, "CREATE ROLE "+role+" LOGIN", "ALTER ROLE "+role+" SET synchronous_commit = off")
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP ROLE "+role); err != nil {
			t.Errorf("cleanup: drop role %s: %v", role, err)
		}
	})
	// with returns url (a database of the test's own) with user and
	// query parameters replaced.
	with := func(dbURL, user string, params ...string) string {
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			u.User = url.User(user)
		}
		q := u.Query()
		for i := 0; i+1 < len(params); i += 2 {
			q.Set(params[i], params[i+1])
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, tc := range []struct {
		name string
		// url returns the store's URL on the test's database db, after
		// any setup there.
		url func(t *testing.T, db string) string
		// plainOff: a connection of pgx's own to that URL gets off (the
		// test's premise).
		plainOff bool
	}{
		{"database default", func(t *testing.T, db string) string {
			u, _ := url.Parse(db)
			execAll(t, db, "ALTER DATABASE "+ident(u.Path[1:])+" SET synchronous_commit = off")
			return db
		}, true},
		{"role default", func(t *testing.T, db string) string {
			return with(db, role)
		}, true},
		{"URL options", func(t *testing.T, db string) string {
			return with(db, role, "options", "-c synchronous_commit=off")
		}, false},
		{"URL parameter", func(t *testing.T, db string) string {
			return with(db, "", "synchronous_commit", "off")
		}, true},
		{"jdbc URL options", func(t *testing.T, db string) string {
			u, _ := url.Parse(db)
			return "jdbc:postgresql://" + u.Host + u.Path + "?user=" + role + "&sslmode=disable&options=-c%20synchronous_commit%3Doff"
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testenv.PGDatabase(t)
			execAll(t, db, "GRANT CREATE ON SCHEMA public TO "+role)
			t.Cleanup(func() { execAll(t, db, "DROP OWNED BY "+role) })
			u := tc.url(t, db)
			if tc.plainOff {
				conn, err := pgx.Connect(ctxT(t), u)
				if err != nil {
					t.Fatal(err)
				}
				v := showSetting(t, conn, "synchronous_commit")
				conn.Close(context.Background())
				if v != "off" {
					t.Fatalf("premise: a plain connection gets synchronous_commit %s, want off", v)
				}
			}
			j := openTable(t, u, uniqueName("sc_j"), nil)
			if v := showSetting(t, j.conn, "synchronous_commit"); v != "on" {
				t.Errorf("journal connection: synchronous_commit %s, want on", v)
			}
			mustLoad(t, j)
			mustAppend(t, j, add(1, "x"))
			m, err := OpenNodeManager(ctxT(t), NodeManagerOptions{URL: u, Table: uniqueName("sc_nm"), Group: "g"})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if v := showSetting(t, m.conn, "synchronous_commit"); v != "on" {
				t.Errorf("node manager connection: synchronous_commit %s, want on", v)
			}
			l := m.Lease(LockPrimary)
			if _, ok, err := l.TryAcquire(ctxT(t)); err != nil || !ok {
				t.Fatalf("acquire: %v %v", ok, err)
			}
			// A renewal after the connection broke reconnects.
			m.conn.Close(context.Background())
			if err := l.Renew(ctxT(t)); err != nil {
				t.Fatalf("renew after a reconnect: %v", err)
			}
			if v := showSetting(t, m.conn, "synchronous_commit"); v != "on" {
				t.Errorf("node manager connection after a reconnect: synchronous_commit %s, want on", v)
			}
		})
	}
}

// TestDurabilitySettingsChecked: a connection whose synchronous_commit does
// not read back as on (here set off after connecting, as a server or
// pooler that ignored the startup parameter would leave it) is refused
// with an error naming the setting.
func TestDurabilitySettingsChecked(t *testing.T) {
	conn := adminConn(t, pgURL(t))
	if _, err := conn.Exec(ctxT(t), "SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	_, err := checkDurability(ctxT(t), conn)
	if err == nil || !strings.Contains(err.Error(), "synchronous_commit") {
		t.Fatalf("checkDurability with synchronous_commit off: %v, want an error naming synchronous_commit", err)
	}
	if _, err := conn.Exec(ctxT(t), "SET synchronous_commit = on"); err != nil {
		t.Fatal(err)
	}
	fsyncOn, err := checkDurability(ctxT(t), conn)
	if err != nil {
		t.Fatalf("checkDurability with synchronous_commit on: %v", err)
	}
	if want := showSetting(t, conn, "fsync") == "on"; fsyncOn != want {
		t.Fatalf("checkDurability reports fsync on = %v, the server says %v", fsyncOn, want)
	}
}
