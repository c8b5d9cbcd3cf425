// Package broker assembles one broker: configuration -> store -> HA
// activation -> replication -> server, and the management HTTP server
// (issue 13, item 5). cmd/tandem's run command parses flags and calls
// Run; the tests use the same code. Each HA policy plugs in here in a
// file of its own:
//
//	broker.go       Run: the policy dispatch and a single broker (no HA)
//	live.go         a broker serving from its store (load, serve, stop)
//	lock.go         the data directory's lock of a single broker
//	pair.go         a broker of an HA pair: activation hooks, refusing
//	                clients while waiting, topology, /status, banner
//	peers.go        the waiting broker's listener and the cluster probes
//	sharedstore.go  <shared-store>: lock files or a database lease
//	fence.go        the shared file store's write fence
//	limits.go       connection limits: the open-file limit, the
//	                broker-wide connection budget, the management server
//	security.go     the broker's auth.Guard, TLS of acceptors, peers and
//	                the management address, the banner's security lines
//	scaledown.go    <live-only>: scale-down on a graceful stop
//	cluster.go      the source side of a cluster connection (moving
//	                messages to another live broker)
//	discovery.go    UDP broadcast and discovery groups
//
// It never parses flags and never calls os.Exit: Run returns an exit
// status (ExitOK, ExitCannot, ExitHalted, as the command line's).
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// Exit statuses of Run (docs/cli.md).
const (
	ExitOK     = 0
	ExitCannot = 1 // could not start: configuration, I/O
	ExitHalted = 3 // halted on a storage error or a lost lock
)

const (
	exitOK     = ExitOK
	exitCannot = ExitCannot
	exitHalted = ExitHalted
)

// CPUNote says how many Go processors the broker runs on, for the banner
// (cmd/tandem sets it).
var CPUNote string

// Run runs the broker that cfg describes until SIGTERM or SIGINT (a clean
// stop: ExitOK) or a halt (ExitHalted); ExitCannot when it cannot start.
// Errors go to stderr, the banner to stdout. It raises the process's
// open-file limit to the hard limit first (newNetLimits).
func Run(cfg *config.Config) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return RunContext(ctx, cfg)
}

// RunContext is Run with the clean stop asked for by ctx's end instead of
// a signal: what tests and brokers hosted in another broker's process (a
// colocated backup) use.
func RunContext(ctx context.Context, cfg *config.Config) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lim := newNetLimits(cfg)
	sec, err := newSecurity(cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	lim.sec = sec
	if err := checkTLS(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	if lim.mgmtTLS, err = managementTLS(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	if cfg.HA.Policy != "" && cfg.HA.Policy != config.PolicyNone {
		return runHA(ctx, cfg, log, lim)
	}
	return serve(ctx, cfg, log, lim)
}

// serve runs a single broker until stop ends (exit 0) or a storage error
// (exit 3).
func serve(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits) int {
	return serveWith(stop, cfg, log, lim, serveHooks{})
}

// serveHooks let a policy without a pair (live-only, scaledown.go) run a
// single broker with steps of its own.
type serveHooks struct {
	policy string // for /status; "" = none
	// loaded runs once the store is loaded, before the acceptors open;
	// an error stops the broker (exit 1).
	loaded func(l *live) error
	// stopping runs on a clean stop, before the acceptors close; it
	// returns what the clients are told.
	stopping func(l *live) (wire.Code, string)
}

func serveWith(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits, hooks serveHooks) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lock, err := lockSingle(cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	lo := liveOptions{Policy: "none", Role: "primary", Limits: lim}
	if hooks.policy != "" {
		lo.Policy = hooks.policy
	}
	if lock != nil {
		lo.NodeID, lo.Epoch = lock.nodeID(), lock.epoch
		defer lock.release()
	}
	l, err := loadLive(ctx, cfg, log, lo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	log = l.log
	if hooks.loaded != nil {
		if err := hooks.loaded(l); err != nil {
			fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
			l.stop(wire.CodeShuttingDown, "start failed")
			return exitCannot
		}
	}
	if err := l.serve(); err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		l.stop(wire.CodeShuttingDown, "start failed")
		return exitCannot
	}
	hln, err := net.Listen("tcp", cfg.ManagementAddress)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: management HTTP %s: %v\n", cfg.ManagementAddress, err)
		l.stop(wire.CodeShuttingDown, "start failed")
		return exitCannot
	}
	bc, err := startBroadcast(cfg, l.srv.NodeID(), log) // discovery.go
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		hln.Close()
		l.stop(wire.CodeShuttingDown, "start failed")
		return exitCannot
	}
	defer bc.stop()
	bridges, err := startBridges(cfg, l.srv, log) // bridge.go: message load balancing
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		hln.Close()
		l.stop(wire.CodeShuttingDown, "start failed")
		return exitCannot
	}
	defer bridges.stop()
	metrics := server.MetricsHandler(server.MetricsOptions{
		Server: func() *server.Server { return l.srv }, Connections: l.connections, Net: l.netStats})
	hs := managementServer(cfg, lim, hln, server.ManagementOptions{Status: l.status, Metrics: metrics}, log)
	go hs.Serve(hln)

	printBanner(cfg, l.srv, l.store, l.urls, hln.Addr().String(), lim, log)

	select {
	case <-stop.Done():
		log.Info("stopping")
		code, reason := wire.CodeShuttingDown, "broker stopping"
		bc.stop()      // a stopping broker is no one's target
		bridges.stop() // nothing is forwarded any more; in flight goes back
		if hooks.stopping != nil {
			code, reason = hooks.stopping(l)
		}
		err := l.stop(code, reason)
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		hs.Shutdown(sctx)
		scancel()
		if err != nil {
			log.Error("stopping", "err", err)
			return exitHalted
		}
		log.Info("stopped")
		return exitOK
	case err := <-l.store.Failed(ctx):
		// Fail-stop: the journal refuses every append from now on, so no
		// further ack can be sent; exit without touching the store again.
		log.Error("storage error: halting", "err", err)
		fmt.Fprintf(os.Stderr, "tandem run: halted on a storage error: %v\n", err)
		return exitHalted
	}
}

func printBanner(cfg *config.Config, srv *server.Server, store *server.Store, urls []string, mgmt string, lim *netLimits, log *slog.Logger) {
	o := srv.Options()
	var b strings.Builder
	fmt.Fprintf(&b, "Tandem %s broker %q\n", server.Version, cfg.Name)
	fmt.Fprintf(&b, "  node ID:     %s\n", srv.NodeID())
	fmt.Fprintf(&b, "  role:        %s (policy %s, epoch %d)\n", o.Role, o.Policy, srv.Epoch())
	fmt.Fprintf(&b, "  state:       active\n")
	fmt.Fprintf(&b, "  store:       %s (%s)\n", store.Kind, store.Where)
	fmt.Fprintf(&b, "  acceptor:    %s\n", strings.Join(urls, ", "))
	fmt.Fprintf(&b, "  management:  %s://%s/status\n", managementScheme(cfg), mgmt)
	fmt.Fprintf(&b, "  cpu:         %s\n", CPUNote)
	fmt.Fprintf(&b, "  limits:      %s\n", lim.bannerNote())
	b.WriteString(securityBanner(cfg, lim.sec, log))
	if cfg.File != "" {
		fmt.Fprintf(&b, "  config:      %s\n", cfg.File)
	} else {
		fmt.Fprintf(&b, "  config:      built-in defaults\n")
	}
	os.Stdout.WriteString(b.String())
}
