package broker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/server"
)

// holdFS holds every journal write submitted while it is armed, before
// the write reaches the fence below it: the process paused just before
// a write (a SIGSTOP, a VM freeze), which the fence checks when it goes
// on.
type holdFS struct {
	aio.FS
	mu      sync.Mutex
	armed   bool
	release chan struct{}
	held    chan struct{} // receives once per held write
}

func newHoldFS(inner aio.FS) *holdFS {
	return &holdFS{FS: inner, release: make(chan struct{}), held: make(chan struct{}, 16)}
}

func (h *holdFS) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

// unhold lets the held writes and every later one go on.
func (h *holdFS) unhold() {
	h.mu.Lock()
	h.armed = false
	h.mu.Unlock()
	close(h.release)
}

func (h *holdFS) OpenAppend(name string) (aio.File, error) {
	f, err := h.FS.OpenAppend(name)
	if err != nil {
		return nil, err
	}
	return &holdFile{File: f, h: h}, nil
}

type holdFile struct {
	aio.File
	h *holdFS
}

func (f *holdFile) Submit(p []byte, off int64, sync bool, done func(error)) {
	f.h.mu.Lock()
	armed := f.h.armed
	f.h.mu.Unlock()
	if armed {
		f.h.held <- struct{}{}
		<-f.h.release
	}
	f.File.Submit(p, off, sync, done)
}

// fenceTestConfig is a shared-store broker on dir (journal, bindings and
// the lock in dir/journal) with its own acceptor.
func fenceTestConfig(t *testing.T, dir, name string, role config.Role) *config.Config {
	c := config.Default()
	c.Name = name
	c.Journal.Type, c.Journal.Backend = "NIO", aio.NIO
	c.Journal.FileSize = 1 << 20
	c.Acceptors = []config.Acceptor{{Name: "artemis", Scheme: "tcp", Host: "127.0.0.1", Port: testenv.FreePort(t)}}
	c.ApplyDataDir(dir)
	c.HA.Policy, c.HA.Role = config.PolicySharedStore, role
	return c
}

// fenceBroker is one in-process broker of the pair, as runSharedStore
// assembles it.
type fenceBroker struct {
	h    *haBroker
	mgr  *lockfile.Manager
	done chan error
}

func startFenceBroker(t *testing.T, cfg *config.Config, role hasm.Role, open func(h *haBroker) func(context.Context, *config.Config, server.StoreOptions) (*server.Store, error)) *fenceBroker {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("broker", cfg.Name)
	h, mgr, err := newFileLockHA(cfg, log, role)
	if err != nil {
		t.Fatal(err)
	}
	if open != nil {
		h.openStore = open(h)
	}
	b := &fenceBroker{h: h, mgr: mgr, done: make(chan error, 1)}
	go func() { b.done <- h.runner.Run(context.Background()) }()
	t.Cleanup(func() {
		h.runner.Stop(hasm.FailoverNo)
		<-b.done
		h.abandon()
		mgr.Close()
	})
	return b
}

func (b *fenceBroker) waitActive(t *testing.T) *server.Server {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s := b.h.server(); s != nil && b.h.runner.CanAck() {
			return s
		}
		select {
		case err := <-b.done:
			t.Fatalf("%s ended before serving: %v", b.h.cfg.Name, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("%s not serving after 30 s: %s", b.h.cfg.Name, b.h.runner)
	return nil
}

func (b *fenceBroker) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30 s after it was asked to stop: %s", b.h.cfg.Name, b.h.runner)
		return nil
	}
}

func sendDurable(t *testing.T, s *server.Server, body string) {
	t.Helper()
	ch := make(chan error, 1)
	s.NewSession(false).Send(context.Background(), server.Destination{Name: "q", Routing: server.Anycast},
		&server.Message{Durable: true, Body: []byte(body)}, func(err error) { ch <- err })
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("send %q: %v", body, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("send %q: no answer in 30 s", body)
	}
}

// snapshot hashes every file under dir.
func snapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStopAfterLostLockLeavesStore (issue 21 §2): a live whose stop is
// under way, paused just before its journal's close writes (the seal),
// loses its lock silently; the backup takes over, loads the store, writes
// a message and stops. When the old live goes on, it may not write into
// the store (nor its state into server.lock): it cannot prove it holds
// the lock any more. Before the fix, mayWrite let any orderly stop write
// (transition || CanAck): its seal went over the successor's and P over
// the successor's state.
func TestStopAfterLostLockLeavesStore(t *testing.T) {
	dir := t.TempDir()
	var hold *holdFS
	old := startFenceBroker(t, fenceTestConfig(t, dir, "old-live", config.RolePrimary), hasm.Primary,
		func(h *haBroker) func(context.Context, *config.Config, server.StoreOptions) (*server.Store, error) {
			return func(_ context.Context, cfg *config.Config, so server.StoreOptions) (*server.Store, error) {
				hold = newHoldFS(fencedOS(cfg, so, h.mayWrite))
				return openFileStoreOn(cfg, so, hold)
			}
		})
	sendDurable(t, old.waitActive(t), "before")

	// The stop begins; the journal's close is held before its first write.
	hold.arm()
	old.h.setStopping()
	old.h.runner.Stop(hasm.FailoverDefault)
	select {
	case <-hold.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the stop did not reach the journal's close")
	}

	// The lock is lost silently (an NFS lease that expired): the backup
	// gets it, takes the next epoch, waits the fence, loads and writes.
	if err := old.mgr.ReleasePrimary(); err != nil {
		t.Fatal(err)
	}
	succ := startFenceBroker(t, fenceTestConfig(t, dir, "successor", config.RoleBackup), hasm.Backup, nil)
	sendDurable(t, succ.waitActive(t), "after")
	succ.h.setStopping()
	succ.h.runner.Stop(hasm.FailoverDefault)
	if err := succ.wait(t); err != nil {
		t.Fatalf("successor's clean stop: %v", err)
	}
	if err := succ.h.shutdown(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	// The old live goes on with its stop.
	hold.unhold()
	err := old.wait(t)
	if !errors.As(err, new(*hasm.HaltError)) {
		t.Errorf("the old live's stop ended with %v, want a halt (it cannot prove it holds the lock)", err)
	}
	old.h.abandon()
	after := snapshot(t, dir)
	for p, sum := range before {
		if after[p] != sum {
			t.Errorf("the old live wrote into %s after its successor took over", p)
		}
	}

	verifyJournals(t, dir)
	next := startFenceBroker(t, fenceTestConfig(t, dir, "next", config.RolePrimary), hasm.Primary, nil)
	if q, ok := next.waitActive(t).Queue("q"); !ok || q.Depth != 2 {
		t.Fatalf("after a reload queue q is %+v (exists %v), want both messages", q, ok)
	}
}

// verifyJournals is `tandem data verify DIR`: every journal under dir
// scans without corruption.
func verifyJournals(t *testing.T, dir string) {
	t.Helper()
	fs := aio.OS(aio.NIO, aio.DefaultOptions())
	found := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		nms, err := journal.FindJournals(fs, path)
		if err != nil {
			return err
		}
		for _, nm := range nms {
			found++
			if _, err := journal.Scan(fs, path, nm, func(string, uint64, int64, []byte) error { return nil }); err != nil {
				return fmt.Errorf("verify %s: %w", path, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatalf("no journal under %s", dir)
	}
}
