package replication_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/replication"
	"github.com/tandemmq/tandem/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quiet
}

var (
	bindNaming = journal.Naming{Prefix: "activemq-bindings", Ext: "bindings"}
	msgNaming  = journal.Naming{Prefix: "activemq-data", Ext: "amq"}
)

// live is a live broker's two journals and a Source behind a listener
// that hands replication Hellos to it, as the server does.
type live struct {
	t       *testing.T
	dirs    [2]string
	j       [2]*journal.FileJournal
	src     *replication.Source
	ln      net.Listener
	seq     atomic.Uint64
	synced  chan struct{}
	lost    chan struct{}
	failbk  chan struct{}
	serving sync.WaitGroup
}

func openJournal(t *testing.T, dir string, nm journal.Naming) *journal.FileJournal {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: dir, FS: aio.OS(aio.NIO, aio.DefaultOptions()), SegmentSize: 128 << 10,
		Prefix: nm.Prefix, Ext: nm.Ext, Logger: quiet, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return j
}

func startLive(t *testing.T, opts replication.SourceOptions) *live {
	t.Helper()
	l := &live{t: t, synced: make(chan struct{}, 10), lost: make(chan struct{}, 10), failbk: make(chan struct{}, 10)}
	for i, nm := range []journal.Naming{bindNaming, msgNaming} {
		l.dirs[i] = t.TempDir()
		l.j[i] = openJournal(t, l.dirs[i], nm)
	}
	l.seq.Store(3)
	opts.NodeID, opts.Seq, opts.Logger = "node-1", l.seq.Load, testLogger(t)
	opts.BackupSynced = func() { l.synced <- struct{}{} }
	opts.BackupLost = func() { l.lost <- struct{}{} }
	opts.FailbackRequested = func() { l.failbk <- struct{}{} }
	l.src = replication.NewSource(l.j[:], opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.ln = ln
	l.serving.Add(1)
	go func() {
		defer l.serving.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			l.serving.Add(1)
			go func() {
				defer l.serving.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				h, f, err := wire.NewDecoder(br).Read()
				if err != nil {
					return
				}
				l.src.Serve(nc, br, f.(*wire.Hello), h.Corr)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		l.src.Close()
		l.serving.Wait()
		for _, j := range l.j {
			j.Close()
		}
	})
	return l
}

func (l *live) url() string { return "tcp://" + l.ln.Addr().String() }

// send appends one message record (ID id) to the messages journal and
// waits for its answer.
func (l *live) send(ctx context.Context, id uint64) error {
	return journal.AppendSync(ctx, l.j[1], journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: bytes.Repeat([]byte{byte(id)}, 700)})
}

// replica is a replica's directories and its Replica.
type replica struct {
	dirs   [2]string
	r      *replication.Replica
	local  atomic.Uint64
	node   atomic.Value
	sets   chan uint64 // every SetLocal value, in order
	cancel context.CancelFunc
	done   chan struct{}
	res    replication.Result
	err    error
}

func startReplica(t *testing.T, liveURL string, mut func(*replication.ReplicaOptions)) *replica {
	t.Helper()
	rp := &replica{sets: make(chan uint64, 100), done: make(chan struct{})}
	rp.dirs = [2]string{t.TempDir(), t.TempDir()}
	opts := replication.ReplicaOptions{URL: liveURL, Group: "g", SelfURL: "tcp://replica:1",
		Journals: []replication.JournalDir{{Dir: rp.dirs[0], Naming: bindNaming}, {Dir: rp.dirs[1], Naming: msgNaming}},
		MaxSaved: 2, Logger: testLogger(t),
		SetLocal: func(seq uint64, node string) error {
			rp.local.Store(seq)
			rp.node.Store(node)
			rp.sets <- seq
			return nil
		}}
	if mut != nil {
		mut(&opts)
	}
	rp.r = replication.NewReplica(opts)
	ctx, cancel := context.WithCancel(context.Background())
	rp.cancel = cancel
	go func() {
		defer close(rp.done)
		rp.res, rp.err = rp.r.Run(ctx)
	}()
	t.Cleanup(func() { rp.stop() })
	return rp
}

func (rp *replica) stop() {
	rp.cancel()
	<-rp.done
}

// load replays a copy of the replica's messages directory (the replica
// may still be writing) and returns the live record IDs.
func (rp *replica) load(t *testing.T) map[uint64]bool {
	t.Helper()
	return loadIDs(t, rp.dirs[1], msgNaming)
}

func loadIDs(t *testing.T, dir string, nm journal.Naming) map[uint64]bool {
	t.Helper()
	cp := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, err := journal.Open(journal.Options{Dir: cp, FS: aio.OS(aio.NIO, aio.DefaultOptions()), SegmentSize: 128 << 10,
		Prefix: nm.Prefix, Ext: nm.Ext, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, err := j.Load(context.Background())
	if err != nil {
		t.Fatalf("load the replica's copy: %v", err)
	}
	ids := map[uint64]bool{}
	for _, r := range res.Records {
		ids[r.ID] = true
	}
	return ids
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestReplicaHoldsEverythingAnswered: a replica attaches to a live that
// already holds data and keeps receiving appends: it syncs (local
// sequence 0 first, the live's once complete), and from then on every
// append the live answered is in the replica's copy at the moment of the
// answer, with no time to catch up afterwards.
func TestReplicaHoldsEverythingAnswered(t *testing.T) {
	l := startLive(t, replication.SourceOptions{Group: "g"})
	ctx := context.Background()
	for id := uint64(1); id <= 600; id++ { // several sealed segments before the replica comes
		if err := l.send(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	rp := startReplica(t, l.url(), nil)
	if got := <-rp.sets; got != 0 {
		t.Fatalf("first SetLocal(%d): a new sync must first mark the copy incomplete (0)", got)
	}
	// Keep appending while it syncs.
	stopLoad := make(chan struct{})
	loadDone := make(chan error, 1)
	go func() {
		id := uint64(1000)
		for {
			select {
			case <-stopLoad:
				loadDone <- nil
				return
			default:
			}
			if err := l.send(ctx, id); err != nil {
				loadDone <- err
				return
			}
			id++
		}
	}()
	wait(t, l.synced, "BackupSynced")
	select {
	case got := <-rp.sets:
		if got != 3 {
			t.Fatalf("SetLocal(%d) at sync end, want the live's sequence 3", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the replica never recorded the completed sync")
	}
	close(stopLoad)
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	if st := l.src.Status(); st.State != replication.StateSynced || st.Peer != "tcp://replica:1" {
		t.Fatalf("live status %+v", st)
	}
	// Now every answered append is on the replica when answered.
	for id := uint64(5000); id < 5050; id++ {
		if err := l.send(ctx, id); err != nil {
			t.Fatal(err)
		}
		ids := rp.load(t)
		if !ids[id] {
			t.Fatalf("append %d was answered but is not in the replica's copy", id)
		}
		if !ids[1] || !ids[600] {
			t.Fatalf("the replica's copy lacks data from before it attached")
		}
	}
}

// TestLostReplicaHoldsAnswers: once a synced replica is gone, answers
// stay held (BackupLost) until ReleaseHeld, then complete.
func TestLostReplicaHoldsAnswers(t *testing.T) {
	l := startLive(t, replication.SourceOptions{})
	ctx := context.Background()
	rp := startReplica(t, l.url(), nil)
	wait(t, l.synced, "BackupSynced")
	if err := l.send(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rp.stop() // the replica goes away
	wait(t, l.lost, "BackupLost")
	answered := make(chan error, 1)
	go func() { answered <- l.send(ctx, 2) }()
	select {
	case err := <-answered:
		t.Fatalf("an append was answered (%v) after the synced replica was lost and before ReleaseHeld", err)
	case <-time.After(300 * time.Millisecond):
	}
	l.src.ReleaseHeld()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ReleaseHeld did not complete the held append")
	}
	if st := l.src.Status(); st.State != replication.StateNone {
		t.Fatalf("status after the loss: %+v", st)
	}
	// A new replica can attach and sync again.
	rp2 := startReplica(t, l.url(), nil)
	wait(t, l.synced, "BackupSynced of a second replica")
	if err := l.send(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if ids := rp2.load(t); !ids[1] || !ids[2] || !ids[3] {
		t.Fatalf("second replica's copy: %v", ids)
	}
}

// TestLostReplicaAfterFailHeld: once the broker stopped serving
// (FailHeld: package ha will never bump the sequence nor call
// ReleaseHeld for this Source again), a synced replica lost afterwards
// holds nothing: appends that wait for it, or come after, are answered
// (with ErrNotReplicated when they waited) instead of waiting forever.
// Seen end to end (TestReplZombiePause): a live resumed after SIGSTOP
// halted, and its StopServing hook hung closing a client connection whose
// queue deletion waited for the replica lost a moment later; the process
// never exited.
func TestLostReplicaAfterFailHeld(t *testing.T) {
	l := startLive(t, replication.SourceOptions{})
	ctx := context.Background()
	rp := startReplica(t, l.url(), nil)
	wait(t, l.synced, "BackupSynced")
	if err := l.send(ctx, 1); err != nil {
		t.Fatal(err)
	}
	l.src.FailHeld() // the broker stops serving
	rp.stop()        // then the replica goes away
	deadline := time.Now().Add(30 * time.Second)
	for l.src.Status().State != replication.StateNone {
		if time.Now().After(deadline) {
			t.Fatal("the live still reports the stopped replica after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	answered := make(chan error, 1)
	go func() { answered <- l.send(ctx, 2) }()
	select {
	case err := <-answered:
		if err != nil && !errors.Is(err, journal.ErrNotReplicated) {
			t.Fatalf("append after the loss: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an append waits for a replica lost after the broker stopped serving: nothing will ever release it")
	}
}

// TestReplicaUnsyncedDropReleases: a replica that leaves before its sync
// completed never gets ReplicaSynced, its local sequence stays 0, and the
// live answers without waiting for it (no BackupLost).
func TestReplicaUnsyncedDropReleases(t *testing.T) {
	l := startLive(t, replication.SourceOptions{SyncTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	for id := uint64(1); id <= 300; id++ {
		if err := l.send(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// A replica whose acknowledgements never come: it acks only what it
	// receives, and we make it never sync by giving it a fake SetLocal
	// failure at the end: simplest, a raw client that registers and
	// then reads without acknowledging.
	nc, err := net.Dial("tcp", l.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var enc wire.Encoder
	enc.Encode(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: wire.ReplicaClientID})
	enc.Encode(0, &wire.ReplicaRegister{URL: "tcp://silent:1"})
	nc.Write(enc.Bytes())
	go io.Copy(io.Discard, nc) // reads everything, acknowledges nothing
	// Appends keep being answered: the replica is not close enough to
	// gate them, and it can never complete a sync.
	for id := uint64(1000); id < 1100; id++ {
		if err := l.send(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-l.synced:
		t.Fatal("BackupSynced for a replica that acknowledged nothing")
	case <-l.lost:
		t.Fatal("BackupLost for a replica that never synced")
	default:
	}
}

// TestSyncSetsAsideOldData: a new sync moves the previous journal files
// to oldreplica.N, keeping at most max-saved copies, and never touches
// lock files.
func TestSyncSetsAsideOldData(t *testing.T) {
	l := startLive(t, replication.SourceOptions{})
	rp := startReplica(t, l.url(), nil)
	wait(t, l.synced, "first sync")
	if err := l.send(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	rp.stop()
	wait(t, l.lost, "BackupLost")
	l.src.ReleaseHeld()
	lock := filepath.Join(rp.dirs[1], "server.lock")
	if err := os.WriteFile(lock, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		again := startReplica(t, l.url(), func(o *replication.ReplicaOptions) {
			o.Journals = []replication.JournalDir{{Dir: rp.dirs[0], Naming: bindNaming}, {Dir: rp.dirs[1], Naming: msgNaming}}
		})
		wait(t, l.synced, "a later sync")
		again.stop()
		wait(t, l.lost, "BackupLost")
		l.src.ReleaseHeld()
	}
	ents, err := os.ReadDir(rp.dirs[1])
	if err != nil {
		t.Fatal(err)
	}
	var olds []string
	for _, e := range ents {
		if e.IsDir() {
			olds = append(olds, e.Name())
		}
	}
	if fmt.Sprint(olds) != "[oldreplica.2 oldreplica.3]" {
		t.Fatalf("saved copies %v, want the newest 2 of 3", olds)
	}
	if b, err := os.ReadFile(lock); err != nil || string(b) != "x" {
		t.Fatalf("the lock file was moved or changed: %q %v", b, err)
	}
	if ids := loadIDs(t, filepath.Join(rp.dirs[1], "oldreplica.3"), msgNaming); !ids[1] {
		t.Fatalf("the saved copy lacks record 1: %v", ids)
	}
}

// TestHandover: a synced replica asks for failback; after Handover the
// replica's Run ends with Handover set and holds everything, and the live
// reports no BackupLost (no new activation sequence is needed).
func TestHandover(t *testing.T) {
	l := startLive(t, replication.SourceOptions{})
	ctx := context.Background()
	rp := startReplica(t, l.url(), nil)
	rp.r.RequestFailback()
	wait(t, l.synced, "BackupSynced")
	wait(t, l.failbk, "FailbackRequested")
	for id := uint64(1); id <= 20; id++ {
		if err := l.send(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.src.Handover(hctx); err != nil {
		t.Fatal(err)
	}
	<-rp.done
	if rp.err != nil || !rp.res.Handover || rp.res.Seq != 3 {
		t.Fatalf("replica ended with %+v, %v", rp.res, rp.err)
	}
	select {
	case <-l.lost:
		t.Fatal("BackupLost after a handover")
	case <-time.After(100 * time.Millisecond):
	}
	if ids := rp.load(t); len(ids) != 20 {
		t.Fatalf("replica copy after handover holds %d records, want 20", len(ids))
	}
}

// TestReplicaRefusesOlderSequence: frames of an older activation sequence
// than one already seen end the link.
func TestReplicaRefusesOlderSequence(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		dec := wire.NewDecoder(nc)
		dec.Read() // Hello
		var enc wire.Encoder
		enc.Encode(1, &wire.Welcome{Version: 1})
		nc.Write(enc.Bytes())
		dec.Read() // ReplicaRegister
		enc.Reset()
		enc.Encode(0, &wire.ReplicaStart{NodeID: "n", Seq: 7, Journals: 2})
		enc.Encode(0, &wire.ReplicaData{Seq: 7, Journal: 1, Segment: 1, SegmentSize: 4096, Data: []byte("x")})
		enc.Encode(0, &wire.ReplicaData{Seq: 6, Journal: 1, Segment: 1, Offset: 1, SegmentSize: 4096, Data: []byte("y")})
		nc.Write(enc.Bytes())
		io.Copy(io.Discard, nc)
	}()
	rp := startReplica(t, "tcp://"+ln.Addr().String(), nil)
	<-rp.done
	if rp.err == nil || !bytes.Contains([]byte(rp.err.Error()), []byte("activation sequence 6 after 7")) {
		t.Fatalf("Run ended with %v, want a refusal of the older sequence", rp.err)
	}
}

// TestReplicaReconnectReplacesSilentLink: a replica that registers again
// (its previous connection silent, say a partition this side has not
// noticed) replaces its previous link at once instead of being refused
// until the old link's TTL runs out.
func TestReplicaReconnectReplacesSilentLink(t *testing.T) {
	l := startLive(t, replication.SourceOptions{TTL: time.Hour}) // the old link would never time out
	startReplica(t, l.url(), nil)
	wait(t, l.synced, "BackupSynced of the first connection")
	second := startReplica(t, l.url(), nil) // the same SelfURL: the same replica again
	wait(t, l.lost, "BackupLost of the replaced connection")
	l.src.ReleaseHeld()
	wait(t, l.synced, "BackupSynced of the new connection")
	if err := l.send(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	if ids := second.load(t); !ids[7] {
		t.Fatalf("the new connection's copy lacks record 7: %v", ids)
	}
}
