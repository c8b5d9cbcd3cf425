package testenv

import (
	"errors"
	"fmt"
	"path"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZKConnect connects to the test ensemble with go-zookeeper/zk, waits for a
// session, and creates a znode of the test's own (/t_..., see UniqueName)
// to keep everything under. When the test ends, that subtree is deleted
// and the connection closed. It returns the connection and the base path.
func ZKConnect(t testing.TB) (*zk.Conn, string) {
	t.Helper()
	servers := ZKServers(t)
	conn, events, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("testenv: zk.Connect %v: %v", servers, err)
	}
	t.Cleanup(conn.Close)
	timeout := time.After(20 * time.Second)
wait:
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				break wait
			}
		case <-timeout:
			t.Fatalf("testenv: no ZooKeeper session with %v within 20 s", servers)
		}
	}
	base := "/" + UniqueName(t)
	if _, err := conn.Create(base, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("testenv: create %s: %v", base, err)
	}
	t.Cleanup(func() {
		if err := ZKDeleteAll(conn, base); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return conn, base
}

// ZKDeleteAll deletes the znode p and everything under it. A znode that is
// already gone is not an error.
func ZKDeleteAll(conn *zk.Conn, p string) error {
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: list children: %w", p, err)
	}
	for _, c := range children {
		if err := ZKDeleteAll(conn, path.Join(p, c)); err != nil {
			return err
		}
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}
