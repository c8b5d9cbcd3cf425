package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// TestManage: management operations over the client's connection.
func TestManage(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, "tcp://"+b.addr)
	ctx := testCtx(t)
	var qi server.QueueInfo
	if err := c.Manage(ctx, "queue.create", map[string]any{"name": "jobs", "routing": "anycast"}, &qi); err != nil {
		t.Fatal(err)
	}
	if qi.Name != "jobs" || !qi.Durable {
		t.Fatalf("created %+v", qi)
	}
	p := session(t, c).CreateProducer(Queue("jobs"))
	for range 3 {
		if err := p.Send(ctx, &Message{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var purged struct{ Purged int }
	if err := c.Manage(ctx, "queue.purge", map[string]any{"name": "jobs"}, &purged); err != nil || purged.Purged != 3 {
		t.Fatalf("purge: %+v, %v", purged, err)
	}
	err := c.Manage(ctx, "queue.purge", map[string]any{"name": "nope"}, nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != wire.CodeNotFound {
		t.Fatalf("purge of a missing queue: %v, want CodeNotFound", err)
	}
	// The connection still serves after a refusal.
	var qs []server.QueueInfo
	if err := c.Manage(ctx, "queue.list", nil, &qs); err != nil || len(qs) != 1 {
		t.Fatalf("queue.list: %+v, %v", qs, err)
	}
}

// TestDialConnectRetryListener: Dial says what it waits for before each
// retry of its initial connection, and fails with the dial error after
// initialConnectAttempts passes.
func TestDialConnectRetryListener(t *testing.T) {
	addr := testenv.FreeAddr(t) // nothing listens there
	var retries []ConnectRetry
	_, err := Dial(context.Background(), "tcp://"+addr+"?ha=true&initialConnectAttempts=3&retryInterval=1",
		WithConnectRetryListener(func(r ConnectRetry) { retries = append(retries, r) }))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Dial: %v, want connection refused", err)
	}
	if len(retries) != 2 || retries[0].Pass != 1 || retries[1].Attempts != 3 || retries[0].Err == nil || retries[0].Addrs[0] != addr {
		t.Fatalf("retries: %+v, want passes 1 and 2 of 3 with the error", retries)
	}
	retries = nil
	if _, err := Dial(context.Background(), "tcp://"+addr+"?ha=true", WithConnectRetryListener(func(r ConnectRetry) { retries = append(retries, r) })); err == nil {
		t.Fatal("Dial with nothing listening succeeded")
	}
	if len(retries) != 0 {
		t.Fatalf("default initialConnectAttempts (1) retried: %+v", retries)
	}
}
