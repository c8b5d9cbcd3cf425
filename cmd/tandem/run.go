package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/tandemmq/tandem/broker"
	"github.com/tandemmq/tandem/config"
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
	broker.CPUNote = procsNote
	return broker.Run(cfg)
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
	hostport, query, _ := strings.Cut(rest, "?")
	host, port, err := net.SplitHostPort(strings.TrimSuffix(hostport, "/"))
	if err != nil {
		return fmt.Errorf("%q: %v", url, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port %q", url, port)
	}
	a := config.Acceptor{Name: "artemis", URL: url, Scheme: "tcp", Host: host, Port: n, Params: map[string]string{}}
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == ';' || r == '&' }) {
		k, v, _ := strings.Cut(kv, "=")
		a.Params[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if len(cfg.Acceptors) == 0 {
		cfg.Acceptors = []config.Acceptor{a}
	} else {
		a.Name = cfg.Acceptors[0].Name
		cfg.Acceptors[0] = a
	}
	return nil
}
