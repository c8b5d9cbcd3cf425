package broker

// Shared-store HA for `tandem run`: the activation state machine of
// package ha drives loadLive, live.serve and live.stop.
//
// Design (documented for users in README.md, "Shared-store HA in five
// minutes"):
//
//   - Coordinator: the lock directory (package lockfile) for a file store,
//     the node-manager lease (package jdbcstore) for a <database-store>. The
//     activation (package ha's Node) takes a new epoch before the store is loaded;
//     the file journal writes it into new segments, a database journal is
//     fenced by it (every batch checks it in the same transaction).
//   - While not active a broker still binds its acceptors but answers every
//     client Hello with CodeUnavailable ("backup waiting"), so HA clients
//     move on to the live at once instead of timing out; /status reports
//     state "waiting".
//   - Topology over the cluster connection: each broker probes the static
//     connectors of its first cluster connection every retry-interval
//     (clamped to 200 ms..2 s) with a Hello that carries the client ID
//     haProbeClientID and the cluster credentials. A live answers with its
//     ordinary Welcome, a waiting broker (which otherwise refuses clients)
//     with a Welcome too; either way the topology's first member is the
//     answering broker itself (role, state, URL, epoch). So the live learns
//     its backup (and announces both to its clients with a topology push),
//     and the backup learns the live, without a new frame type and without
//     anything in the shared directory (which a database store does not
//     have). An active peer with a newer epoch is fed to the state machine
//     (a live that sees one halts: fail-stop, never two actives).
//   - Exit codes: 0 after a clean stop (SIGTERM/SIGINT, or a backup that
//     failed back with restart-backup=false), 1 when it cannot start, 3
//     when the activation halted (lost lock or lease, storage error).

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/jdbcstore"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/server"
)

// runHA runs the broker under its HA policy. Only shared store is
// implemented; for the others a primary runs as a single broker (with a
// warning) and a backup is refused, as before.
func runHA(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits) int {
	if err := Check(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	switch {
	case cfg.HA.Policy == config.PolicySharedStore:
		return runSharedStore(stop, cfg, log, lim)
	case cfg.HA.Policy == config.PolicyReplication:
		return runReplication(stop, cfg, log, lim)
	case cfg.HA.Policy == config.PolicyLiveOnly:
		return runLiveOnly(stop, cfg, log, lim)
	case cfg.HA.Policy == config.PolicyColocated:
		return runColocated(stop, cfg, log, lim)
	}
	if cfg.HA.Role == config.RoleBackup {
		fmt.Fprintf(os.Stderr, "tandem run: HA %s backup is not supported by this build yet (it would serve as a second live broker)\n", cfg.HA.Policy)
		return exitCannot
	}
	log.Warn("HA policy is not implemented yet: running as a single broker", "policy", cfg.HA.Policy, "role", cfg.HA.Role)
	single := *cfg
	single.HA.Policy = config.PolicyNone
	return serve(stop, &single, log, lim)
}

// haOptions applies the <shared-store> options to a node configuration.
func haOptions(c hasm.Config, h config.HA) hasm.Config {
	c.FailoverOnShutdown = h.FailoverOnShutdown
	c.AllowFailback = h.AllowFailback
	c.RestartBackup = h.RestartBackup
	return c
}

// runSharedStore is `tandem run` with <ha-policy><shared-store>.
func runSharedStore(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits) int {
	if !cfg.PersistenceEnabled {
		fmt.Fprintln(os.Stderr, "tandem run: shared-store HA needs persistence-enabled=true (the pair shares the journal)")
		return exitCannot
	}
	role := hasm.Primary
	if cfg.HA.Role == config.RoleBackup {
		role = hasm.Backup
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		h          *haBroker
		closeCoord func() error
		err        error
	)
	if cfg.Store != nil {
		h = newHABroker(cfg, log, role)
		closeCoord, err = h.openDBLease(ctx, h.hooks())
		if err == nil {
			h.log = log.With("node_id", h.nodeID, "role", role.String())
		}
	} else {
		var mgr *lockfile.Manager
		if h, mgr, err = newFileLockHA(cfg, log, role); err == nil {
			closeCoord = mgr.Close
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	h.lim = lim
	if ex := pairExtraFor(cfg); ex != nil { // colocated.go
		defer ex.attach(h)()
	}

	if err := h.openRefuser(); err != nil {
		closeCoord()
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	hln, err := net.Listen("tcp", cfg.ManagementAddress)
	if err != nil {
		h.closeRefuser()
		closeCoord()
		fmt.Fprintf(os.Stderr, "tandem run: management HTTP %s: %v\n", cfg.ManagementAddress, err)
		return exitCannot
	}
	h.mgmt = hln.Addr().String()
	metrics := server.MetricsHandler(server.MetricsOptions{Server: h.server, Connections: h.connections, Net: h.netStats})
	hs := managementServer(cfg, lim, hln, server.ManagementOptions{Status: h.status, Metrics: metrics}, log)
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
			h.runner.Stop(hasm.FailoverDefault)
		case <-runDone:
		}
	}()

	runErr := h.runner.Run(ctx)
	close(runDone)
	pcancel()
	<-probeDone

	var halt *hasm.HaltError
	if errors.As(runErr, &halt) {
		h.abandon()
		fmt.Fprintf(os.Stderr, "tandem run: halted: %v\n", halt.Err)
		// Closing the lock files can block on a broken file system; the
		// process exit drops the locks anyway.
		closeWithin(closeCoord, time.Second)
		return exitHalted
	}
	err = h.shutdown()
	h.closeRefuser()
	err = errors.Join(err, closeWithin(closeCoord, 5*time.Second))
	if err != nil {
		h.log.Error("stopping", "err", err)
		fmt.Fprintf(os.Stderr, "tandem run: stopping: %v\n", err)
		return exitHalted
	}
	h.log.Info("stopped")
	return exitOK
}

// hooks are the broker's hooks for its hasm.Runner.
func (h *haBroker) hooks() hasm.Hooks {
	return hasm.Hooks{LoadStore: h.loadStore, StartServing: h.startServing, StopServing: h.stopServing,
		Announce: h.announce, Logger: h.baseLog}
}

// newFileLockHA is a shared-store broker on a lock directory: the
// lockfile.Manager, the activation over it and the journals fenced by
// mayWrite. Closing the Manager closes the lock files.
func newFileLockHA(cfg *config.Config, log *slog.Logger, role hasm.Role) (*haBroker, *lockfile.Manager, error) {
	h := newHABroker(cfg, log, role)
	mgr, err := lockfile.Open(cfg.Dirs.NodeManagerLock, lockfile.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	c, err := hasm.NewFileLockCoordinator(mgr, haOptions(hasm.DefaultConfig(role, hasm.FileLock), cfg.HA), h.hooks())
	if err != nil {
		mgr.Close()
		return nil, nil, err
	}
	h.runner, h.act, h.nodeID = c.Runner, c.Runner, mgr.NodeID().String()
	h.openStore = func(_ context.Context, cfg *config.Config, so server.StoreOptions) (*server.Store, error) {
		return openFencedFileStore(cfg, so, h.mayWrite)
	}
	h.storeKind = "file"
	h.storeWhere = fmt.Sprintf("journal %s, bindings %s (shared; lock directory %s)", cfg.Dirs.Journal, cfg.Dirs.Bindings, cfg.Dirs.NodeManagerLock)
	h.log = log.With("node_id", h.nodeID, "role", role.String())
	return h, mgr, nil
}

// closeWithin runs close, giving up after d.
func closeWithin(close func() error, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("closing the coordinator did not return within %v", d)
	}
}

// openDBLease sets up the database lease coordinator and the fenced
// journal opener; it returns what closes the node-manager connection.
func (h *haBroker) openDBLease(ctx context.Context, hooks hasm.Hooks) (func() error, error) {
	db := h.cfg.Store
	url := db.URL
	if u, err := db.PgxURL(); err == nil && u != "" {
		url = u
	}
	nm, err := jdbcstore.OpenNodeManager(ctx, jdbcstore.NodeManagerOptions{URL: url, Table: db.NodeManagerStoreTable,
		Group: h.cfg.HA.GroupName, LockExpiration: db.LockExpiration, RenewPeriod: db.LockRenewPeriod, Logger: h.log})
	if err != nil {
		return nil, err
	}
	id, err := nm.EnsureNodeID(ctx, newUUID())
	if err != nil {
		nm.Close()
		return nil, err
	}
	exp, renew := db.LockExpiration, db.LockRenewPeriod
	if exp == 0 {
		exp = jdbcstore.DefaultLockExpiration
	}
	if renew == 0 {
		renew = jdbcstore.DefaultLockRenewPeriod
	}
	r, err := hasm.NewDBLeaseCoordinator(nm, haOptions(hasm.DBLeaseConfig(h.role, exp, renew), h.cfg.HA), hooks)
	if err != nil {
		nm.Close()
		return nil, err
	}
	h.runner, h.act, h.nodeID = r, r, id
	h.storeKind = "jdbc"
	h.storeWhere = fmt.Sprintf("tables %s and %s (shared; lease in %s, group %s)", db.MessageTable, db.BindingsTable, nm.Table(), nm.Group())
	h.openStore = func(ctx context.Context, cfg *config.Config, so server.StoreOptions) (*server.Store, error) {
		fence := jdbcstore.Fence{Table: nm.Table(), Group: nm.Group(), Epoch: so.Epoch}
		open := func(table string) (*jdbcstore.Journal, error) {
			return jdbcstore.Open(ctx, jdbcstore.Options{URL: url, Table: table, Fence: fence, Logger: so.Logger})
		}
		m, err := open(db.MessageTable)
		if err != nil {
			return nil, fmt.Errorf("open message table %s: %w", db.MessageTable, err)
		}
		b, err := open(db.BindingsTable)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("open bindings table %s: %w", db.BindingsTable, err)
		}
		return &server.Store{Kind: "jdbc", Messages: m, Bindings: b,
			Where: fmt.Sprintf("tables %s and %s, fenced at epoch %d", db.MessageTable, db.BindingsTable, so.Epoch)}, nil
	}
	return nm.Close, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
