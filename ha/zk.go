package ha

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tandemmq/tandem/lockfile"
)

// ZooKeeper layout (version 1). ns is ZKOptions.Namespace ("tandem" when
// empty), group ZKOptions.Group ("default" when empty):
//
//	/<ns>/<group>/activation-sequence  persistent; 13 bytes: version 1,
//	                                   C as int64 big-endian, CRC32C
//	                                   (Castagnoli) of the first 9 bytes,
//	                                   big-endian. Changed only by
//	                                   compare-and-set on the znode version.
//	/<ns>/<group>/lock                 ephemeral node of the live's session;
//	                                   version byte 1, then JSON
//	                                   {"node_id","url","seq"}.
//
// Anything else in those znodes is refused with an error naming the znode.
const (
	zkFormatVersion = 1
	zkSeqSize       = 13
	zkSeqNode       = "activation-sequence"
	zkLockNode      = "lock"
	// DefaultZKSessionTimeout is session-ms's default (Artemis's).
	DefaultZKSessionTimeout = 18 * time.Second
	// DefaultZKConnectTimeout is connection-ms's default: how long Dial
	// waits for a first session.
	DefaultZKConnectTimeout = 8 * time.Second
)

var castagnoliZK = crc32.MakeTable(crc32.Castagnoli)

// ZKOptions configure a ZKCoordinator (the <manager> properties).
type ZKOptions struct {
	// ConnectString lists the ensemble: host:port,host:port,...
	ConnectString string
	// SessionTimeout is session-ms (default 18 s). ZooKeeper negotiates
	// it into [minSessionTimeout, maxSessionTimeout] (by default 2 and 20
	// ticks); the lease is derived from the smaller of the requested and
	// the negotiated one.
	SessionTimeout time.Duration
	// ConnectTimeout bounds the wait for the first session (connection-ms,
	// default 8 s).
	ConnectTimeout time.Duration
	// Namespace (namespace) and Group (group-name) name the pair's znodes.
	Namespace, Group string
	// URL is this broker's announced tcp URL, written into the lock so
	// backups can replicate from the live.
	URL string
	// AllowOutOfRangeSession accepts a session-ms outside 2..20 ticks of
	// the ensemble (ZooKeeper then negotiates one inside its bounds).
	// Without it Dial refuses, as R25 says (only when the ensemble tells
	// its tick: the "conf" four-letter word).
	AllowOutOfRangeSession bool
	// Logger receives the adapter's and the ZooKeeper client's lines;
	// default slog.Default().
	Logger *slog.Logger

	dialer zk.Dialer // tests: a partitionable network
}

// EnsembleConf is what the "conf" four-letter word tells about the
// ensemble (zero when unknown).
type EnsembleConf struct {
	Server                                     string
	Tick, MinSessionTimeout, MaxSessionTimeout time.Duration
}

// CoordEventKind says what a coordinator's monitor saw.
type CoordEventKind int

// Coordinator events.
const (
	CoordVerified     CoordEventKind = iota // we hold the lock (Start: when the check was sent)
	CoordLockLost                           // the lock is not ours any more (Err)
	CoordDisconnected                       // the connection to ZooKeeper is lost
	CoordConnected                          // connected with a session again
)

// CoordEvent is one report of a coordinator's monitor.
type CoordEvent struct {
	Kind  CoordEventKind
	Start time.Time
	Err   error
}

// ZKCoordinator is the ZooKeeper adapter of replication: the lease lock
// (an ephemeral znode of the session) and the coordinated activation
// sequence (a compare-and-set counter). Its methods are safe for
// concurrent use; operations honour their context (a request still in
// flight when the context ends finishes on its own goroutine, which Close
// waits for).
type ZKCoordinator struct {
	opts                    ZKOptions
	log                     *slog.Logger
	conn                    *zk.Conn
	servers                 []string
	base, seqPath, lockPath string
	ens                     EnsembleConf
	requested, effective    time.Duration
	lease, verifyEvery      time.Duration
	negotiated              atomic.Int64 // ms, of the last session
	firstSession            chan struct{}
	firstOnce               sync.Once
	calls                   sync.WaitGroup
	evMu                    sync.Mutex
	evQueue                 []CoordEvent
	evSignal                chan struct{}
	ownerMu                 sync.Mutex
	owner                   int64 // session that created our lock znode; 0 when not holding
	closeOnce               sync.Once
	monitorRunning          atomic.Bool
}

// ZKLease is the lease a live may trust after a verification of its lock,
// for a session timeout and the ensemble's tickTime (0 = unknown):
// 2/3 of the session minus one tick.
//
// Why: a verification is a sync through the leader followed by a read of
// the lock znode, sent at Start. If it shows our ephemeral node, the
// leader had not expired our session at some instant after Start. The
// leader expires a session once it has heard nothing from it for the
// session timeout; it hears through its followers, which forward the
// sessions they saw at least every half tick while connected; our client
// talks to its server at least every sixth of the session (the monitor)
// and every third (its pings). So the leader cannot expire us before
// Start + 5/6 session - 1 tick, and no other broker can take the lock
// before that. The lease, 2/3 session - 1 tick, leaves a sixth of the
// session for clock rate differences and for the time between the check
// of CanAck and the acknowledgement leaving the broker (Artemis asks for
// pauses below a third of session-ms). ZooKeeper never negotiates a
// session below two ticks, so an unknown tick is taken as half the
// session: a lease of a sixth of it (safe, but short: whitelist "conf").
func ZKLease(session, tick time.Duration) time.Duration {
	if tick <= 0 || tick > session/2 {
		tick = session / 2
	}
	return session*2/3 - tick
}

// DialZK connects to the ensemble and waits for a first session (at most
// ConnectTimeout). It asks the ensemble for its tick ("conf"), refuses a
// session-ms outside 2..20 ticks (unless AllowOutOfRangeSession), derives
// the lease from the negotiated session timeout and creates the group's
// parent znodes.
func DialZK(ctx context.Context, o ZKOptions) (*ZKCoordinator, error) {
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultZKSessionTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultZKConnectTimeout
	}
	if o.Namespace == "" {
		o.Namespace = "tandem"
	}
	if o.Group == "" {
		o.Group = "default"
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	servers, err := parseConnectString(o.ConnectString)
	if err != nil {
		return nil, err
	}
	base, err := zkBase(o.Namespace, o.Group)
	if err != nil {
		return nil, err
	}
	z := &ZKCoordinator{opts: o, log: log.With("zookeeper", o.ConnectString, "znode", base), servers: servers,
		base: base, seqPath: base + "/" + zkSeqNode, lockPath: base + "/" + zkLockNode,
		requested: o.SessionTimeout, firstSession: make(chan struct{}), evSignal: make(chan struct{}, 1)}

	cctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	z.ens = ProbeEnsemble(cctx, servers)
	if t := z.ens.Tick; t > 0 {
		lo, hi := 2*t, 20*t
		if o.SessionTimeout < lo || o.SessionTimeout > hi {
			msg := fmt.Sprintf("session-ms %d is outside 2..20 ticks of the ZooKeeper ensemble (tickTime=%d ms on %s: %d..%d ms)",
				o.SessionTimeout.Milliseconds(), t.Milliseconds(), z.ens.Server, lo.Milliseconds(), hi.Milliseconds())
			if !o.AllowOutOfRangeSession {
				return nil, errors.New("ha: " + msg)
			}
			z.log.Warn(msg + "; ZooKeeper negotiates a session timeout within its bounds and the lease follows it")
		}
	} else {
		z.log.Warn("the ZooKeeper ensemble does not answer the conf four-letter word (add conf to 4lw.commands.whitelist): " +
			"its tick is unknown, so session-ms is not checked against it and the lease is a sixth of the session timeout")
	}

	dialer := o.dialer
	if dialer == nil {
		dialer = net.DialTimeout
	}
	z.conn, _, err = zk.Connect(servers, o.SessionTimeout, zk.WithLogger(zkLogger{z}), zk.WithLogInfo(true),
		zk.WithEventCallback(z.sessionEvent), zk.WithDialer(dialer))
	if err != nil {
		return nil, fmt.Errorf("ha: ZooKeeper %s: %w", o.ConnectString, err)
	}
	select {
	case <-z.firstSession:
	case <-cctx.Done():
		z.Close()
		return nil, fmt.Errorf("ha: no ZooKeeper session with %s within %v (connection-ms): is a majority of the ensemble up?", o.ConnectString, o.ConnectTimeout)
	}
	neg := time.Duration(z.negotiated.Load()) * time.Millisecond
	z.effective = min(z.requested, neg)
	z.lease = ZKLease(z.effective, z.ens.Tick)
	z.verifyEvery = max(min(z.effective/6, z.lease/3), time.Millisecond)
	if neg < z.requested {
		z.log.Warn("ZooKeeper negotiated a shorter session timeout than session-ms: the lease follows it",
			"requested_ms", z.requested.Milliseconds(), "negotiated_ms", neg.Milliseconds())
	}
	z.log.Info("ZooKeeper session", "session_ms", z.effective.Milliseconds(), "tick_ms", z.ens.Tick.Milliseconds(),
		"lease_ms", z.lease.Milliseconds(), "verify_every_ms", z.verifyEvery.Milliseconds())
	if err := z.ensurePath(cctx, z.base); err != nil {
		z.Close()
		return nil, err
	}
	return z, nil
}

func parseConnectString(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.Contains(p, "/") {
			return nil, fmt.Errorf("ha: connect-string %q: a chroot suffix is not supported (use the namespace property)", s)
		}
		if !strings.Contains(p, ":") {
			p += ":2181" // ZooKeeper's default client port
		}
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			return nil, fmt.Errorf("ha: connect-string %q: %q: want host:port", s, p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("ha: connect-string is empty")
	}
	return out, nil
}

// zkBase returns /<ns>/<group>, refusing components ZooKeeper would.
func zkBase(ns, group string) (string, error) {
	var parts []string
	for _, s := range []struct{ what, v string }{{"namespace", ns}, {"group-name", group}} {
		v := strings.Trim(s.v, "/")
		for _, c := range strings.Split(v, "/") {
			if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "\x00") || c == "zookeeper" && len(parts) == 0 {
				return "", fmt.Errorf("ha: %s %q is not a valid ZooKeeper path component", s.what, s.v)
			}
			parts = append(parts, c)
		}
	}
	return "/" + path.Join(parts...), nil
}

// ProbeEnsemble asks the servers, in order, for their configuration with
// the "conf" four-letter word and returns the first answer (zero when no
// server answers it, for example when it is not whitelisted).
func ProbeEnsemble(ctx context.Context, servers []string) EnsembleConf {
	for _, s := range servers {
		if c, err := zkConf(ctx, s); err == nil {
			return c
		}
	}
	return EnsembleConf{}
}

func zkConf(ctx context.Context, addr string) (EnsembleConf, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return EnsembleConf{}, err
	}
	defer c.Close()
	dl, _ := dctx.Deadline()
	_ = c.SetDeadline(dl)
	// No newline: an unread one makes the server reset the connection.
	if _, err := io.WriteString(c, "conf"); err != nil {
		return EnsembleConf{}, err
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<16))
	if err != nil && len(b) == 0 {
		return EnsembleConf{}, err
	}
	conf := EnsembleConf{Server: addr}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			continue
		}
		switch k {
		case "tickTime":
			conf.Tick = time.Duration(ms) * time.Millisecond
		case "minSessionTimeout":
			conf.MinSessionTimeout = time.Duration(ms) * time.Millisecond
		case "maxSessionTimeout":
			conf.MaxSessionTimeout = time.Duration(ms) * time.Millisecond
		}
	}
	if conf.Tick == 0 {
		return EnsembleConf{}, fmt.Errorf("ha: %s: no tickTime in the answer to conf: %q", addr, strings.TrimSpace(string(b)))
	}
	return conf, nil
}

// zkLogger takes the go-zookeeper client's lines: the negotiated session
// timeout (the client has no accessor for it) and the rest at debug level.
type zkLogger struct{ z *ZKCoordinator }

func (l zkLogger) Printf(format string, args ...any) {
	if format == "authenticated: id=%d, timeout=%d" && len(args) == 2 {
		if to, ok := args[1].(int32); ok {
			l.z.authenticated(time.Duration(to) * time.Millisecond)
		}
	}
	l.z.log.Debug("zookeeper client: " + fmt.Sprintf(format, args...))
}

func (z *ZKCoordinator) authenticated(timeout time.Duration) {
	z.negotiated.Store(timeout.Milliseconds())
	z.firstOnce.Do(func() { close(z.firstSession) })
}

// sessionEvent runs on the client's goroutines: queue, never block.
func (z *ZKCoordinator) sessionEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	var ce CoordEvent
	switch ev.State {
	case zk.StateDisconnected:
		ce = CoordEvent{Kind: CoordDisconnected}
	case zk.StateHasSession:
		ce = CoordEvent{Kind: CoordConnected}
	case zk.StateExpired:
		z.ownerMu.Lock()
		z.owner = 0
		z.ownerMu.Unlock()
		ce = CoordEvent{Kind: CoordLockLost, Err: fmt.Errorf("%w: %w", ErrLost, zk.ErrSessionExpired)}
	default:
		return
	}
	z.evMu.Lock()
	z.evQueue = append(z.evQueue, ce)
	z.evMu.Unlock()
	select {
	case z.evSignal <- struct{}{}:
	default:
	}
}

// Lease returns the lease for ReplConfig.Lease (ZKLease of the effective
// session timeout and the tick).
func (z *ZKCoordinator) Lease() time.Duration { return z.lease }

// SessionTimeout returns the effective session timeout: the smaller of
// session-ms and the negotiated one.
func (z *ZKCoordinator) SessionTimeout() time.Duration { return z.effective }

// Negotiated returns the session timeout ZooKeeper granted the current
// session.
func (z *ZKCoordinator) Negotiated() time.Duration {
	return time.Duration(z.negotiated.Load()) * time.Millisecond
}

// Ensemble returns what "conf" told (zero when unknown).
func (z *ZKCoordinator) Ensemble() EnsembleConf { return z.ens }

// VerifyInterval returns the monitor's period.
func (z *ZKCoordinator) VerifyInterval() time.Duration { return z.verifyEvery }

// SessionID returns the current session's ID.
func (z *ZKCoordinator) SessionID() int64 { return z.conn.SessionID() }

// SequencePath and LockPath name the znodes.
func (z *ZKCoordinator) SequencePath() string { return z.seqPath }

// LockPath names the lock znode.
func (z *ZKCoordinator) LockPath() string { return z.lockPath }

// Describe names the coordinator for logs.
func (z *ZKCoordinator) Describe() string { return "zookeeper " + z.opts.ConnectString + " " + z.base }

// Close ends the session (the lock znode goes with it) and waits for the
// requests still in flight.
func (z *ZKCoordinator) Close() error {
	z.closeOnce.Do(func() {
		if z.conn != nil {
			z.conn.Close()
		}
	})
	z.calls.Wait()
	return nil
}

// call runs fn (a blocking client request) until it returns or ctx ends.
func (z *ZKCoordinator) call(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	z.calls.Add(1)
	go func() {
		defer z.calls.Done()
		done <- fn()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (z *ZKCoordinator) ensurePath(ctx context.Context, p string) error {
	cur := ""
	for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		cur += "/" + c
		err := z.call(ctx, func() error {
			_, err := z.conn.Create(cur, nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
			return err
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("ha: ZooKeeper: create %s: %w", cur, err)
		}
	}
	return nil
}

// EncodeSequence returns the activation-sequence znode's content for c.
func EncodeSequence(c int64) []byte {
	b := make([]byte, zkSeqSize)
	b[0] = zkFormatVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(c))
	binary.BigEndian.PutUint32(b[9:], crc32.Checksum(b[:9], castagnoliZK))
	return b
}

// DecodeSequence parses the activation-sequence znode's content; where
// names the znode in errors.
func DecodeSequence(where string, b []byte) (int64, error) {
	if len(b) != zkSeqSize {
		return 0, fmt.Errorf("ha: ZooKeeper %s: %d bytes, want %d (version 1, int64, CRC32C): not written by Tandem", where, len(b), zkSeqSize)
	}
	if b[0] != zkFormatVersion {
		return 0, fmt.Errorf("ha: ZooKeeper %s: format version %d, want %d", where, b[0], zkFormatVersion)
	}
	if want, got := binary.BigEndian.Uint32(b[9:]), crc32.Checksum(b[:9], castagnoliZK); want != got {
		return 0, fmt.Errorf("ha: ZooKeeper %s: CRC mismatch: stored %08x, computed %08x", where, want, got)
	}
	return int64(binary.BigEndian.Uint64(b[1:9])), nil
}

// EncodeLock returns the lock znode's content.
func EncodeLock(h LockHolder) []byte {
	j, _ := json.Marshal(struct {
		NodeID string `json:"node_id"`
		URL    string `json:"url"`
		Seq    uint64 `json:"seq"`
	}{h.NodeID, h.URL, h.Seq})
	return append([]byte{zkFormatVersion}, j...)
}

// DecodeLock parses the lock znode's content.
func DecodeLock(where string, b []byte) (LockHolder, error) {
	if len(b) < 1 || b[0] != zkFormatVersion {
		return LockHolder{}, fmt.Errorf("ha: ZooKeeper %s: not a version %d lock record: not written by Tandem", where, zkFormatVersion)
	}
	var h LockHolder
	dec := json.NewDecoder(strings.NewReader(string(b[1:])))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return LockHolder{}, fmt.Errorf("ha: ZooKeeper %s: bad lock record: %w", where, err)
	}
	h.Held = true
	return h, nil
}

// ReadCoordinated reads C (0 when the znode does not exist yet).
func (z *ZKCoordinator) ReadCoordinated(ctx context.Context) (int64, error) {
	c, _, err := z.readSeq(ctx)
	return c, err
}

// readSeq returns C and the znode version (-1 when missing).
func (z *ZKCoordinator) readSeq(ctx context.Context) (int64, int32, error) {
	var data []byte
	var st *zk.Stat
	err := z.call(ctx, func() (err error) {
		data, st, err = z.conn.Get(z.seqPath)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return 0, -1, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("ha: ZooKeeper: read %s: %w", z.seqPath, err)
	}
	c, err := DecodeSequence(z.seqPath, data)
	return c, st.Version, err
}

// CASCoordinated sets C to newC if it is old (by the znode's version);
// false, nil when it was not.
func (z *ZKCoordinator) CASCoordinated(ctx context.Context, old, newC int64) (bool, error) {
	cur, ver, err := z.readSeq(ctx)
	if err != nil {
		return false, err
	}
	if cur != old {
		return false, nil
	}
	data := EncodeSequence(newC)
	if ver < 0 {
		err = z.call(ctx, func() error {
			_, err := z.conn.Create(z.seqPath, data, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
			return err
		})
		if errors.Is(err, zk.ErrNodeExists) {
			return false, nil
		}
	} else {
		err = z.call(ctx, func() error {
			_, err := z.conn.Set(z.seqPath, data, ver)
			return err
		})
		if errors.Is(err, zk.ErrBadVersion) {
			return false, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("ha: ZooKeeper: set %s %d -> %d: %w", z.seqPath, old, newC, err)
	}
	return true, nil
}

// SetCoordinated sets C unconditionally (disaster recovery: `tandem
// activation set --remote`), also over content Tandem cannot read.
func (z *ZKCoordinator) SetCoordinated(ctx context.Context, c int64) error {
	data := EncodeSequence(c)
	var ok bool
	err := z.call(ctx, func() (err error) { ok, _, err = z.conn.Exists(z.seqPath); return err })
	if err == nil {
		err = z.call(ctx, func() error {
			if !ok {
				_, err := z.conn.Create(z.seqPath, data, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
				return err
			}
			_, err := z.conn.Set(z.seqPath, data, -1)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("ha: ZooKeeper: set %s to %d: %w", z.seqPath, c, err)
	}
	return nil
}

func (z *ZKCoordinator) getOwner() int64 {
	z.ownerMu.Lock()
	defer z.ownerMu.Unlock()
	return z.owner
}

// TryLock tries once to create the lock znode (ephemeral, of this
// session) with our node ID, URL and seq. A lock znode of this very
// session (a create whose answer was lost) counts as acquired.
func (z *ZKCoordinator) TryLock(ctx context.Context, nodeID lockfile.NodeID, seq uint64) (bool, error) {
	data := EncodeLock(LockHolder{NodeID: nodeID.String(), URL: z.opts.URL, Seq: seq})
	err := z.call(ctx, func() error {
		_, err := z.conn.Create(z.lockPath, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		if err := z.ensurePath(ctx, z.base); err != nil {
			return false, err
		}
		return z.TryLock(ctx, nodeID, seq)
	}
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return false, fmt.Errorf("ha: ZooKeeper: create %s: %w", z.lockPath, err)
	}
	// Who owns it now? Ours only if its owner is our current session.
	var ok bool
	var st *zk.Stat
	if err := z.call(ctx, func() (err error) { ok, st, err = z.conn.Exists(z.lockPath); return err }); err != nil {
		return false, fmt.Errorf("ha: ZooKeeper: exists %s: %w", z.lockPath, err)
	}
	if !ok || st.EphemeralOwner == 0 || st.EphemeralOwner != z.conn.SessionID() {
		return false, nil
	}
	z.ownerMu.Lock()
	z.owner = st.EphemeralOwner
	z.ownerMu.Unlock()
	return true, nil
}

// ReadLock reads who holds the lock. A lock znode of our own session that
// we do not hold (left by an operation whose answer was lost) is deleted
// and reported free; one of a previous session of this broker (same URL)
// is reported Mine.
func (z *ZKCoordinator) ReadLock(ctx context.Context) (LockHolder, error) {
	var data []byte
	var st *zk.Stat
	err := z.call(ctx, func() (err error) { data, st, err = z.conn.Get(z.lockPath); return err })
	if errors.Is(err, zk.ErrNoNode) {
		return LockHolder{}, nil
	}
	if err != nil {
		return LockHolder{}, fmt.Errorf("ha: ZooKeeper: read %s: %w", z.lockPath, err)
	}
	if st.EphemeralOwner != 0 && st.EphemeralOwner == z.conn.SessionID() && z.getOwner() != st.EphemeralOwner {
		err := z.call(ctx, func() error { return z.conn.Delete(z.lockPath, st.Version) })
		if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return LockHolder{}, fmt.Errorf("ha: ZooKeeper: delete our stray %s: %w", z.lockPath, err)
		}
		z.log.Warn("deleted a lock znode of our own session that the activation does not hold")
		return LockHolder{}, nil
	}
	h, err := DecodeLock(z.lockPath, data)
	if err != nil {
		return LockHolder{}, err
	}
	h.Mine = z.opts.URL != "" && h.URL == z.opts.URL
	return h, nil
}

// ReleaseLock deletes the lock znode if our session created it.
func (z *ZKCoordinator) ReleaseLock(ctx context.Context) error {
	z.ownerMu.Lock()
	owner := z.owner
	z.owner = 0
	z.ownerMu.Unlock()
	if owner == 0 {
		return nil
	}
	var ok bool
	var st *zk.Stat
	if err := z.call(ctx, func() (err error) { ok, st, err = z.conn.Exists(z.lockPath); return err }); err != nil {
		return fmt.Errorf("ha: ZooKeeper: exists %s: %w", z.lockPath, err)
	}
	if !ok || st.EphemeralOwner != owner {
		return nil
	}
	err := z.call(ctx, func() error { return z.conn.Delete(z.lockPath, st.Version) })
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("ha: ZooKeeper: delete %s: %w", z.lockPath, err)
	}
	return nil
}

// VerifyLock verifies afresh that we hold the lock: a sync through the
// leader, then a read of the lock znode, whose owner must be our session.
// It returns when the sync was sent (see ZKLease). An error wrapping
// ErrLost means the lock is not ours; any other is transient.
func (z *ZKCoordinator) VerifyLock(ctx context.Context) (time.Time, error) {
	owner := z.getOwner()
	if owner == 0 {
		return time.Time{}, fmt.Errorf("%w: not holding the lock", ErrLost)
	}
	start := time.Now()
	if err := z.call(ctx, func() error { _, err := z.conn.Sync(z.base); return err }); err != nil {
		return start, fmt.Errorf("ha: ZooKeeper: sync %s: %w", z.base, err)
	}
	var ok bool
	var st *zk.Stat
	if err := z.call(ctx, func() (err error) { ok, st, err = z.conn.Exists(z.lockPath); return err }); err != nil {
		return start, fmt.Errorf("ha: ZooKeeper: exists %s: %w", z.lockPath, err)
	}
	switch {
	case !ok:
		return start, fmt.Errorf("%w: the lock znode %s was deleted", ErrLost, z.lockPath)
	case st.EphemeralOwner != owner:
		return start, fmt.Errorf("%w: the lock znode %s belongs to session %#x, ours was %#x", ErrLost, z.lockPath, st.EphemeralOwner, owner)
	case z.conn.SessionID() != owner:
		return start, fmt.Errorf("%w: our ZooKeeper session changed (%#x -> %#x)", ErrLost, owner, z.conn.SessionID())
	case z.Negotiated() < z.effective:
		// A new session (after an expiry) got a shorter timeout than the
		// lease was derived from: the lease is not safe any more.
		return start, fmt.Errorf("%w: a new ZooKeeper session negotiated %v, shorter than the %v the lease was derived from", ErrLost, z.Negotiated(), z.effective)
	}
	return start, nil
}

// Monitor reports session events and, while we hold the lock, a
// verification every VerifyInterval, until ctx ends. report is called from
// the monitor's goroutine. One Monitor at a time.
func (z *ZKCoordinator) Monitor(ctx context.Context, report func(CoordEvent)) {
	if !z.monitorRunning.CompareAndSwap(false, true) {
		// A second monitor would steal the first one's session events.
		z.log.Error("ha: ZKCoordinator.Monitor is already running; this one reports nothing")
		return
	}
	defer z.monitorRunning.Store(false)
	t := time.NewTicker(z.verifyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-z.evSignal:
			z.evMu.Lock()
			evs := z.evQueue
			z.evQueue = nil
			z.evMu.Unlock()
			for _, ev := range evs {
				report(ev)
			}
		case <-t.C:
			if z.getOwner() == 0 {
				continue
			}
			vctx, cancel := context.WithTimeout(ctx, z.lease)
			start, err := z.VerifyLock(vctx)
			cancel()
			switch {
			case err == nil:
				report(CoordEvent{Kind: CoordVerified, Start: start})
			case errors.Is(err, ErrLost):
				if z.getOwner() != 0 { // not released meanwhile
					report(CoordEvent{Kind: CoordLockLost, Err: err})
				}
			default:
				z.log.Debug("verifying the lock failed; the lease decides", "err", err)
			}
		}
	}
}
