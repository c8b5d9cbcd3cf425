package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ZKSrvr sends ZooKeeper's four-letter command srvr to addr and returns the
// answer. It writes "srvr" with no newline (an unread newline makes the
// server's close send a reset that can eat the answer) and reads to EOF.
func ZKSrvr(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("zookeeper srvr %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	}
	if _, err := io.WriteString(c, "srvr"); err != nil {
		return "", fmt.Errorf("zookeeper srvr %s: %w", addr, err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return string(b), fmt.Errorf("zookeeper srvr %s: %w", addr, err)
	}
	return string(b), nil
}

// ZKMode returns a ZooKeeper node's mode from srvr: "leader", "follower" or
// "standalone"; "" when the node answers but does not serve (no quorum).
// It retries an empty answer a few times.
func ZKMode(ctx context.Context, addr string) (string, error) {
	var last error
	for try := 0; try < 5; try++ {
		out, err := ZKSrvr(ctx, addr)
		if err == nil && out != "" {
			for _, line := range strings.Split(out, "\n") {
				if m, ok := strings.CutPrefix(line, "Mode:"); ok {
					return strings.TrimSpace(m), nil
				}
			}
			return "", nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last == nil {
		last = fmt.Errorf("zookeeper srvr %s: empty answer", addr)
	}
	return "", last
}

// PGDatabase creates a database of the test's own on the TANDEM_TEST_PG
// server, returns its pgx URL, and drops it when the test ends. Use it when
// a test needs tables nobody else touches (or drops the whole schema).
func PGDatabase(t testing.TB) string {
	t.Helper()
	base := PG(t)
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatalf("testenv: %s: %v", EnvPG, err)
	}
	name := UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: connect %s: %v", EnvPG, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return withDatabase(base, name)
}

// withDatabase returns the connection string base naming database db: a
// URL with its path replaced, or a keyword/value string with dbname added.
func withDatabase(base, db string) string {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		if u, err := url.Parse(base); err == nil {
			u.Path = "/" + db
			u.RawPath = ""
			return u.String()
		}
	}
	return base + " dbname=" + db
}
