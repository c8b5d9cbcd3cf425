package broker

// Replication HA coordinated by ZooKeeper (issue 13): package ha's
// ReplRunner decides (the lock, the activation sequences), package
// replication moves the journal bytes, and this file carries out the
// runner's hooks on this broker:
//
//   - LoadStore opens this broker's own journals under the new activation
//     sequence and a replication.Source over them; StartServing opens the
//     acceptors and lets the server hand replication connections (a Hello
//     with the replica client ID and the cluster credentials) to the
//     Source. BackupSynced, BackupLost and FailbackRequested go back to the
//     runner; ReleaseHeld and Handover come from it.
//   - StartReplica closes whatever this broker had loaded and runs a
//     replication.Replica against the live's URL (from the ZooKeeper lock):
//     it records L = 0 before it touches a file, moves the previous files
//     aside, copies both journals and records L = C with the live's node ID
//     once synced. A storage error of the replica halts the broker; a lost
//     connection goes back to the runner, which decides what next.
//   - While not active the broker keeps its acceptor ports and refuses
//     clients (peers.go), as a shared-store backup does.
//
// The local activation sequence L and the node ID are the epoch and node
// ID of server.lock in this broker's own lock directory (by default its
// journal directory), whose primary lock the broker holds for as long as
// it runs: two processes never use one data directory.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/replication"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// replBroker is a broker of a replication pair coordinated by ZooKeeper.
type replBroker struct {
	*haBroker
	repl replCoordinator
	mgr  *lockfile.Manager

	rmu      sync.Mutex
	source   *replication.Source
	replica  *replication.Replica
	rcancel  context.CancelFunc
	rdone    chan struct{}
	rstopped bool // StopReplica: the replica's end is not reported
}

// replCoordinator is what the hooks need of the runner: a ReplRunner
// (ZooKeeper) or a QuorumRunner (the quorum vote, quorum.go).
type replCoordinator interface {
	CanAck() bool
	Epoch() uint64
	Status() hasm.ReplStatus
	Stop()
	StorageError(error)
	ReplicaSynced(uint64, lockfile.NodeID)
	ReplicaLost(bool)
	BackupSynced()
	BackupLost()
	FailbackRequested()
	Run(context.Context) error
}

// replAct adapts the runner to the pair's activation interface.
type replAct struct{ r replCoordinator }

func (a replAct) Status() hasm.Status {
	st := a.r.Status()
	return hasm.Status{Role: st.Role, State: st.State, Phase: st.Phase, Epoch: st.Epoch}
}
func (a replAct) Epoch() uint64           { return a.r.Epoch() }
func (a replAct) PeerAnnounced(hasm.Peer) {} // the ZooKeeper lock decides; a peer's word cannot

// runReplication is `tandem run` with <ha-policy><replication>: with a
// <manager> coordinated by ZooKeeper, without one by the quorum vote.
func runReplication(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits) int {
	switch {
	case !cfg.PersistenceEnabled:
		fmt.Fprintln(os.Stderr, "tandem run: replication needs persistence-enabled=true (it copies the journal)")
		return exitCannot
	case cfg.Store != nil:
		fmt.Fprintln(os.Stderr, "tandem run: replication copies a file journal; a <database-store> is shared by the pair instead (use <shared-store>)")
		return exitCannot
	}
	role := hasm.Primary
	if cfg.HA.Role == config.RoleBackup {
		role = hasm.Backup
	}
	mgr, err := lockfile.Open(cfg.Dirs.NodeManagerLock, lockfile.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	defer mgr.Close()
	if ok, err := mgr.TryAcquirePrimary(); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%w (%s is locked)", errDataInUse, cfg.Dirs.NodeManagerLock)
		}
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	defer mgr.ReleasePrimary()

	h := newHABroker(cfg, log, role)
	h.lim = lim
	b := &replBroker{haBroker: h, mgr: mgr}
	h.nodeID = mgr.NodeID().String()
	h.storeKind = "file"
	h.storeWhere = fmt.Sprintf("journal %s, bindings %s (replicated; lock directory %s)", cfg.Dirs.Journal, cfg.Dirs.Bindings, cfg.Dirs.NodeManagerLock)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hooks := hasm.ReplHooks{LoadStore: b.loadStore, StartServing: b.startServing, StopServing: b.stopServing,
		StartReplica: b.startReplica, StopReplica: b.stopReplica, RequestFailback: b.requestFailback,
		ReleaseHeld: b.releaseHeld, Handover: b.handover, Announce: b.announce, Logger: log}
	ex := pairExtraFor(cfg) // colocated.go
	if cfg.HA.Manager == nil {
		targets, _ := h.probeTargets()
		if ex != nil && ex.quorumTargets != nil {
			targets = ex.quorumTargets
		}
		var heard func() []string
		if quorumDiscovery(cfg) != "" && ex == nil {
			disc, bc, err := startQuorumDiscovery(cfg, h.nodeID, log)
			if err != nil {
				fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
				return exitCannot
			}
			defer disc.close()
			defer bc.stop()
			self := strings.TrimPrefix(haAnnounceURL(cfg), "tcp://")
			heard = func() []string { return disc.brokers(self) }
		}
		if heard == nil && len(targets) < 2 {
			fmt.Fprintf(os.Stderr, "tandem run: %v\n", errNoQuorumTargets)
			return exitCannot
		}
		qc, err := quorumConfig(h, role)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
			return exitCannot
		}
		// A hosted backup votes among the lives without being one of
		// their electorate: it never leaves it (docs/ha-replication-quorum.md).
		qc.StayOnStop = ex != nil && ex.quorumTargets != nil
		tr := &quorumTransport{h: h, targets: targets, heard: heard}
		if heard != nil {
			// The electorate changes as brokers are heard: no clean
			// departures, and quorum-size (checked) sets the grants needed.
			qc.StayOnStop = true
		}
		tr.self = func() wire.QuorumMember { return toWireMember(b.quorumSelf()) }
		if ex != nil {
			tr.pin = ex.pinFor(h)
		}
		r, err := hasm.NewQuorumRunner(tr, hasm.LockfileLocal{M: mgr}, cfg.Dirs.NodeManagerLock, qc, b.quorumSelf, hooks)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
			return exitCannot
		}
		b.repl = r
		h.quorumServe = b.serveQuorum
		if ex != nil {
			defer ex.attach(h)()
			if ex.attachRepl != nil {
				defer ex.attachRepl(b)()
			}
		}
		return b.run(stop, ctx, r)
	}
	m := cfg.HA.Manager
	zo, err := ZKOptions(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	zo.URL, zo.Logger = h.selfURL, log
	dctx, dcancel := context.WithTimeout(ctx, max(m.ConnectionTimeout, 8*time.Second)+2*time.Second)
	coord, err := hasm.DialZK(dctx, zo)
	dcancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: ZooKeeper %s: %v\n", m.ConnectString, err)
		return exitCannot
	}
	defer coord.Close()
	rc := hasm.DefaultReplConfig(role)
	rc.AllowFailback = cfg.HA.AllowFailback
	rc.Lease = coord.Lease()
	if w := cfg.HA.RetryReplicationWait; w > 0 {
		rc.RetryInterval = min(w, rc.RetryInterval)
	}
	r, err := hasm.NewReplRunner(coord, hasm.LockfileLocal{M: mgr}, rc, hooks)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	b.repl = r
	return b.run(stop, ctx, r)
}

// run runs the pair's broker with its runner until it stops or halts.
func (b *replBroker) run(stop, ctx context.Context, r replCoordinator) int {
	h, cfg, log, role := b.haBroker, b.cfg, b.haBroker.log, b.haBroker.role
	h.act = replAct{r}
	h.log = log.With("node_id", h.nodeID, "role", role.String())

	if err := h.openRefuser(); err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	hln, err := net.Listen("tcp", cfg.ManagementAddress)
	if err != nil {
		h.closeRefuser()
		fmt.Fprintf(os.Stderr, "tandem run: management HTTP %s: %v\n", cfg.ManagementAddress, err)
		return exitCannot
	}
	h.mgmt = hln.Addr().String()
	metrics := server.MetricsHandler(server.MetricsOptions{Server: h.server, Connections: h.connections, Net: h.netStats,
		Extra: []prometheus.Collector{&replCollector{b}}})
	hs := managementServer(cfg, h.lim, hln, server.ManagementOptions{Status: b.status, Metrics: metrics}, log)
	go hs.Serve(hln)
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		hs.Shutdown(sctx)
		scancel()
	}()
	h.printBanner()

	pctx, pcancel := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		h.probePeers(pctx)
	}()
	runDone := make(chan struct{})
	go func() {
		select {
		case <-stop.Done():
			h.log.Info("stopping")
			h.setStopping()
			r.Stop()
		case <-runDone:
		}
	}()

	runErr := r.Run(ctx)
	close(runDone)
	pcancel()
	<-probeDone

	var halt *hasm.HaltError
	if errors.As(runErr, &halt) {
		b.stopReplica()
		b.abandonLive()
		fmt.Fprintf(os.Stderr, "tandem run: halted: %v\n", halt.Err)
		return exitHalted
	}
	b.stopReplica()
	err = b.closeLive()
	h.closeRefuser()
	if err != nil {
		h.log.Error("stopping", "err", err)
		fmt.Fprintf(os.Stderr, "tandem run: stopping: %v\n", err)
		return exitHalted
	}
	h.log.Info("stopped")
	return exitOK
}

// loadStore is the LoadStore hook: open this broker's journals under
// epoch (replacing an earlier load of a failed activation) with a Source
// over them.
func (b *replBroker) loadStore(ctx context.Context, epoch uint64) error {
	h := b.haBroker
	b.stopReplica()
	if err := b.closeLive(); err != nil {
		return err
	}
	h.log.Info("loading the store", "epoch", epoch)
	l, err := loadLive(ctx, h.cfg, h.baseLog, liveOptions{Epoch: epoch, NodeID: h.nodeID, Policy: string(config.PolicyReplication),
		Role: h.role.String(), CanAck: b.repl.CanAck, Limits: h.lim})
	if err != nil {
		return err
	}
	journals := l.store.Journals()
	if journals == nil {
		l.stop(wire.CodeShuttingDown, "not a file store")
		return errors.New("replication needs the file journal")
	}
	cfg := h.cfg
	ttl := replicationTTL(cfg)
	src := replication.NewSource(journals, replication.SourceOptions{
		NodeID: h.nodeID, Group: cfg.HA.GroupName, Seq: b.repl.Epoch,
		SyncTimeout: cfg.HA.InitialReplicationSyncTimeout, CallTimeout: clusterCallTimeout(cfg), TTL: ttl,
		Logger: h.log, BackupSynced: b.repl.BackupSynced, BackupLost: b.repl.BackupLost, FailbackRequested: b.repl.FailbackRequested,
	})
	wctx, cancel := context.WithCancel(context.Background())
	failed := l.store.Failed(wctx)
	go func() {
		select {
		case err := <-failed:
			b.repl.StorageError(err)
		case <-wctx.Done():
		}
	}()
	h.mu.Lock()
	h.l, h.watchCancel = l, cancel
	h.mu.Unlock()
	b.rmu.Lock()
	b.source = src
	b.rmu.Unlock()
	return nil
}

// ZKOptions maps a replication policy's <manager> properties and
// group-name to the ZooKeeper coordinator's options: the broker and
// `tandem activation` find the same znodes through it.
func ZKOptions(cfg *config.Config) (hasm.ZKOptions, error) {
	m := cfg.HA.Manager
	if cfg.HA.Policy != config.PolicyReplication || m == nil {
		where := cfg.File
		if where == "" {
			where = "the default configuration"
		}
		return hasm.ZKOptions{}, fmt.Errorf("%s has no <replication> policy with a <manager>: there is no coordinated activation sequence (give --config FILE)", where)
	}
	return hasm.ZKOptions{ConnectString: m.ConnectString, SessionTimeout: m.SessionTimeout,
		ConnectTimeout: m.ConnectionTimeout, Namespace: m.Namespace, Group: cfg.HA.GroupName}, nil
}

// replicationTTL is how long replication partners wait for traffic
// before they give up on each other: connection-ttl-override when set,
// else the first cluster connection's connection-ttl (Artemis's default
// 60 s). R25: keep it near session-ms.
func replicationTTL(cfg *config.Config) time.Duration {
	if cfg.ConnectionTTLOverride > 0 {
		return cfg.ConnectionTTLOverride
	}
	if len(cfg.ClusterConnections) > 0 && cfg.ClusterConnections[0].ConnectionTTL > 0 {
		return cfg.ClusterConnections[0].ConnectionTTL
	}
	return 60 * time.Second
}

// announce is the Announce hook: the topology goes to the clients, and a
// new activation sequence (the live lost its replica and moved it on) is
// written into the segments the journals start from now on.
func (b *replBroker) announce(hasm.ReplAction) {
	h := b.haBroker
	epoch := b.repl.Epoch()
	h.mu.Lock()
	l := h.l
	h.mu.Unlock()
	if l != nil {
		for _, fj := range l.store.Journals() { // paging and large messages too
			fj.SetEpoch(epoch)
		}
	}
	h.publish()
}

// clusterCallTimeout is the first cluster connection's call-timeout
// (Artemis's default 30 s): how long a synced replica may keep an answer
// waiting before it is dropped.
func clusterCallTimeout(cfg *config.Config) time.Duration {
	if len(cfg.ClusterConnections) > 0 && cfg.ClusterConnections[0].CallTimeout > 0 {
		return cfg.ClusterConnections[0].CallTimeout
	}
	return 30 * time.Second
}

// startServing is the StartServing hook.
func (b *replBroker) startServing(epoch uint64) {
	h := b.haBroker
	h.mu.Lock()
	l := h.l
	h.mu.Unlock()
	b.rmu.Lock()
	src := b.source
	b.rmu.Unlock()
	if l == nil || src == nil {
		b.repl.StorageError(fmt.Errorf("start serving epoch %d: no store loaded", epoch))
		return
	}
	h.closeRefuser()
	l.srv.SetReplicaHandler(&server.ReplicaHandler{User: h.cfg.ClusterUser, Password: h.cfg.ClusterPassword, Serve: src.Serve})
	if h.quorumServe != nil {
		l.srv.SetQuorumHandler(b.quorumHandler())
	}
	if err := l.serve(); err != nil {
		h.log.Error("opening the acceptors", "err", err)
		b.repl.StorageError(fmt.Errorf("opening the acceptors: %w", err))
		return
	}
	h.mu.Lock()
	h.serving = true
	h.mu.Unlock()
	if h.onServing != nil { // colocated.go
		h.onServing(l)
	}
	h.publish()
	h.log.Info("active", "epoch", epoch, "url", h.selfURL)
	h.printBanner()
}

// stopServing is the StopServing hook: close the client connections and
// refuse clients again; the replication connection stays (a failback's
// Handover needs it) and the store stays open until a replica starts or
// the broker stops. Answers held for a lost replica are failed: the
// activation sequence did not move on, so they must never be confirmed.
func (b *replBroker) stopServing() {
	h := b.haBroker
	h.mu.Lock()
	l, stopping := h.l, h.stopping
	h.serving = false
	h.mu.Unlock()
	halted := b.repl.Status().Phase == "halted"
	b.rmu.Lock()
	src := b.source
	if halted {
		b.source = nil
	}
	b.rmu.Unlock()
	switch {
	case src != nil && halted:
		// Nothing is confirmed any more: drop the replica now, so that
		// what waits for it (a connection's shutdown deleting its queue,
		// say) fails at once instead of waiting for a silent replica's
		// connection TTL.
		src.Close()
	case src != nil:
		src.FailHeld()
	}
	if l != nil {
		code, why := wire.CodeUnavailable, "failing over to the other broker"
		if stopping {
			code, why = wire.CodeShuttingDown, "broker stopping"
		}
		l.closeAcceptors(code, why)
		l.srv.Close()
	}
	if !stopping && !halted {
		if err := h.openRefuser(); err != nil {
			h.log.Warn("cannot refuse clients while waiting", "err", err)
		}
	}
	h.publish()
}

// closeLive closes the Source and the loaded store (a clean stop, or
// before this broker replicates into its own directories).
func (b *replBroker) closeLive() error {
	h := b.haBroker
	b.rmu.Lock()
	src := b.source
	b.source = nil
	b.rmu.Unlock()
	if src != nil {
		src.Close()
	}
	h.mu.Lock()
	l, cancel := h.l, h.watchCancel
	h.l, h.serving, h.watchCancel = nil, false, nil
	h.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if l == nil {
		return nil
	}
	return l.stop(wire.CodeShuttingDown, "broker stopping")
}

// abandonLive drops a halted broker's store without writing to it.
func (b *replBroker) abandonLive() {
	b.rmu.Lock()
	src := b.source
	b.source = nil
	b.rmu.Unlock()
	if src != nil {
		src.Close()
	}
	b.haBroker.abandon()
}

// startReplica is the StartReplica hook.
func (b *replBroker) startReplica(url string) {
	h := b.haBroker
	b.stopReplica()
	if err := b.closeLive(); err != nil {
		b.repl.StorageError(fmt.Errorf("closing the store before replicating: %w", err))
		return
	}
	if err := h.openRefuser(); err != nil {
		h.log.Warn("cannot refuse clients while replicating", "err", err)
	}
	cfg := h.cfg
	ttl := replicationTTL(cfg)
	ack := replication.AckDurable
	if cfg.HA.ReplicationAck == "received" {
		ack = replication.AckReceived
	}
	st := b.repl.Status()
	hostport, _, _ := strings.Cut(strings.TrimPrefix(url, "tcp://"), "?")
	peerTLSConfig, err := peerTLS(cfg, hostport)
	if err != nil {
		h.log.Error("replication: TLS to the live", "err", err)
	}
	rep := replication.NewReplica(replication.ReplicaOptions{
		URL: url, User: cfg.ClusterUser, Password: cfg.ClusterPassword, Group: cfg.HA.GroupName, TLS: peerTLSConfig,
		SelfURL: h.selfURL, NodeID: st.NodeID, LocalSeq: st.Epoch,
		Journals: replicaJournals(cfg),
		MaxSaved: cfg.HA.MaxSavedReplicatedJournalsSize, AckLevel: ack, TTL: ttl, Logger: h.log,
		SetLocal: func(seq uint64, node string) error {
			id, err := parseNodeID(node)
			if err != nil {
				return err
			}
			return hasm.LockfileLocal{M: b.mgr}.WriteLocal(id, seq)
		},
		Synced: func(seq uint64, node string) {
			if id, err := parseNodeID(node); err == nil {
				h.mu.Lock()
				h.nodeID = id.String()
				h.mu.Unlock()
				b.repl.ReplicaSynced(seq, id)
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.rmu.Lock()
	b.replica, b.rcancel, b.rdone, b.rstopped = rep, cancel, done, false
	b.rmu.Unlock()
	h.log.Info("replicating from the live", "live", url)
	go func() {
		defer close(done)
		res, err := rep.Run(ctx)
		b.rmu.Lock()
		stopped := b.rstopped
		b.rmu.Unlock()
		if stopped {
			return
		}
		var se *replication.StorageError
		switch {
		case errors.As(err, &se):
			b.repl.StorageError(err)
			return
		case err != nil:
			h.log.Warn("replication from the live ended", "live", url, "err", err)
		}
		b.repl.ReplicaLost(res.Handover)
	}()
}

// stopReplica is the StopReplica hook: disconnect without a report.
func (b *replBroker) stopReplica() {
	b.rmu.Lock()
	cancel, done := b.rcancel, b.rdone
	b.rcancel, b.rdone, b.replica = nil, nil, nil
	b.rstopped = true
	b.rmu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (b *replBroker) requestFailback() {
	b.rmu.Lock()
	rep := b.replica
	b.rmu.Unlock()
	if rep != nil {
		rep.RequestFailback()
	}
}

func (b *replBroker) releaseHeld() {
	b.rmu.Lock()
	src := b.source
	b.rmu.Unlock()
	if src != nil {
		src.ReleaseHeld()
	}
}

func (b *replBroker) handover(ctx context.Context) error {
	b.rmu.Lock()
	src := b.source
	b.rmu.Unlock()
	if src == nil {
		return errors.New("handover: no store loaded")
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return src.Handover(hctx)
}

// status is GET /status: the pair's, with the replication object and the
// activation sequences.
func (b *replBroker) status() server.Status {
	st := b.haBroker.status()
	rs := b.repl.Status()
	if rs.NodeID != "" {
		st.NodeID = rs.NodeID
	}
	local, coord := rs.Epoch, rs.Coordinated
	st.ActivationSequence, st.CoordinatedSequence = &local, &coord
	if _, quorum := b.repl.(*hasm.QuorumRunner); quorum {
		st.CoordinatedSequence = nil // no coordinated sequence: the voters hold it
	}
	b.rmu.Lock()
	src, rep := b.source, b.replica
	b.rmu.Unlock()
	rst := &server.ReplicationStatus{State: string(replication.StateNone)}
	switch {
	case src != nil:
		s := src.Status()
		rst.State, rst.LagRecords, rst.LagBytes, rst.Since = string(s.State), s.LagRecords, s.LagBytes, s.Since.UTC().Format(time.RFC3339)
		if s.Peer != "" {
			p := s.Peer
			rst.Peer = &p
		}
	case rep != nil:
		s := rep.Status()
		rst.State, rst.Since = string(s.State), s.Since.UTC().Format(time.RFC3339)
		if s.Peer != "" {
			p := s.Peer
			rst.Peer = &p
		}
		if s.State == replication.StateSyncing && st.State != "active" {
			st.State = "syncing"
		}
	}
	st.Replication = rst
	return st
}

// parseNodeID reads a node ID in UUID form.
func parseNodeID(s string) (lockfile.NodeID, error) {
	var id lockfile.NodeID
	hexs := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			hexs = append(hexs, s[i])
		}
	}
	if len(hexs) != 32 {
		return id, fmt.Errorf("node ID %q is not a UUID", s)
	}
	for i := range 16 {
		var v byte
		for _, c := range hexs[2*i : 2*i+2] {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | (c - 'A' + 10)
			default:
				return id, fmt.Errorf("node ID %q is not a UUID", s)
			}
		}
		id[i] = v
	}
	return id, nil
}

var (
	descReplState = prometheus.NewDesc("tandem_replication_state",
		"1 for the replication state this broker is in (live: its replica's; replica: its own), 0 for the others.", []string{"state"}, nil)
	descReplLagBytes = prometheus.NewDesc("tandem_replication_lag_bytes",
		"Journal bytes the replica has not acknowledged yet (live side).", nil, nil)
	descReplLagRecords = prometheus.NewDesc("tandem_replication_held_batches",
		"Group-commit batches whose answers wait for the replica (live side).", nil, nil)
	descReplDropped = prometheus.NewDesc("tandem_replication_replicas_dropped_total",
		"Replicas this live dropped or lost (connection lost, too slow, silent, sync not finished in time).", nil, nil)
	descActivation = prometheus.NewDesc("tandem_activation_sequence",
		"The local activation sequence (replication with ZooKeeper).", nil, nil)
)

// replCollector exports the replication state to /metrics.
type replCollector struct{ b *replBroker }

func (c *replCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReplState, descReplLagBytes, descReplLagRecords, descReplDropped, descActivation} {
		ch <- d
	}
}

func (c *replCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	b.rmu.Lock()
	src, rep := b.source, b.replica
	b.rmu.Unlock()
	state := replication.StateNone
	switch {
	case src != nil:
		st := src.Status()
		state = st.State
		ch <- prometheus.MustNewConstMetric(descReplLagBytes, prometheus.GaugeValue, float64(st.LagBytes))
		ch <- prometheus.MustNewConstMetric(descReplLagRecords, prometheus.GaugeValue, float64(st.LagRecords))
		ch <- prometheus.MustNewConstMetric(descReplDropped, prometheus.CounterValue, float64(st.Dropped))
	case rep != nil:
		state = rep.Status().State
	}
	for _, s := range []replication.State{replication.StateNone, replication.StateSyncing, replication.StateSynced} {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descReplState, prometheus.GaugeValue, v, string(s))
	}
	ch <- prometheus.MustNewConstMetric(descActivation, prometheus.GaugeValue, float64(b.repl.Epoch()))
}
