package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

func init() {
	register(command{name: "run", summary: "run a broker", run: runBroker})
}

// runBroker is `tandem run [--config FILE] [--data DIR] [--listen URL] [--http ADDR]`.
func runBroker(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "broker.xml (default ./etc/broker.xml if it exists, else built-in defaults)")
	dataDir := fs.String("data", "./data", "data directory: DIR/journal, DIR/bindings, DIR/paging, DIR/large-messages")
	listen := fs.String("listen", "", "replaces the first acceptor's URL (tcp://host:port)")
	httpAddr := fs.String("http", "", "management HTTP address (default 127.0.0.1:8161)")
	if err := fs.Parse(args); err != nil {
		return exitCannot
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tandem run: unexpected arguments %q\n", fs.Args())
		return exitCannot
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	tuneProcs()

	cfg, err := loadRunConfig(*cfgFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	if set["data"] || cfg.File == "" {
		cfg.ApplyDataDir(*dataDir)
	}
	if *listen != "" {
		if err := replaceAcceptor(cfg, *listen); err != nil {
			fmt.Fprintf(os.Stderr, "tandem run: --listen: %v\n", err)
			return exitCannot
		}
	}
	if *httpAddr != "" {
		cfg.ManagementAddress = *httpAddr
	}
	if cfg.ManagementAddress == "" {
		cfg.ManagementAddress = config.DefaultManagementAddress
	}
	setupLimits(cfg)
	return serve(cfg)
}

// procsNote says how many Go processors the broker runs on, for the banner.
var procsNote string

// tuneProcs runs the broker on one Go processor on a host with two CPUs
// or fewer, unless GOMAXPROCS is set in the environment. Measured with
// tandem bench on 2 cores (bench/shapes.sh with BROKER_ENV=GOMAXPROCS=1,
// interleaved, medians of 3): every shape was faster and 8 synchronous
// producers cost 30.9 us of broker CPU per message instead of 44.7 us.
// The broker's work is a pipeline around one journal flusher; a second
// processor mostly adds spinning, work stealing and wake-ups, and takes
// the core the kernel's fdatasync and the network stack need.
func tuneProcs() {
	switch {
	case os.Getenv("GOMAXPROCS") != "":
		procsNote = fmt.Sprintf("%d Go processors of %d CPUs (GOMAXPROCS set)", runtime.GOMAXPROCS(0), runtime.NumCPU())
	case runtime.NumCPU() <= 2:
		runtime.GOMAXPROCS(1)
		procsNote = fmt.Sprintf("1 Go processor of %d CPUs (faster on 2 cores or fewer; set GOMAXPROCS to change)", runtime.NumCPU())
	default:
		procsNote = fmt.Sprintf("%d Go processors", runtime.GOMAXPROCS(0))
	}
}

// loadRunConfig reads FILE, else ./etc/broker.xml, else the defaults.
// Warnings go to stderr.
func loadRunConfig(file string) (*config.Config, error) {
	if file == "" {
		if _, err := os.Stat("etc/broker.xml"); err == nil {
			file = "etc/broker.xml"
		}
	}
	if file == "" {
		return config.Default(), nil
	}
	cfg, warnings, err := config.Load(file)
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, w.String())
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// replaceAcceptor puts url in place of the first acceptor.
func replaceAcceptor(cfg *config.Config, url string) error {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok || !strings.EqualFold(scheme, "tcp") {
		return fmt.Errorf("%q: want tcp://host:port", url)
	}
	hostport, _, _ := strings.Cut(rest, "?")
	host, port, err := net.SplitHostPort(strings.TrimSuffix(hostport, "/"))
	if err != nil {
		return fmt.Errorf("%q: %v", url, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port %q", url, port)
	}
	a := config.Acceptor{Name: "artemis", URL: url, Scheme: "tcp", Host: host, Port: n, Params: map[string]string{}}
	if len(cfg.Acceptors) == 0 {
		cfg.Acceptors = []config.Acceptor{a}
	} else {
		a.Name = cfg.Acceptors[0].Name
		cfg.Acceptors[0] = a
	}
	return nil
}

// haRun runs the broker under an HA policy: the HA integration sets it
// (in a file of its own, e.g. cmd/tandem/ha_run.go), driving loadLive,
// live.serve and live.stop from its activation hooks. While it is nil a
// backup role is refused and other policies run as a single broker.
var haRun func(cfg *config.Config, log *slog.Logger) int

// serve runs the broker until a signal (exit 0) or a storage error (exit 3).
func serve(cfg *config.Config) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	if cfg.HA.Policy != "" && cfg.HA.Policy != config.PolicyNone {
		if haRun != nil {
			return haRun(cfg, log)
		}
		if cfg.HA.Role == config.RoleBackup {
			// Running a backup as a live broker on a shared store would
			// be split brain: refuse until HA activation is wired in.
			fmt.Fprintf(os.Stderr, "tandem run: HA %s backup is not supported by this build yet (it would serve as a second live broker)\n", cfg.HA.Policy)
			return exitCannot
		}
		log.Warn("HA policy is not implemented yet: running as a single broker", "policy", cfg.HA.Policy, "role", cfg.HA.Role)
	}
	lock, err := lockSingle(cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	lo := liveOptions{Policy: "none", Role: "primary"}
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
	metrics := server.MetricsHandler(server.MetricsOptions{
		Server: func() *server.Server { return l.srv }, Connections: l.connections, Net: l.netStats})
	hs := managementServer(cfg, hln, server.ManagementOptions{Status: l.status, Metrics: metrics}, log)
	go hs.Serve(hln)

	printBanner(cfg, l.srv, l.store, l.urls, hln.Addr().String())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		log.Info("stopping", "signal", sig.String())
		err := l.stop(wire.CodeShuttingDown, "broker stopping")
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

func printBanner(cfg *config.Config, srv *server.Server, store *server.Store, urls []string, mgmt string) {
	o := srv.Options()
	var b strings.Builder
	fmt.Fprintf(&b, "Tandem %s broker %q\n", server.Version, cfg.Name)
	fmt.Fprintf(&b, "  node ID:     %s\n", srv.NodeID())
	fmt.Fprintf(&b, "  role:        %s (policy %s, epoch %d)\n", o.Role, o.Policy, srv.Epoch())
	fmt.Fprintf(&b, "  state:       active\n")
	fmt.Fprintf(&b, "  store:       %s (%s)\n", store.Kind, store.Where)
	fmt.Fprintf(&b, "  acceptor:    %s\n", strings.Join(urls, ", "))
	fmt.Fprintf(&b, "  management:  http://%s/status\n", mgmt)
	fmt.Fprintf(&b, "  cpu:         %s\n", procsNote)
	fmt.Fprintf(&b, "  limits:      %s\n", bannerLimits())
	if cfg.AnonymousAllowed() {
		fmt.Fprintf(&b, "  security:    anonymous access allowed (no users configured)\n")
	} else {
		fmt.Fprintf(&b, "  security:    %d users configured\n", len(cfg.Users))
	}
	if cfg.File != "" {
		fmt.Fprintf(&b, "  config:      %s\n", cfg.File)
	} else {
		fmt.Fprintf(&b, "  config:      built-in defaults\n")
	}
	os.Stdout.WriteString(b.String())
}
