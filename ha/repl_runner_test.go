package ha

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// ReplRunners of a pair against the real ensemble, with a fake runtime in
// place of the replication data path: a replica "syncs" by reading the
// live's epoch and node ID (the live reports BackupSynced first), the
// live's completion gate is a counter of ReleaseHeld.

type fakePair struct {
	t      *testing.T
	g      zkGroup
	mu     sync.Mutex
	byURL  map[string]*fakeBroker
	wg     sync.WaitGroup // the fake runtime's goroutines
	logBuf *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fakeBroker struct {
	p     *fakePair
	name  string
	url   string
	mgr   *lockfile.Manager
	part  *zkPartition
	coord *ZKCoordinator
	r     *ReplRunner

	mu        sync.Mutex
	crashed   bool   // unreachable: replication connections to it fail
	serving   uint64 // epoch while serving
	replicaOf string
	released  int
	canAckAt  map[string]bool // the other broker's CanAck when this one started serving
	started   chan uint64     // StartServing epochs
	synced    chan uint64     // ReplicaSynced sequences
	replicas  chan string     // StartReplica URLs

	runDone chan struct{}
	runErr  error
	cancel  context.CancelFunc
}

func newFakePair(t *testing.T) *fakePair {
	p := &fakePair{t: t, g: newZKGroup(t), byURL: map[string]*fakeBroker{}, logBuf: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("brokers' log:\n%s", p.logBuf.String())
		}
	})
	return p
}

// broker makes a broker with its own lock directory dir (reused across a
// restart) and a ZooKeeper session of session.
func (p *fakePair) broker(name string, role Role, dir string, session time.Duration) *fakeBroker {
	t := p.t
	mgr, err := lockfile.Open(dir, lockfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := mgr.TryAcquirePrimary(); !ok || err != nil {
		t.Fatalf("%s: the data directory is held: %v %v", name, ok, err)
	}
	b := &fakeBroker{p: p, name: name, url: "tcp://" + name + ":61616", mgr: mgr, part: &zkPartition{},
		canAckAt: map[string]bool{}, started: make(chan uint64, 16), synced: make(chan uint64, 16),
		replicas: make(chan string, 64), runDone: make(chan struct{})}
	o := p.g.opts(t, b.url, session)
	o.dialer = b.part.dial
	o.Logger = slog.New(slog.NewTextHandler(p.logBuf, nil)).With("broker", name)
	b.coord = p.g.dial(t, o)
	cfg := DefaultReplConfig(role)
	cfg.Lease, cfg.RetryInterval, cfg.FailbackHoldoff = b.coord.Lease(), 100*time.Millisecond, time.Second
	b.r, err = NewReplRunner(b.coord, LockfileLocal{M: mgr}, cfg, ReplHooks{
		LoadStore:       func(context.Context, uint64) error { return nil },
		StartServing:    b.startServing,
		StopServing:     func() { b.mu.Lock(); b.serving = 0; b.mu.Unlock() },
		StartReplica:    b.startReplica,
		StopReplica:     func() { b.mu.Lock(); b.replicaOf = ""; b.mu.Unlock() },
		RequestFailback: b.requestFailback,
		ReleaseHeld:     func() { b.mu.Lock(); b.released++; b.mu.Unlock() },
		Handover:        b.handover,
		Announce: func(a ReplAction) {
			b.mu.Lock()
			if a.Active && b.serving != 0 {
				b.serving = a.Epoch
			}
			b.mu.Unlock()
		},
		Logger: o.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.byURL[b.url] = b
	p.mu.Unlock()
	return b
}

func (b *fakeBroker) run() {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.runErr = b.r.Run(ctx); close(b.runDone) }()
	b.p.t.Cleanup(func() {
		cancel()
		select {
		case <-b.runDone:
		case <-time.After(30 * time.Second):
			b.p.t.Errorf("%s: Run did not return", b.name)
		}
		b.p.wg.Wait()
		b.mgr.Close()
	})
}

func (b *fakeBroker) others() []*fakeBroker {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	var out []*fakeBroker
	for _, o := range b.p.byURL {
		if o != b {
			out = append(out, o)
		}
	}
	return out
}

func (b *fakeBroker) startServing(epoch uint64) {
	// I4 in the real system: when this broker starts serving, no other
	// can acknowledge.
	for _, o := range b.others() {
		b.canAckAt[o.name] = o.r.CanAck()
	}
	b.mu.Lock()
	b.serving = epoch
	b.mu.Unlock()
	b.started <- epoch
}

// servingEpoch is what a backup connecting to it finds: its epoch if it
// serves and is reachable, else 0.
func (b *fakeBroker) servingEpoch() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.crashed {
		return 0
	}
	return b.serving
}

// startReplica is the fake replication runtime of a backup.
func (b *fakeBroker) startReplica(url string) {
	b.mu.Lock()
	b.replicaOf = url
	b.mu.Unlock()
	b.replicas <- url
	b.p.wg.Add(1)
	go func() {
		defer b.p.wg.Done()
		b.p.mu.Lock()
		live := b.p.byURL[url]
		b.p.mu.Unlock()
		var epoch uint64
		if live != nil {
			epoch = live.servingEpoch()
		}
		if epoch == 0 {
			b.r.ReplicaLost(false) // connection refused: not live (any more); data untouched
			return
		}
		// Accepted: no valid data from here until the sync completes.
		id, _, err := LockfileLocal{M: b.mgr}.ReadLocal()
		if err == nil {
			err = LockfileLocal{M: b.mgr}.WriteLocal(id, 0)
		}
		if err != nil {
			b.r.StorageError(err)
			return
		}
		live.r.BackupSynced()
		lid, _, err := LockfileLocal{M: live.mgr}.ReadLocal()
		if err == nil {
			err = LockfileLocal{M: b.mgr}.WriteLocal(lid, epoch)
		}
		if err != nil {
			b.r.StorageError(err)
			return
		}
		b.r.ReplicaSynced(epoch, lid)
		b.synced <- epoch
	}()
}

func (b *fakeBroker) requestFailback() {
	b.mu.Lock()
	url := b.replicaOf
	b.mu.Unlock()
	b.p.mu.Lock()
	live := b.p.byURL[url]
	b.p.mu.Unlock()
	if live != nil {
		b.p.wg.Add(1)
		go func() { defer b.p.wg.Done(); live.r.FailbackRequested() }()
	}
}

func (b *fakeBroker) handover(context.Context) error {
	for _, o := range b.others() {
		o.mu.Lock()
		mine := o.replicaOf == b.url
		o.mu.Unlock()
		if mine {
			b.p.wg.Add(1)
			go func() { defer b.p.wg.Done(); o.r.ReplicaLost(true) }()
			return nil
		}
	}
	return errors.New("no replica attached")
}

// crash makes the broker unreachable to ZooKeeper (its session expires
// later) and ends its replication connections, like a SIGKILL; the
// in-process runner halts when its lease runs out.
func (b *fakeBroker) crash() {
	b.mu.Lock()
	b.crashed = true
	b.mu.Unlock()
	b.part.Cut()
	for _, o := range b.others() {
		o.mu.Lock()
		mine := o.replicaOf == b.url
		o.mu.Unlock()
		if mine {
			o.r.ReplicaLost(false)
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("no %s within 60 s", what)
	}
	var zero T
	return zero
}

func (b *fakeBroker) waitRun(t *testing.T) error {
	t.Helper()
	select {
	case <-b.runDone:
		return b.runErr
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: Run did not return within 60 s", b.name)
	}
	return nil
}

// Kill the live (partitioned from ZooKeeper and from its backup): it halts
// when its lease runs out; the synced backup activates with the next epoch
// once the live's session expired, and at that instant the old live
// cannot acknowledge.
func TestReplRunnerFailover(t *testing.T) {
	p := newFakePair(t)
	pri := p.broker("primary", Primary, t.TempDir(), 2*time.Second)
	bak := p.broker("backup", Backup, t.TempDir(), 2*time.Second)
	pri.run()
	if e := recv(t, pri.started, "primary serving"); e != 1 {
		t.Fatalf("primary serves epoch %d, want 1", e)
	}
	bak.run()
	if u := recv(t, bak.replicas, "backup replicating"); u != pri.url {
		t.Fatalf("backup replicates from %s", u)
	}
	if s := recv(t, bak.synced, "backup synced"); s != 1 {
		t.Fatalf("backup synced at %d", s)
	}
	pri.crash()
	err := pri.waitRun(t)
	var he *HaltError
	if !errors.As(err, &he) || !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("the partitioned live returned %v, want a halt on the lease", err)
	}
	if e := recv(t, bak.started, "backup serving"); e != 2 {
		t.Fatalf("backup serves epoch %d, want 2", e)
	}
	if bak.canAckAt["primary"] {
		t.Fatal("the backup started serving while the old live could still acknowledge")
	}
	if st := bak.r.Status(); st.State != "active" || st.Epoch != 2 || st.Coordinated != 2 {
		t.Fatalf("backup status %+v", st)
	}
	if c, err := bak.coord.ReadCoordinated(ctxT(t)); c != 2 || err != nil {
		t.Fatalf("C = %d, %v", c, err)
	}
	if _, l, _ := (LockfileLocal{M: bak.mgr}).ReadLocal(); l != 2 {
		t.Fatalf("backup's local L = %d", l)
	}
}

// The stale backup: L behind C, alone. It stays passive, says why, and
// replicates from the newer broker once that one is live.
func TestReplRunnerStaleBackup(t *testing.T) {
	p := newFakePair(t)
	bdir, pdir := t.TempDir(), t.TempDir()
	bak := p.broker("backup", Backup, bdir, 2*time.Second)
	pri := p.broker("primary", Primary, pdir, 2*time.Second)
	id := newID(t)
	if err := (LockfileLocal{M: bak.mgr}).WriteLocal(id, 5); err != nil {
		t.Fatal(err)
	}
	if err := (LockfileLocal{M: pri.mgr}).WriteLocal(id, 6); err != nil {
		t.Fatal(err)
	}
	if err := bak.coord.SetCoordinated(ctxT(t), 6); err != nil {
		t.Fatal(err)
	}
	bak.run()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.logBuf.String(), "local activation sequence 5 is behind the coordinated 6") {
		if time.Now().After(deadline) {
			t.Fatalf("the stale backup did not say why it waits; log:\n%s", p.logBuf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := bak.r.Status(); st.State != "waiting" || bak.servingEpoch() != 0 {
		t.Fatalf("stale backup: %+v", st)
	}
	pri.run()
	if e := recv(t, pri.started, "primary serving"); e != 7 {
		t.Fatalf("primary serves %d, want 7", e)
	}
	if u := recv(t, bak.replicas, "backup replicating"); u != pri.url {
		t.Fatalf("backup replicates from %s", u)
	}
	if s := recv(t, bak.synced, "backup synced"); s != 7 {
		t.Fatalf("backup synced at %d", s)
	}
}

// A clean stop of the live releases the lock without a bump: the synced
// backup takes over at once (no session expiry to wait for) under the
// next epoch; a backup that is lost later costs the live a bump before it
// releases what it held.
func TestReplRunnerCleanStopFailover(t *testing.T) {
	p := newFakePair(t)
	pri := p.broker("primary", Primary, t.TempDir(), 10*time.Second)
	bak := p.broker("backup", Backup, t.TempDir(), 10*time.Second)
	pri.run()
	recv(t, pri.started, "primary serving")
	bak.run()
	recv(t, bak.synced, "backup synced")
	// The live loses the synced backup: it bumps (2), then releases what
	// it held; the backup comes back and syncs again.
	pri.r.BackupLost()
	deadline := time.Now().Add(60 * time.Second)
	for pri.r.Epoch() != 2 || func() int { pri.mu.Lock(); defer pri.mu.Unlock(); return pri.released }() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the live did not bump and release: %s", pri.r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	bak.r.ReplicaLost(false)
	if s := recv(t, bak.synced, "backup synced again"); s != 2 {
		t.Fatalf("backup re-synced at %d, want 2", s)
	}
	pri.r.Stop()
	if err := pri.waitRun(t); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	start := time.Now()
	bak.r.ReplicaLost(false)
	if e := recv(t, bak.started, "backup serving"); e != 3 {
		t.Fatalf("backup serves %d, want 3", e)
	}
	// Informational: no session had to expire (session 10 s).
	t.Logf("backup serving %v after the live stopped", time.Since(start).Round(time.Millisecond))
}

// Failback: the primary returns while the backup is live, replicates,
// asks for the failback; the backup hands over (no bump) and follows the
// primary, which serves the next epoch.
func TestReplRunnerFailback(t *testing.T) {
	p := newFakePair(t)
	pdir := t.TempDir()
	pri := p.broker("primary", Primary, pdir, 2*time.Second)
	bak := p.broker("backup", Backup, t.TempDir(), 2*time.Second)
	pri.run()
	recv(t, pri.started, "primary serving")
	bak.run()
	recv(t, bak.synced, "backup synced")
	pri.crash()
	if err := pri.waitRun(t); err == nil {
		t.Fatal("the partitioned primary did not halt")
	}
	if e := recv(t, bak.started, "backup serving"); e != 2 {
		t.Fatalf("backup serves %d", e)
	}
	// The primary restarts (a new process: new lock manager, session).
	pri.mgr.Close()
	p.mu.Lock()
	delete(p.byURL, pri.url)
	p.mu.Unlock()
	pri2 := p.broker("primary", Primary, pdir, 2*time.Second)
	pri2.run()
	if u := recv(t, pri2.replicas, "primary replicating"); u != bak.url {
		t.Fatalf("primary replicates from %s", u)
	}
	if e := recv(t, pri2.started, "primary serving again"); e != 3 {
		t.Fatalf("primary serves %d after failback, want 3", e)
	}
	if pri2.canAckAt["backup"] {
		t.Fatal("the primary started serving while the backup could still acknowledge")
	}
	var u string
	for u != pri2.url {
		u = recv(t, bak.replicas, "backup following the primary")
	}
	if st := bak.r.Status(); st.State == "active" {
		t.Fatalf("backup still active: %+v", st)
	}
}
