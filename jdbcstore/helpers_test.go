package jdbcstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tandemmq/tandem/internal/testenv"
)

// pgURL returns the test database from internal/testenv (TANDEM_TEST_PG:
// skips naming `make test` when unset, fails when CI=true).
func pgURL(t testing.TB) string {
	t.Helper()
	return testenv.PG(t)
}

// uniqueName returns a fresh table name with the given prefix.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s_%x", prefix, b)
}

// adminConn opens a connection for the test itself, closed at cleanup.
func adminConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connect(ctx, url, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dropAtCleanup removes the tables (and their meta rows) after the test.
func dropAtCleanup(t testing.TB, url string, tables ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := connect(ctx, url, 0, nil)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, tb := range tables {
			if err := dropTable(ctx, conn, tb); err != nil {
				t.Logf("cleanup: drop %s: %v", tb, err)
			}
			_, _ = conn.Exec(ctx, "DROP FUNCTION IF EXISTS "+fenceFunc(tb)+"(text, bigint)")
		}
	})
}

// openTable opens (not loads) a journal on table, closed at cleanup.
func openTable(t testing.TB, url, table string, mod func(*Options)) *Journal {
	t.Helper()
	o := Options{URL: url, Table: table}
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
