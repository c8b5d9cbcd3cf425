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
//     shared store, or (replication) this broker's directories with the
//     backup's name appended, as Artemis names them. /status lists them.
//
// A hosted backup is a broker like any other: a shared-store backup waits
// for the requester's lock and serves its store on the offset port when
// the requester dies; a replicating one copies the requester's journal
// and votes with the cluster's lives (the requester's static connectors,
// unshifted: replicationElectorate), pinned to the requester's node ID.
// Stopping this broker stops the backups it hosts.

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
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// pairExtra attaches what a policy adds to a broker of a pair run by
// runSharedStore or runReplication (or runs beside it); attach returns
// what detaches it.
type pairExtra struct {
	attach func(h *haBroker) (detach func())
	// Replication (the quorum vote) only:
	// attachRepl runs after attach with the replication broker.
	attachRepl func(b *replBroker) (detach func())
	// quorumTargets replace the static connectors as the other voters
	// (a hosted backup's are shifted: they name no voter).
	quorumTargets []string
	// pinNode is the node whose live the broker replicates from (a
	// hosted backup: its requester's); pinSelf pins a colocated live to
	// its own node (quorumTransport.pin).
	pinNode string
	pinSelf bool
}

// pinFor is the quorum transport's pin for the broker h.
func (e *pairExtra) pinFor(h *haBroker) func() lockfile.NodeID {
	switch {
	case e.pinNode != "":
		id, err := parseNodeID(e.pinNode)
		return func() lockfile.NodeID {
			if err != nil {
				// Never a live: nothing matches an unparsable node.
				return lockfile.NodeID{0xff}
			}
			return id
		}
	case e.pinSelf:
		return func() lockfile.NodeID {
			h.mu.Lock()
			node := h.nodeID
			h.mu.Unlock()
			id, _ := parseNodeID(node)
			return id
		}
	}
	return nil
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
// primary of its store's policy (shared store, or replication with the
// quorum vote) with the colocated part attached.
func runColocated(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits) int {
	col := cfg.HA.Colocated
	primary := *cfg
	primary.HA.Policy = col.Store
	c := &colocated{cfg: cfg, log: log}
	ex := &pairExtra{attach: c.attach}
	defer pairExtras.Delete(&primary)
	switch col.Store {
	case config.PolicySharedStore:
		pairExtras.Store(&primary, ex)
		return runSharedStore(stop, &primary, log, lim)
	case config.PolicyReplication:
		// Every colocated live shares the cluster's group-name: its
		// pair is its own node only.
		ex.pinSelf = true
		pairExtras.Store(&primary, ex)
		return runReplication(stop, &primary, log, lim)
	}
	fmt.Fprintf(os.Stderr, "tandem run: colocated %s is not supported\n", col.Store)
	return exitCannot
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

	// hostMu serialises handle: two requests at once would both see a
	// free place under max-backups, and pick the same name.
	hostMu   sync.Mutex
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
	if c.cfg.HA.Colocated.Store == config.PolicyReplication {
		h.quorumPeerFor = c.quorumPeerFor
	}
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
			if bs.NodeID != "" {
				cb.NodeID = bs.NodeID
			}
			cb.Replication = bs.Replication
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

// hostedQuorumSelves are what the replicating backups this process runs
// for others say of themselves in a quorum vote, by their configuration.
var hostedQuorumSelves sync.Map // *config.Config -> func() hasm.QPeer

// quorumPeerFor is the host's quorumPeerFor: the active backup it hosts
// for node, if any.
func (c *colocated) quorumPeerFor(node lockfile.NodeID) (hasm.QPeer, bool) {
	want := node.String()
	c.mu.Lock()
	hs := slices.Clone(c.hosted)
	c.mu.Unlock()
	for _, b := range hs {
		if b.requesterNode != want || b.exited() {
			continue
		}
		v, ok := hostedQuorumSelves.Load(b.cfg)
		if !ok {
			continue
		}
		if p := v.(func() hasm.QPeer)(); p.State == "active" && p.NodeID == node {
			return p, true
		}
	}
	return hasm.QPeer{}, false
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
			if host, url, ok := c.requestOnce(raw, failed >= mutualAfterRounds); ok {
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

// mutualAfterRounds is how many rounds of requests a live waits for a
// live that does not answer before it asks one whose backup it hosts
// (requestOnce).
const mutualAfterRounds = 10

// requestOnce asks each candidate in turn; it returns the host and the
// backup's URL of the first that accepts. A live whose backup this one
// hosts is asked last, when every other one is full, or with anyMutual
// (after mutualAfterRounds rounds without a host).
func (c *colocated) requestOnce(raw []byte, anyMutual bool) (host, url string, ok bool) {
	cfg := c.cfg
	c.h.mu.Lock()
	node := c.h.nodeID
	c.h.mu.Unlock()
	req := &wire.BackupRequest{NodeID: node, Name: cfg.Name, Store: string(cfg.HA.Colocated.Store),
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
	// A live whose backup this broker hosts is asked last, and only when
	// every other one is full (or after mutualAfterRounds rounds): with
	// three lives or more, pairing off two by two while the third is
	// still starting would leave the third without a host (each hosts
	// max-backups); a third live that stays down must not leave the two
	// others without backups for ever.
	targets, _ := c.h.probeTargets()
	var mutual []string
	othersFull := true
	try := func(addr string) bool {
		ans, err := c.ask(addr, req)
		switch {
		case err != nil:
			othersFull = false
			c.log.Debug("colocated: backup request failed", "host", addr, "err", err)
		case ans.Code != wire.CodeOK:
			othersFull = othersFull && ans.Code == wire.CodeLimit
			c.log.Info("colocated: backup request refused", "host", addr, "code", ans.Code, "reason", ans.Message)
		default:
			c.log.Info("colocated: a broker hosts this broker's backup", "host", addr, "backup", ans.Name, "url", ans.URL)
			host, url = addr, ans.URL
			return true
		}
		return false
	}
	for _, addr := range targets {
		if len(targets) > 1 && c.hostsBackupOf(c.h.peerNode(addr)) {
			mutual = append(mutual, addr)
			continue
		}
		if try(addr) {
			return host, url, true
		}
	}
	if othersFull || anyMutual {
		for _, addr := range mutual {
			if try(addr) {
				return host, url, true
			}
		}
	} else if len(mutual) > 0 {
		c.log.Info("colocated: not asking the brokers whose backups this one hosts yet: another may still take it", "hosts", mutual)
	}
	return "", "", false
}

// hostsBackupOf reports whether this broker runs a backup of node.
func (c *colocated) hostsBackupOf(node string) bool {
	if node == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.hosted {
		if b.requesterNode == node && !b.exited() {
			return true
		}
	}
	return false
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
	c.hostMu.Lock()
	defer c.hostMu.Unlock()
	c.h.mu.Lock()
	self := c.h.nodeID
	c.h.mu.Unlock()
	if req.NodeID == "" || req.NodeID == self {
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
	name, nth := "", 0
	for n := 1; name == ""; n++ {
		if cand := colocatedName(n); !index[cand] {
			name, nth = cand, n
		}
	}
	if col.Store == config.PolicyReplication {
		var err error
		if name, nth, err = replicaSlot(c.cfg, req.NodeID, index); err != nil {
			return refuse(wire.CodeLimit, "%v", err)
		}
	}
	rcfg, _, err := config.ParseInstance(req.ConfigName, bytes.NewReader(req.Config), req.InstanceDir)
	if err != nil {
		return refuse(wire.CodeInvalid, "the requester's configuration: %v", err)
	}
	if err := applyRequesterRuntime(rcfg, req); err != nil {
		return refuse(wire.CodeInvalid, "%v", err)
	}
	if rcol := rcfg.HA.Colocated; rcol != nil && rcol.Store != col.Store {
		return refuse(wire.CodeInvalid, "the requester's colocated backups use %s, this broker's %s", rcol.Store, col.Store)
	}
	if col.Store == config.PolicyReplication && rcfg.HA.GroupName != col.Backup.GroupName {
		// As Artemis: the requester's group-name must be the one this
		// broker's <backup> options name.
		return refuse(wire.CodeInvalid, "the requester's group-name %q is not this broker's backup group-name %q", rcfg.HA.GroupName, col.Backup.GroupName)
	}
	bcfg, err := colocatedBackupConfig(rcfg, c.cfg, name, nth)
	if err != nil {
		return refuse(wire.CodeInvalid, "%v", err)
	}
	if err := Check(bcfg); err != nil {
		return refuse(wire.CodeInvalid, "%v", err)
	}
	ex := &pairExtra{attach: func(h *haBroker) func() {
		hostedStatuses.Store(bcfg, h.status)
		return func() { hostedStatuses.Delete(bcfg) }
	}}
	if col.Store == config.PolicyReplication {
		// The backup votes with the cluster's lives and replicates from
		// its requester at the requester's own (unshifted) address.
		requester, voters := replicationElectorate(rcfg)
		if requester == "" || len(voters) < 3 {
			return refuse(wire.CodeInvalid, "the requester's cluster connection names %d brokers with itself (a quorum vote needs three or more)", len(voters))
		}
		ex.quorumTargets, ex.pinNode = voters, req.NodeID
		ex.attach = func(h *haBroker) func() {
			h.extraPeers = func() []string { return []string{requester} }
			return func() {}
		}
		ex.attachRepl = func(rb *replBroker) func() {
			hostedStatuses.Store(bcfg, rb.status)
			hostedQuorumSelves.Store(bcfg, rb.quorumSelf)
			return func() {
				hostedStatuses.Delete(bcfg)
				hostedQuorumSelves.Delete(bcfg)
			}
		}
	}
	bctx, cancel := context.WithCancel(c.ctx)
	b := &hostedBackup{name: name, requesterNode: req.NodeID, requesterName: req.Name, url: haAnnounceURL(bcfg), cfg: bcfg,
		since: time.Now(), cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.hosted = append(c.hosted, b)
	c.mu.Unlock()
	pairExtras.Store(bcfg, ex)
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

// colocatedBackupConfig derives the configuration of the nth backup
// (named name) of the requester (req, a <colocated> broker's
// configuration) to run in the process of host. As in Artemis, the nth
// backup a broker hosts is shifted by n times backup-port-offset (two
// requesters on the same port, on two machines, get two ports here),
// and a replicating backup's directories are the host's with the name
// appended (Artemis: journal-directory + name, no separator).
func colocatedBackupConfig(req, host *config.Config, name string, nth int) (*config.Config, error) {
	col := req.HA.Colocated
	if col == nil || req.HA.Policy != config.PolicyColocated {
		return nil, errors.New("the requester's configuration has no <colocated> policy")
	}
	b := *req
	b.Name = name
	off := col.BackupPortOffset * max(nth, 1)
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
		suffix := func(d string) string { return d + name }
		b.Dirs.Journal, b.Dirs.Bindings = suffix(hd.Journal), suffix(hd.Bindings)
		b.Dirs.Paging, b.Dirs.LargeMessages = suffix(hd.Paging), suffix(hd.LargeMessages)
		b.Dirs.NodeManagerLock = suffix(hd.NodeManagerLock)
	}
	return &b, nil
}

// replicationElectorate returns the requester's announced address (where
// its hosted backup replicates from: the real one, not shifted) and the
// voters its backup asks: the requester and its cluster connection's
// static connectors as the requester itself has them, unshifted, so the
// real lives of the cluster. The backup's own configuration has these
// shifted by backup-port-offset: they would name the other lives'
// backups, which are no voters of any live.
func replicationElectorate(req *config.Config) (requester string, voters []string) {
	announce := haAnnounceURL(req)
	requester = strings.TrimPrefix(announce, "tcp://")
	if requester == "" {
		return "", nil
	}
	voters = []string{requester}
	for _, p := range staticPeers(req, announce) {
		if !slices.Contains(voters, p) {
			voters = append(voters, p)
		}
	}
	return requester, voters
}

func colocatedName(n int) string { return "colocated_backup_" + strconv.Itoa(n) }

// maxReplicaSlots bounds the names replicaSlot tries.
const maxReplicaSlots = 64

// replicaSlot picks the name (and its number) of a replicating backup of
// node in host's process: the one whose directories hold node's data
// already (a host restarted, a requester asking again: the backup
// resumes from there), else the first free one whose directories hold
// no other node's data. Directories with another node's data are left
// alone: they may be that node's newest copy (a hosted backup that was
// active when its host stopped), and a backup of node in them could
// never sync (it holds another node's data) yet could claim the other
// node's activation. taken are the names of the backups running.
func replicaSlot(host *config.Config, node string, taken map[string]bool) (string, int, error) {
	first, firstN := "", 0
	var others []string
	for n := 1; n <= maxReplicaSlots; n++ {
		name := colocatedName(n)
		if taken[name] {
			continue
		}
		rec, err := lockfile.ReadStateFile(filepath.Join(host.Dirs.NodeManagerLock+name, lockfile.StateFileName))
		switch {
		case err == nil && rec.NodeID.String() == node:
			return name, n, nil
		case err == nil && rec.Epoch > 0 && !rec.NodeID.IsZero():
			others = append(others, host.Dirs.NodeManagerLock+name)
		case first == "":
			first, firstN = name, n
		}
	}
	if first == "" {
		return "", 0, fmt.Errorf("no free colocated backup directory: %s hold other brokers' data (remove those no longer needed)", strings.Join(others, ", "))
	}
	return first, firstN, nil
}
