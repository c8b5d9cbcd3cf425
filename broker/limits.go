package broker

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
)

// fileReserve is how many file descriptors the broker keeps for itself
// (journal segments, the management port and its connections, a database
// pool, lock files, a replication connection) when it derives the
// connection limit from the open-file limit.
const fileReserve = 256 + server.HTTPMaxConnections

// netLimits are a broker's connection limits (docs/limits.md), set up by
// Run and shared by the acceptors of every activation: the broker-wide
// connection budget, the banner's note, and the counters of acceptors
// already closed (so /metrics stays monotonic across HA activations). A
// nil *netLimits (tests that assemble parts of a broker) has no budget
// and keeps no counters.
type netLimits struct {
	budget *server.ConnectionBudget
	note   string // for the banner

	mu     sync.Mutex
	closed server.NetStats

	// sec is the broker's security (security.go), Run's; mgmtTLS the
	// management address's TLS (<management-http-ssl>).
	sec     *auth.Guard
	mgmtTLS *tls.Config
}

// newNetLimits raises the open-file limit to the hard limit (Go's runtime
// does so at start too; this makes it explicit and reads the result) and
// derives the broker-wide connection limit (connectionLimit). It is the
// one place the broker touches RLIMIT_NOFILE.
func newNetLimits(cfg *config.Config) *netLimits {
	files, hard := raiseFileLimit()
	allowed, why := connectionLimit(cfg.ConnectionsAllowed, files)
	fl := fmt.Sprintf("%d open files", files)
	switch {
	case files == 0:
		fl = "open-file limit unknown"
	case files < hard:
		fl += fmt.Sprintf(" (could not raise it to the hard limit %d)", hard)
	}
	return &netLimits{budget: server.NewConnectionBudget(allowed), note: fl + ", " + why}
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
func (nl *netLimits) netOptions(cfg *config.Config, ac config.Acceptor, users map[string]string) server.NetOptions {
	o := server.NetOptions{Users: users,
		ConnectionsAllowed: ac.Limits.ConnectionsAllowed,
		HighWaterMark:      ac.Limits.HighWaterMark, LowWaterMark: ac.Limits.LowWaterMark,
		WriteTimeout: ac.Limits.WriteTimeout,
		TTLMax:       cfg.ConnectionTTLMax,
	}
	if nl != nil {
		o.Budget = nl.budget
	}
	if cfg.ConnectionTTLOverride > 0 {
		o.TTLOverride = cfg.ConnectionTTLOverride
	}
	return o
}

// bannerNote is the banner's limits line.
func (nl *netLimits) bannerNote() string {
	if nl == nil {
		return "none set up"
	}
	return nl.note
}

// retire keeps a closing acceptor's counters.
func (nl *netLimits) retire(a *server.Acceptor) {
	if nl == nil {
		return
	}
	s := a.Stats()
	nl.mu.Lock()
	nl.closed = nl.closed.Add(s)
	nl.mu.Unlock()
}

// netStats sums the counters of closed acceptors and of accs.
func (nl *netLimits) netStats(accs []*server.Acceptor) server.NetStats {
	var n server.NetStats
	if nl != nil {
		nl.mu.Lock()
		n = nl.closed
		nl.mu.Unlock()
	}
	for _, a := range accs {
		n = n.Add(a.Stats())
	}
	return n
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
// options (pprof decided here), with its timeouts and connection bound.
func managementServer(cfg *config.Config, lim *netLimits, ln net.Listener, mo server.ManagementOptions, log *slog.Logger) *server.HTTPServer {
	mo.Pprof = pprofOn(cfg, ln.Addr(), log)
	if lim != nil && mo.Security == nil {
		mo.Security = lim.sec
	}
	hs := server.NewHTTPServer(server.ManagementHandler(mo), log)
	if lim != nil && lim.mgmtTLS != nil {
		hs.SetTLS(lim.mgmtTLS)
	}
	return hs
}
