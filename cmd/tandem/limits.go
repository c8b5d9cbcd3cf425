package main

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
)

// fileReserve is how many file descriptors the broker keeps for itself
// (journal segments, the management port and its connections, a database
// pool, lock files) when it derives the connection limit from the
// open-file limit.
const fileReserve = 256 + server.HTTPMaxConnections

// limits are the process-wide connection limits, set up once by `tandem
// run` and shared by every activation's acceptors.
var limits struct {
	once   sync.Once
	files  int    // open-file limit after raising it
	note   string // for the banner
	budget *server.ConnectionBudget

	mu     sync.Mutex
	closed server.NetStats // of acceptors already closed (counters stay monotonic)
}

// setupLimits raises the open-file limit to the hard limit (Go's runtime
// does so at start too; this makes it explicit and reads the result) and
// derives the broker-wide connection limit (connectionLimit).
func setupLimits(cfg *config.Config) {
	limits.once.Do(func() {
		files, hard := raiseFileLimit()
		allowed, why := connectionLimit(cfg.ConnectionsAllowed, files)
		limits.files, limits.budget = files, server.NewConnectionBudget(allowed)
		fl := fmt.Sprintf("%d open files", files)
		switch {
		case files == 0:
			fl = "open-file limit unknown"
		case files < hard:
			fl += fmt.Sprintf(" (could not raise it to the hard limit %d)", hard)
		}
		limits.note = fl + ", " + why
	})
}

// connectionLimit is the broker-wide connection limit (0: none) for
// <connections-allowed> (-1: none of its own) and the open-file limit
// (0: unknown): the configured one, lowered to what the open files leave
// after fileReserve. It also says why, for the banner.
func connectionLimit(configured, files int) (int, string) {
	byFiles := max(files-fileReserve, 1)
	switch {
	case files > 0 && (configured < 0 || configured > byFiles):
		return byFiles, fmt.Sprintf("%d connections (the open-file limit %d less %d kept for the broker)", byFiles, files, fileReserve)
	case configured < 0:
		return 0, "no connection limit"
	}
	return configured, fmt.Sprintf("connections-allowed %d", configured)
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard one where the
// system allows it and returns the soft and hard limits then in force (0
// when unknown).
func raiseFileLimit() (soft, hard int) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			r = want
		}
	}
	clamp := func(v uint64) int { return int(min(v, 1<<30)) }
	return clamp(r.Cur), clamp(r.Max)
}

// netOptions are an acceptor's options from the configuration: users,
// TTLs, the acceptor's URL parameters and the broker-wide budget.
func netOptions(cfg *config.Config, ac config.Acceptor, users map[string]string) server.NetOptions {
	o := server.NetOptions{Users: users, Budget: limits.budget,
		ConnectionsAllowed: ac.Limits.ConnectionsAllowed,
		HighWaterMark:      ac.Limits.HighWaterMark, LowWaterMark: ac.Limits.LowWaterMark,
		WriteTimeout: ac.Limits.WriteTimeout,
		TTLMax:       cfg.ConnectionTTLMax,
	}
	if cfg.ConnectionTTLOverride > 0 {
		o.TTLOverride = cfg.ConnectionTTLOverride
	}
	return o
}

// pprofOn reports whether /debug/pprof/ is served: <pprof-enabled>, else
// only on a loopback management address. Enabled elsewhere, it warns.
func pprofOn(cfg *config.Config, mgmt net.Addr, log *slog.Logger) bool {
	if cfg.PprofEnabled == nil {
		return server.IsLoopback(mgmt)
	}
	if *cfg.PprofEnabled && !server.IsLoopback(mgmt) {
		log.Warn("pprof-enabled: /debug/pprof/ is served without authentication on a non-loopback address", "address", mgmt.String())
	}
	return *cfg.PprofEnabled
}

// managementServer is the management HTTP server for the handler's
// options (pprof decided here).
func managementServer(cfg *config.Config, ln net.Listener, mo server.ManagementOptions, log *slog.Logger) *server.HTTPServer {
	mo.Pprof = pprofOn(cfg, ln.Addr(), log)
	return server.NewHTTPServer(server.ManagementHandler(mo), log)
}

// bannerLimits is the banner's limits line.
func bannerLimits() string { return limits.note }

// retireAcceptorStats keeps a closing acceptor's counters.
func retireAcceptorStats(a *server.Acceptor) {
	s := a.Stats()
	limits.mu.Lock()
	limits.closed = limits.closed.Add(s)
	limits.mu.Unlock()
}

// netStats sums the counters of closed acceptors and of accs.
func netStats(accs []*server.Acceptor) server.NetStats {
	limits.mu.Lock()
	n := limits.closed
	limits.mu.Unlock()
	for _, a := range accs {
		n = n.Add(a.Stats())
	}
	return n
}
