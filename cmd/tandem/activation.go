package main

// `tandem activation list|set` (CLI.md), Artemis's `artemis activation`:
// the local activation sequence (the epoch field of server.lock in the
// node-manager-lock-directory, with the node ID) and the coordinated one
// in ZooKeeper, shown and set for disaster recovery. See
// docs/ha-replication-zookeeper.md.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tandemmq/tandem/broker"
	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
)

func init() {
	register(command{name: "activation", summary: "list or set the replication activation sequences (activation list|set)", run: runActivation})
}

func runActivation(args []string) int {
	return activationMain(args, os.Stdout, os.Stderr)
}

const activationUsage = `usage: tandem activation list [--config FILE] [--data DIR] [--local] [--remote] [--json]
       tandem activation set (--local N | --remote N) [--config FILE] [--data DIR]`

func activationMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "set") {
		fmt.Fprintln(stderr, activationUsage)
		return exitCannot
	}
	sub := args[0]
	fs := flag.NewFlagSet("activation "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "", "broker.xml (default ./etc/broker.xml if it exists)")
	dataDir := fs.String("data", "./data", "data directory (the lock directory is DIR/journal unless the configuration sets node-manager-lock-directory)")
	var (
		showLocal, showRemote, asJSON *bool
		setLocal, setRemote           *string
	)
	if sub == "list" {
		showLocal = fs.Bool("local", false, "only the local activation sequence")
		showRemote = fs.Bool("remote", false, "only the coordinated activation sequence (ZooKeeper)")
		asJSON = fs.Bool("json", false, "print one JSON object")
	} else {
		setLocal = fs.String("local", "", "set the local activation sequence to N (the broker must be stopped)")
		setRemote = fs.String("remote", "", "set the coordinated activation sequence in ZooKeeper to N")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return exitCannot
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tandem activation %s: %v\n", sub, err)
		return exitCannot
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg, err := loadActivationConfig(*cfgFile, stderr)
	if err != nil {
		return fail(err)
	}
	if set["data"] || cfg.File == "" {
		cfg.ApplyDataDir(*dataDir)
	}
	lockDir := cfg.Dirs.NodeManagerLock
	if sub == "list" {
		local, remote := *showLocal, *showRemote
		if !local && !remote {
			local, remote = true, true
		}
		return activationList(cfg, lockDir, local, remote, *asJSON, stdout, stderr)
	}
	switch {
	case set["local"] == set["remote"]:
		return fail(errors.New("give exactly one of --local N and --remote N"))
	case set["local"]:
		n, err := strconv.ParseUint(*setLocal, 10, 64)
		if err != nil {
			return fail(fmt.Errorf("--local %q: want a non-negative integer", *setLocal))
		}
		if cfg.HA.Policy == config.PolicySharedStore {
			return fail(fmt.Errorf("%s configures shared-store HA: its server.lock epoch is not a replication activation sequence", cfg.File))
		}
		old, err := setLocalSequence(lockDir, n)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "local activation sequence (%s): %d -> %d\n", filepath.Join(lockDir, lockfile.StateFileName), old, n)
		return exitOK
	default:
		n, err := strconv.ParseInt(*setRemote, 10, 64)
		if err != nil {
			return fail(fmt.Errorf("--remote %q: want an integer", *setRemote))
		}
		z, err := dialActivationZK(cfg, stderr)
		if err != nil {
			return fail(err)
		}
		defer z.Close()
		ctx, cancel := context.WithTimeout(context.Background(), zkOpTimeout(cfg))
		defer cancel()
		old, oldErr := z.ReadCoordinated(ctx)
		if err := z.SetCoordinated(ctx, n); err != nil {
			return fail(err)
		}
		was := fmt.Sprint(old)
		if oldErr != nil {
			was = "unreadable (" + oldErr.Error() + ")"
		}
		fmt.Fprintf(stdout, "coordinated activation sequence (zookeeper %s): %s -> %d\n", z.SequencePath(), was, n)
		return exitOK
	}
}

// loadActivationConfig reads FILE, else ./etc/broker.xml, else the
// defaults (warnings go to stderr).
func loadActivationConfig(file string, stderr io.Writer) (*config.Config, error) {
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
		fmt.Fprintln(stderr, w.String())
	}
	return cfg, err
}

// replZKOptions maps a configuration's <manager> properties and
// group-name to the ZooKeeper adapter's options (the broker uses the same
// mapping, so both find the same znodes).
func replZKOptions(cfg *config.Config) (hasm.ZKOptions, error) { return broker.ZKOptions(cfg) }

func zkOpTimeout(cfg *config.Config) time.Duration {
	if m := cfg.HA.Manager; m != nil && m.SessionTimeout > 0 {
		return max(m.SessionTimeout, 5*time.Second)
	}
	return 20 * time.Second
}

// dialActivationZK connects for a short look: it holds nothing, so a
// session-ms outside the ensemble's range is only a warning.
func dialActivationZK(cfg *config.Config, stderr io.Writer) (*hasm.ZKCoordinator, error) {
	o, err := replZKOptions(cfg)
	if err != nil {
		return nil, err
	}
	o.AllowOutOfRangeSession = true
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	return hasm.DialZK(context.Background(), o)
}

// setLocalSequence writes L into dir's server.lock, refusing while a
// broker holds the directory; it returns the old value.
func setLocalSequence(dir string, n uint64) (uint64, error) {
	path := filepath.Join(dir, lockfile.StateFileName)
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("no server lock at %s (the broker never started with this data directory?): %w", path, err)
	}
	m, err := lockfile.Open(dir, lockfile.Options{})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	ok, err := m.TryAcquirePrimary()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("a running broker holds %s (%s is locked): stop it first", dir, lockfile.PrimaryFileName)
	}
	r, err := m.ReadState()
	if err != nil {
		return 0, err
	}
	s := lockfile.StateActive
	if n == 0 {
		s = lockfile.StateNotStarted
	}
	if err := m.WriteLocal(r.NodeID, n, s); err != nil {
		return 0, err
	}
	return r.Epoch, m.ReleasePrimary()
}

// activationView is list's JSON.
type activationView struct {
	NodeID      string                `json:"node_id,omitempty"`
	LockDir     string                `json:"lock_directory,omitempty"`
	Local       *uint64               `json:"local,omitempty"`
	InUse       *bool                 `json:"in_use,omitempty"` // a broker holds the directory
	Znode       string                `json:"znode,omitempty"`
	Coordinated *int64                `json:"coordinated,omitempty"`
	Claimed     *bool                 `json:"claimed,omitempty"` // C < 0: -C claimed, not committed
	Lock        *activationLockHolder `json:"lock,omitempty"`
	LockFree    *bool                 `json:"lock_free,omitempty"`
}

type activationLockHolder struct {
	NodeID string `json:"node_id"`
	URL    string `json:"url"`
	Seq    uint64 `json:"seq"`
}

func activationList(cfg *config.Config, lockDir string, local, remote, asJSON bool, stdout, stderr io.Writer) int {
	var v activationView
	if local {
		v.LockDir = lockDir
		st, err := lockfile.Probe(lockDir)
		switch {
		case err != nil && !remote:
			fmt.Fprintf(stderr, "tandem activation list: %v\n", err)
			return exitCannot
		case err == nil && st.StateErr != nil:
			fmt.Fprintf(stderr, "tandem activation list: %v\n", st.StateErr)
			return exitCannot
		case err == nil:
			l := st.State.Epoch
			v.Local, v.InUse = &l, &st.PrimaryLocked
			if !st.State.NodeID.IsZero() {
				v.NodeID = st.State.NodeID.String()
			}
		}
	}
	if remote {
		z, err := dialActivationZK(cfg, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "tandem activation list: %v\n", err)
			return exitCannot
		}
		defer z.Close()
		ctx, cancel := context.WithTimeout(context.Background(), zkOpTimeout(cfg))
		defer cancel()
		c, err := z.ReadCoordinated(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "tandem activation list: %v\n", err)
			return exitCannot
		}
		h, err := z.ReadLock(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "tandem activation list: %v\n", err)
			return exitCannot
		}
		claimed := c < 0
		v.Znode, v.Coordinated, v.Claimed = z.SequencePath(), &c, &claimed
		free := !h.Held
		v.LockFree = &free
		if h.Held {
			v.Lock = &activationLockHolder{NodeID: h.NodeID, URL: h.URL, Seq: h.Seq}
		}
	}
	if asJSON {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	if local {
		if v.Local == nil {
			fmt.Fprintf(stdout, "local:        none (no server lock in %s)\n", lockDir)
		} else {
			use := "no broker holds it"
			if *v.InUse {
				use = "a broker holds it"
			}
			fmt.Fprintf(stdout, "node ID:      %s\n", v.NodeID)
			fmt.Fprintf(stdout, "local:        %d (%s; %s)\n", *v.Local, filepath.Join(lockDir, lockfile.StateFileName), use)
		}
	}
	if remote {
		note := ""
		if *v.Claimed {
			note = fmt.Sprintf(", %d claimed but not committed", -*v.Coordinated)
		}
		fmt.Fprintf(stdout, "coordinated:  %d (zookeeper %s%s)\n", *v.Coordinated, v.Znode, note)
		if v.Lock == nil {
			fmt.Fprintln(stdout, "lock:         free")
		} else {
			fmt.Fprintf(stdout, "lock:         held by node %s at %s (its sequence %d when it took the lock)\n", v.Lock.NodeID, v.Lock.URL, v.Lock.Seq)
		}
	}
	return exitOK
}
