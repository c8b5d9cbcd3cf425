package replication

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// AckLevel is when the replica acknowledges what it received.
type AckLevel int

// Acknowledgement levels (see the package documentation).
const (
	// AckDurable: after the replica's fdatasync (Tandem's default).
	AckDurable AckLevel = iota
	// AckReceived: once written to the replica's files, before the
	// fdatasync (Artemis's level).
	AckReceived
)

// ReplicaOptions configure the replica side.
type ReplicaOptions struct {
	// URL is the live's acceptor, tcp://host:port.
	URL            string
	User, Password string // the cluster credentials
	Group          string // this broker's group-name
	SelfURL        string // where this broker serves once it activates
	NodeID         string // this broker's node ID (may be empty)
	LocalSeq       uint64 // this broker's local activation sequence
	// Journals are the journal directories in the order of their wire
	// journal IDs (bindings, messages, ...): the live must send as many.
	Journals []JournalDir
	// MaxSaved is max-saved-replicated-journals-size: how many earlier
	// copies a new sync keeps (Artemis's default 2; 0 deletes them).
	MaxSaved     int
	AckLevel     AckLevel
	PingInterval time.Duration // default 2 s
	TTL          time.Duration // default 60 s: a live silent this long is gone
	Logger       *slog.Logger
	// SetLocal makes the local activation sequence and node ID durable
	// (the server lock of this broker's data directory). The replica
	// calls it with 0 before it writes any journal file (its copy is
	// incomplete from then on) and with the live's sequence once the sync
	// completes.
	SetLocal func(seq uint64, nodeID string) error
	// Synced is called after SetLocal made the completed sync durable.
	Synced func(seq uint64, nodeID string)
	// TLS, when set, makes the connection to the live TLS (the cluster
	// connector's sslEnabled); its ServerName, when empty, is the live's
	// host.
	TLS *tls.Config
}

// StorageError wraps a failure of this broker's own storage while
// replicating (a write, fsync, create or remove of its copy, or recording
// its local sequence): fatal for the broker, unlike a lost connection.
type StorageError struct{ Err error }

func (e *StorageError) Error() string { return "replication: storage error: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StorageError) Unwrap() error { return e.Err }

func storageErr(err error) error {
	if err == nil {
		return nil
	}
	return &StorageError{Err: err}
}

// Result is how a replication ended without an error of its own.
type Result struct {
	// Handover: the live handed over (failback): it stopped serving, this
	// replica holds everything it wrote, and it released its lock.
	Handover bool
	Seq      uint64 // the live's activation sequence at the handover
	Synced   bool   // the sync had completed
}

// Replica is the replica side of one replication connection.
type Replica struct {
	opts ReplicaOptions
	log  *slog.Logger

	mu        sync.Mutex
	c         *fconn
	synced    bool
	failback  bool // asked to request failback once synced
	requested bool
	maxSeq    uint64
	written   int64
	since     time.Time
}

// NewReplica returns a replica; Run connects it.
func NewReplica(opts ReplicaOptions) *Replica {
	if opts.PingInterval <= 0 {
		opts.PingInterval = 2 * time.Second
	}
	if opts.TTL <= 0 {
		opts.TTL = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SetLocal == nil {
		opts.SetLocal = func(uint64, string) error { return nil }
	}
	if opts.Synced == nil {
		opts.Synced = func(uint64, string) {}
	}
	return &Replica{opts: opts, log: opts.Logger.With("replication", "replica", "live", opts.URL), since: time.Now()}
}

// RequestFailback asks the live to hand over once this replica is synced
// (at once if it already is).
func (r *Replica) RequestFailback() {
	r.mu.Lock()
	r.failback = true
	c, send := r.c, r.synced && !r.requested
	if send {
		r.requested = true
	}
	r.mu.Unlock()
	if send && c != nil {
		c.send(0, &wire.ReplicaFailback{})
	}
}

// ReplicaStatus is the replica's view for /status.
type ReplicaStatus struct {
	State   State
	Peer    string
	Written int64 // journal bytes received in this sync
	Since   time.Time
}

// Status returns the replica's state.
func (r *Replica) Status() ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReplicaStatus{State: StateNone, Peer: r.opts.URL, Written: r.written, Since: r.since}
	if r.c != nil {
		st.State = StateSyncing
		if r.synced {
			st.State = StateSynced
		}
	}
	return st
}

// Run connects to the live, registers, receives a full copy of both
// journals and then the live stream, until the link ends: the live handed
// over (Result.Handover), ctx ended, or an error (the connection, a
// storage error of this broker, a refusal).
func (r *Replica) Run(ctx context.Context) (Result, error) {
	hostport, ok := strings.CutPrefix(r.opts.URL, "tcp://")
	if !ok {
		return Result{}, fmt.Errorf("replication: live URL %q: want tcp://host:port", r.opts.URL)
	}
	hostport, _, _ = strings.Cut(hostport, "?")
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return Result{}, fmt.Errorf("replication: connect to the live %s: %w", r.opts.URL, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if r.opts.TLS != nil {
		host, _, _ := net.SplitHostPort(hostport)
		tc := tls.Client(nc, tlsconfig.ForHost(r.opts.TLS, host))
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return Result{}, fmt.Errorf("replication: TLS handshake with the live %s: %w", r.opts.URL, err)
		}
		nc = tc
	}
	br := bufio.NewReaderSize(nc, 2<<20)
	c := newFconn(nc, br, r.opts.TTL)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()

	hello := &wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.Version, ClientID: wire.ReplicaClientID,
		User: r.opts.User, Password: r.opts.Password, ConnectionTTL: uint32(r.opts.TTL / time.Millisecond)}
	if err := c.send(1, hello); err != nil {
		return Result{}, err
	}
	if _, _, err := c.expect(wire.TypeWelcome, 10*time.Second); err != nil {
		return Result{}, r.ctxErr(ctx, err)
	}
	reg := &wire.ReplicaRegister{NodeID: r.opts.NodeID, Group: r.opts.Group, URL: r.opts.SelfURL, LocalSeq: r.opts.LocalSeq}
	if err := c.send(0, reg); err != nil {
		return Result{}, err
	}
	_, f, err := c.expect(wire.TypeReplicaStart, 60*time.Second)
	if err != nil {
		return Result{}, r.ctxErr(ctx, err)
	}
	start := *f.(*wire.ReplicaStart)
	r.maxSeq = start.Seq

	// From here on the local copy is incomplete until ReplicaSynced: say
	// so durably before touching a file.
	if err := r.opts.SetLocal(0, start.NodeID); err != nil {
		return Result{}, storageErr(fmt.Errorf("reset the local activation sequence: %w", err))
	}
	if int(start.Journals) != len(r.opts.Journals) {
		return Result{}, fmt.Errorf("replication: the live replicates %d journals, this broker keeps %d: different versions or configurations", start.Journals, len(r.opts.Journals))
	}
	dirs := make([]*copyDir, len(r.opts.Journals))
	for i, jd := range r.opts.Journals {
		where, err := setAside(jd.Dir, r.opts.MaxSaved, r.log)
		if err != nil {
			return Result{}, storageErr(err)
		}
		if where != "" {
			r.log.Info("a new sync starts: the previous journal files were moved aside", "dir", jd.Dir, "to", where,
				"max_saved", r.opts.MaxSaved)
		}
		dirs[i] = newCopyDir(jd)
	}
	defer func() {
		for _, d := range dirs {
			d.close()
		}
	}()
	r.mu.Lock()
	r.c, r.synced, r.requested, r.written, r.since = c, false, false, 0, time.Now()
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.c = nil
		r.since = time.Now()
		r.mu.Unlock()
	}()
	r.log.Info("initial sync started", "node_id", start.NodeID, "seq", start.Seq, "stream", start.StreamID)

	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	go r.ping(pctx, c)

	res, err := r.receive(c, br, dirs)
	return res, r.ctxErr(ctx, err)
}

func (r *Replica) ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (r *Replica) ping(ctx context.Context, c *fconn) {
	t := time.NewTicker(r.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.send(0, &wire.Ping{}); err != nil {
				return
			}
		}
	}
}

// receive applies frames until the link ends.
func (r *Replica) receive(c *fconn, br *bufio.Reader, dirs []*copyDir) (Result, error) {
	dirty := make([]bool, len(dirs))
	unacked := 0
	flush := func() error {
		for i, d := range dirs {
			if !dirty[i] {
				continue
			}
			var p = d.written
			// Before the sync completes nothing depends on the copy being
			// durable (this broker cannot activate with it, and it syncs
			// everything before it records the completed sync), so the bulk
			// copy acknowledges what it received and syncs once a segment.
			if r.opts.AckLevel == AckDurable && !d.bulk {
				var err error
				if p, err = d.sync(); err != nil {
					return storageErr(err)
				}
			}
			if err := c.send(0, &wire.ReplicaAck{Journal: uint8(i), Segment: p.Seq, Offset: uint64(p.Offset)}); err != nil {
				return err
			}
			dirty[i] = false
		}
		return nil
	}
	syncAll := func() error {
		for _, d := range dirs {
			if _, err := d.sync(); err != nil {
				return storageErr(err)
			}
			if err := d.waitBulk(); err != nil {
				return storageErr(err)
			}
		}
		return nil
	}
	for {
		h, f, err := c.read(r.opts.TTL)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("nothing received from the live for the connection TTL (%v)", r.opts.TTL)
			}
			return Result{Synced: r.isSynced()}, fmt.Errorf("replication: %w", err)
		}
		if seq, ok := frameSeq(f); ok {
			if seq < r.maxSeq {
				return Result{Synced: r.isSynced()}, fmt.Errorf("replication: %v of activation sequence %d after %d: refused (an older live)", h.Type, seq, r.maxSeq)
			}
			r.maxSeq = seq
		}
		switch f := f.(type) {
		case *wire.ReplicaData:
			if int(f.Journal) >= len(dirs) {
				return Result{Synced: r.isSynced()}, fmt.Errorf("replication: data for journal %d of %d", f.Journal, len(dirs))
			}
			d := dirs[f.Journal]
			if err := d.write(f.Segment, int64(f.Offset), int64(f.SegmentSize), f.Data, f.Sealed); err != nil {
				return Result{Synced: r.isSynced()}, storageErr(err)
			}
			if err := d.dropBelow(f.Oldest); err != nil {
				return Result{Synced: r.isSynced()}, storageErr(err)
			}
			dirty[f.Journal] = true
			if f.Sealed {
				// One fdatasync per sealed segment (the bulk copy and the
				// received level sync no more often), and its file closed.
				if _, err := d.sync(); err != nil {
					return Result{Synced: r.isSynced()}, storageErr(err)
				}
			}
			r.mu.Lock()
			r.written += int64(len(f.Data))
			r.mu.Unlock()
		case *wire.ReplicaSynced:
			if err := syncAll(); err != nil {
				return Result{}, err
			}
			for _, d := range dirs {
				d.synced()
			}
			if err := r.opts.SetLocal(f.Seq, f.NodeID); err != nil {
				return Result{}, storageErr(fmt.Errorf("record the completed sync: %w", err))
			}
			r.mu.Lock()
			r.synced, r.since = true, time.Now()
			ask := r.failback && !r.requested
			r.requested = r.requested || ask
			r.mu.Unlock()
			r.log.Info("sync complete: this broker holds a full copy", "seq", f.Seq, "node_id", f.NodeID)
			r.opts.Synced(f.Seq, f.NodeID)
			if ask {
				if err := c.send(0, &wire.ReplicaFailback{}); err != nil {
					return Result{Synced: true}, err
				}
			}
		case *wire.ReplicaHandover:
			if err := syncAll(); err != nil {
				return Result{}, err
			}
			r.log.Info("the live handed over", "seq", f.Seq)
			return Result{Handover: true, Seq: f.Seq, Synced: r.isSynced()}, nil
		case *wire.Ping:
			if err := c.send(h.Corr, &wire.Pong{}); err != nil {
				return Result{Synced: r.isSynced()}, err
			}
		case *wire.Pong:
		case *wire.Error:
			return Result{Synced: r.isSynced()}, &RemoteError{Code: f.Code, Message: f.Message}
		default:
			return Result{Synced: r.isSynced()}, fmt.Errorf("replication: unexpected %v frame from the live", h.Type)
		}
		// Acknowledge once nothing more is waiting to be read: one
		// fdatasync and one ack per burst, not per frame; and at least
		// every ackEvery bytes while a burst goes on.
		if data, ok := f.(*wire.ReplicaData); ok {
			unacked += len(data.Data)
		}
		if br.Buffered() < wire.HeaderSize || unacked >= ackEvery {
			unacked = 0
			if err := flush(); err != nil {
				return Result{Synced: r.isSynced()}, err
			}
		}
	}
}

func (r *Replica) isSynced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced
}

// ackEvery bounds the bytes a replica receives between two
// acknowledgements while the live keeps sending.
const ackEvery = 1 << 20

// frameSeq returns the activation sequence a live frame carries.
func frameSeq(f wire.Frame) (uint64, bool) {
	switch f := f.(type) {
	case *wire.ReplicaData:
		return f.Seq, true
	case *wire.ReplicaSynced:
		return f.Seq, true
	case *wire.ReplicaHandover:
		return f.Seq, true
	}
	return 0, false
}
