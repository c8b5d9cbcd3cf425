package broker

// Colocated backups (issue 19, R40-R43): a live with <colocated> runs as
// the primary of its store's policy (the nested <primary>/<master>
// options apply to it) and
//
//   - with request-backup, asks the other lives of its cluster connection
//     (its static connectors, in order) to host a backup of it, over a
//     cluster connection (wire.BackupRequest with its broker.xml, its
//     instance directory, and what `tandem run` flags changed), every
//     backup-request-retry-interval, backup-request-retries times (-1:
//     for ever), until one accepts; then it probes the backup and adds
//     it to the topology its clients learn; a backup that stops answering
//     is requested again;
//   - hosts up to max-backups backups of other lives: each runs in this
//     process as colocated_backup_N through RunContext, with the
//     requester's configuration, its acceptors, connectors (except the
//     <excludes>) shifted by backup-port-offset (the announced connector
//     on this host's host name), its management address on an ephemeral
//     port of this broker's management host, the requester's nested
//     <backup>/<slave> options, and its directories: the requester's
//     shared store, or (replication) this broker's directories suffixed
//     with the backup's name. /status lists them.
//
// A hosted backup is a broker like any other: a shared-store backup waits
// for the requester's lock and serves its store on the offset port when
// the requester dies. Stopping this broker stops the backups it hosts.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// pairExtra attaches what a policy adds to a broker of a pair run by
// runSharedStore (or runs beside it); attach returns what detaches it.
type pairExtra struct {
	attach func(h *haBroker) (detach func())
}

// pairExtras are keyed by the configuration a pair runs with: RunContext
// cannot carry them, and a colocated backup is run through it.
var pairExtras sync.Map // *config.Config -> *pairExtra

func pairExtraFor(cfg *config.Config) *pairExtra {
	if v, ok := pairExtras.Load(cfg); ok {
		return v.(*pairExtra)
	}
	return nil
}

// runColocated is `tandem run` with <colocated>: the broker runs as the
// primary of its store's policy with the colocated part attached.
// Colocated replication needs the quorum vote (Check refuses it).
func runColocated(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits) int {
	col := cfg.HA.Colocated
	if col.Store != config.PolicySharedStore {
		fmt.Fprintf(os.Stderr, "tandem run: colocated %s is not supported yet\n", col.Store)
		return exitCannot
	}
	primary := *cfg
	primary.HA.Policy = col.Store
	c := &colocated{cfg: cfg, log: log}
	pairExtras.Store(&primary, &pairExtra{attach: c.attach})
	defer pairExtras.Delete(&primary)
	return runSharedStore(stop, &primary, log, lim)
}

// colocated is a colocated broker's part: the backups it hosts and the
// request for its own.
type colocated struct {
	cfg *config.Config
	log *slog.Logger
	h   *haBroker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	hosted   []*hostedBackup
	backup   string // host:port of this broker's backup once a host took it
	hostAddr string // the broker hosting it
}

// hostedBackup is one backup this broker hosts.
type hostedBackup struct {
	name, requesterNode, requesterName, url string
	cfg                                     *config.Config
	since                                   time.Time
	cancel                                  context.CancelFunc
	done                                    chan struct{}
	exit                                    int
}

func (b *hostedBackup) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// attach is the pair hook: it makes the pair's live host backups, adds
// this broker's backup to its probes and /status, and starts requesting
// one.
func (c *colocated) attach(h *haBroker) func() {
	c.h = h
	h.policy = config.PolicyColocated
	c.ctx, c.cancel = context.WithCancel(context.Background())
	h.onServing = func(l *live) { l.srv.SetBackupHost(c.handle) }
	h.extraPeers = c.peers
	h.extraStatus = c.status
	if c.cfg.HA.Colocated.RequestBackup {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.requestLoop()
		}()
	}
	return c.detach
}

// detach stops the request loop and every hosted backup.
func (c *colocated) detach() {
	c.cancel()
	c.mu.Lock()
	hs := slices.Clone(c.hosted)
	c.mu.Unlock()
	for _, b := range hs {
		b.cancel()
	}
	c.wg.Wait()
}

// peers are the extra addresses the pair probes: this broker's backup.
func (c *colocated) peers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backup == "" {
		return nil
	}
	return []string{c.backup}
}

// status adds the hosted backups and this broker's backup host to /status.
func (c *colocated) status(st *server.Status) {
	c.mu.Lock()
	hs := slices.Clone(c.hosted)
	st.ColocatedBackupHost = c.hostAddr
	c.mu.Unlock()
	for _, b := range hs {
		cb := server.ColocatedBackup{Name: b.name, RequesterNode: b.requesterNode, RequesterName: b.requesterName, URL: b.url,
			Role: "backup", State: "starting", Since: b.since.UTC().Format(time.RFC3339)}
		if b.exited() {
			cb.State = fmt.Sprintf("exited (status %d)", b.exit)
		} else if fn := hostedStatusFor(b.cfg); fn != nil {
			bs := fn()
			cb.Role, cb.State, cb.Epoch = bs.Role, bs.State, bs.Epoch
		}
		st.ColocatedBackups = append(st.ColocatedBackups, cb)
	}
}

// hostedStatuses are the /status functions of the brokers this process
// runs for others, by their configuration.
var hostedStatuses sync.Map // *config.Config -> func() server.Status

func hostedStatusFor(cfg *config.Config) func() server.Status {
	if v, ok := hostedStatuses.Load(cfg); ok {
		return v.(func() server.Status)
	}
	return nil
}

// requestLoop asks for a backup until one is hosted, watches it, and asks
// again when it is gone.
func (c *colocated) requestLoop() {
	col := c.cfg.HA.Colocated
	every := col.BackupRequestRetryInterval
	if every <= 0 {
		every = 5 * time.Second
	}
	var raw []byte
	if c.cfg.File != "" {
		var err error
		if raw, err = os.ReadFile(c.cfg.File); err != nil {
			c.log.Error("colocated: cannot read this broker's configuration to send with the backup request", "err", err)
			return
		}
	} else {
		c.log.Error("colocated: request-backup needs a configuration file (the backup runs with it)")
		return
	}
	failed := 0
	for {
		if c.active() {
			if host, url, ok := c.requestOnce(raw); ok {
				c.mu.Lock()
				c.backup, c.hostAddr = strings.TrimPrefix(url, "tcp://"), host
				c.mu.Unlock()
				c.watch(strings.TrimPrefix(url, "tcp://"), every)
				c.mu.Lock()
				c.backup, c.hostAddr = "", ""
				c.mu.Unlock()
				if c.ctx.Err() != nil {
					return
				}
				c.log.Warn("colocated: this broker's backup stopped answering: requesting another", "backup", url, "host", host)
				failed = 0
				continue
			}
			failed++
			if n := col.BackupRequestRetries; n >= 0 && failed > n {
				c.log.Error("colocated: no broker took a backup of this one; giving up (backup-request-retries)", "attempts", failed)
				return
			}
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// active reports whether this broker serves (a backup is requested for a
// live).
func (c *colocated) active() bool {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	return c.h.serving
}

// requestOnce asks each candidate in turn; it returns the host and the
// backup's URL of the first that accepts.
func (c *colocated) requestOnce(raw []byte) (host, url string, ok bool) {
	cfg := c.cfg
	req := &wire.BackupRequest{NodeID: c.h.nodeID, Name: cfg.Name, Store: string(cfg.HA.Colocated.Store),
		InstanceDir: cfg.InstanceDir, ConfigName: cfg.File, Config: raw}
	if len(cfg.Acceptors) > 0 {
		req.Listen = "tcp://" + cfg.Acceptors[0].Address()
	}
	for _, d := range []string{cfg.Dirs.Journal, cfg.Dirs.Bindings, cfg.Dirs.Paging, cfg.Dirs.LargeMessages, cfg.Dirs.NodeManagerLock} {
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
		req.Dirs = append(req.Dirs, d)
	}
	targets, _ := c.h.probeTargets()
	for _, addr := range targets {
		ans, err := c.ask(addr, req)
		switch {
		case err != nil:
			c.log.Debug("colocated: backup request failed", "host", addr, "err", err)
		case ans.Code != wire.CodeOK:
			c.log.Info("colocated: backup request refused", "host", addr, "code", ans.Code, "reason", ans.Message)
		default:
			c.log.Info("colocated: a broker hosts this broker's backup", "host", addr, "backup", ans.Name, "url", ans.URL)
			return addr, ans.URL, true
		}
	}
	return "", "", false
}

// ask sends one backup request to addr.
func (c *colocated) ask(addr string, req *wire.BackupRequest) (*wire.BackupAnswer, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	nc, err := dialPeer(ctx, c.cfg, addr)
	if err != nil {
		return nil, err
	}
	cc := &clusterConn{addr: addr, nc: nc, dec: wire.NewDecoder(nc)}
	defer cc.close()
	f, err := cc.call(ctx, &wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.Version, ClientID: wire.ClusterClientID,
		User: c.cfg.ClusterUser, Password: c.cfg.ClusterPassword})
	if err != nil {
		return nil, err
	}
	if e, ok := f.(*wire.Error); ok {
		return nil, fmt.Errorf("%v: %s", e.Code, e.Message)
	}
	if _, ok := f.(*wire.Welcome); !ok {
		return nil, fmt.Errorf("got %v, want Welcome", f.Type())
	}
	f, err = cc.call(ctx, req)
	if err != nil {
		return nil, err
	}
	ans, ok := f.(*wire.BackupAnswer)
	if !ok {
		return nil, fmt.Errorf("got %v, want BackupAnswer", f.Type())
	}
	return ans, nil
}

// watch probes the backup until it stops answering (three probes in a
// row) or this broker stops.
func (c *colocated) watch(addr string, every time.Duration) {
	misses := 0
	for misses < 3 {
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(every):
		}
		if _, ok := c.h.probe(c.ctx, addr); ok {
			misses = 0
		} else {
			misses++
		}
	}
}

// handle is the live server's BackupHost: it starts a backup of the
// requester in this process, or says why not.
func (c *colocated) handle(ctx context.Context, req *wire.BackupRequest) *wire.BackupAnswer {
	refuse := func(code wire.Code, format string, args ...any) *wire.BackupAnswer {
		msg := fmt.Sprintf(format, args...)
		c.log.Warn("colocated: backup request refused", "requester_node", req.NodeID, "requester_name", req.Name, "reason", msg)
		return &wire.BackupAnswer{Code: code, Message: msg}
	}
	col := c.cfg.HA.Colocated
	if req.NodeID == "" || req.NodeID == c.h.nodeID {
		return refuse(wire.CodeInvalid, "a broker does not host its own backup")
	}
	c.mu.Lock()
	running, index := 0, map[string]bool{}
	for _, b := range c.hosted {
		if b.exited() {
			continue
		}
		if b.requesterNode == req.NodeID {
			c.mu.Unlock()
			return &wire.BackupAnswer{Code: wire.CodeOK, Name: b.name, URL: b.url}
		}
		running++
		index[b.name] = true
	}
	c.mu.Unlock()
	if running >= col.MaxBackups {
		return refuse(wire.CodeLimit, "this broker hosts %d backups already (max-backups %d)", running, col.MaxBackups)
	}
	name := ""
	for n := 1; name == ""; n++ {
		if cand := "colocated_backup_" + strconv.Itoa(n); !index[cand] {
			name = cand
		}
	}
	rcfg, _, err := config.ParseInstance(req.ConfigName, bytes.NewReader(req.Config), req.InstanceDir)
	if err != nil {
		return refuse(wire.CodeInvalid, "the requester's configuration: %v", err)
	}
	if err := applyRequesterRuntime(rcfg, req); err != nil {
		return refuse(wire.CodeInvalid, "%v", err)
	}
	bcfg, err := colocatedBackupConfig(rcfg, c.cfg, name)
	if err != nil {
		return refuse(wire.CodeInvalid, "%v", err)
	}
	if err := Check(bcfg); err != nil {
		return refuse(wire.CodeInvalid, "%v", err)
	}
	bctx, cancel := context.WithCancel(c.ctx)
	b := &hostedBackup{name: name, requesterNode: req.NodeID, requesterName: req.Name, url: haAnnounceURL(bcfg), cfg: bcfg,
		since: time.Now(), cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.hosted = append(c.hosted, b)
	c.mu.Unlock()
	pairExtras.Store(bcfg, &pairExtra{attach: func(h *haBroker) func() {
		hostedStatuses.Store(bcfg, h.status)
		return func() { hostedStatuses.Delete(bcfg) }
	}})
	blog := c.log.With("colocated_backup", name, "requester_node", req.NodeID)
	blog.Info("colocated: starting a backup of another broker in this process", "requester_name", req.Name,
		"url", b.url, "journal", bcfg.Dirs.Journal)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer pairExtras.Delete(bcfg)
		b.exit = RunContext(bctx, bcfg)
		close(b.done)
		blog.Info("colocated: hosted backup ended", "status", b.exit)
	}()
	// Answer once its acceptor answers (or it exited).
	addr := bcfg.Acceptors[0].Address()
	if h, p, err := net.SplitHostPort(addr); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
		addr = net.JoinHostPort("127.0.0.1", p)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b.exited() {
			return refuse(wire.CodeInternal, "the backup %s exited with status %d at start", name, b.exit)
		}
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			return &wire.BackupAnswer{Code: wire.CodeOK, Name: name, URL: b.url}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return refuse(wire.CodeInternal, "the backup %s does not answer on %s", name, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// applyRequesterRuntime puts what the requester's `tandem run` flags
// changed into its parsed configuration: the first acceptor's address and
// the directories.
func applyRequesterRuntime(cfg *config.Config, req *wire.BackupRequest) error {
	if req.Listen != "" && len(cfg.Acceptors) > 0 {
		hp, ok := strings.CutPrefix(req.Listen, "tcp://")
		if !ok {
			return fmt.Errorf("the requester's acceptor %q is not tcp://host:port", req.Listen)
		}
		host, port, err := net.SplitHostPort(hp)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			return fmt.Errorf("the requester's acceptor %q is not tcp://host:port", req.Listen)
		}
		a := cfg.Acceptors[0]
		a.Host, a.Port = host, n
		a.URL = "tcp://" + a.Address()
		cfg.Acceptors = append([]config.Acceptor{a}, cfg.Acceptors[1:]...)
	}
	if len(req.Dirs) == 5 {
		d := &cfg.Dirs
		d.Journal, d.Bindings, d.Paging, d.LargeMessages, d.NodeManagerLock = req.Dirs[0], req.Dirs[1], req.Dirs[2], req.Dirs[3], req.Dirs[4]
	}
	return nil
}

// colocatedBackupConfig derives the configuration of the backup named
// name of the requester (req, a <colocated> broker's configuration) to
// run in the process of host.
func colocatedBackupConfig(req, host *config.Config, name string) (*config.Config, error) {
	col := req.HA.Colocated
	if col == nil || req.HA.Policy != config.PolicyColocated {
		return nil, errors.New("the requester's configuration has no <colocated> policy")
	}
	b := *req
	b.Name = name
	off := col.BackupPortOffset
	shift := func(a config.Acceptor) (config.Acceptor, error) {
		a.Port += off
		if a.Port > 65535 {
			return a, fmt.Errorf("%s %q: port %d + backup-port-offset %d is above 65535", a.Scheme, a.Name, a.Port-off, off)
		}
		if a.Scheme == "tcp" {
			a.URL = "tcp://" + a.Address()
		}
		return a, nil
	}
	b.Acceptors = nil
	for _, a := range req.Acceptors {
		s, err := shift(a)
		if err != nil {
			return nil, err
		}
		b.Acceptors = append(b.Acceptors, s)
	}
	if len(b.Acceptors) == 0 {
		return nil, errors.New("the requester has no acceptor")
	}
	announce := ""
	for _, cc := range req.ClusterConnections {
		announce = cc.ConnectorRef
		break
	}
	hostName := ""
	if u := haAnnounceURL(host); u != "" {
		if h, _, err := net.SplitHostPort(strings.TrimPrefix(u, "tcp://")); err == nil {
			hostName = h
		}
	}
	b.Connectors = nil
	for _, cn := range req.Connectors {
		if slices.Contains(col.Excludes, cn.Name) {
			b.Connectors = append(b.Connectors, cn)
			continue
		}
		s, err := shift(cn)
		if err != nil {
			return nil, err
		}
		if cn.Name == announce && hostName != "" && s.Scheme == "tcp" {
			s.Host = hostName // the backup runs on this host
			s.URL = "tcp://" + s.Address()
		}
		b.Connectors = append(b.Connectors, s)
	}
	mh := "127.0.0.1"
	if h, _, err := net.SplitHostPort(host.ManagementAddress); err == nil && h != "" {
		mh = h
	}
	b.ManagementAddress = net.JoinHostPort(mh, "0")
	ha := col.Backup
	ha.Policy, ha.Role = col.Store, config.RoleBackup
	ha.Element = string(col.Store) + "/colocated backup"
	ha.Line, ha.Coordinator, ha.Colocated = req.HA.Line, req.HA.Coordinator, nil
	b.HA = ha
	if col.Store == config.PolicyReplication {
		hd := host.Dirs
		suffix := func(d string) string { return d + "_" + name }
		b.Dirs.Journal, b.Dirs.Bindings = suffix(hd.Journal), suffix(hd.Bindings)
		b.Dirs.Paging, b.Dirs.LargeMessages = suffix(hd.Paging), suffix(hd.LargeMessages)
		b.Dirs.NodeManagerLock = suffix(hd.NodeManagerLock)
	}
	return &b, nil
}
