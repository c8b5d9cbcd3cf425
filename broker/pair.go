package broker

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// haBroker is one broker of an HA pair: the refusing listener while not
// active, the peer table the cluster-connection probes fill, the topology,
// /status and the banner (for every policy, through act), and the
// shared-store activation's hooks (load, serve, stop, announce: runner).
type haBroker struct {
	cfg        *config.Config
	log        *slog.Logger // with node_id and role
	baseLog    *slog.Logger
	role       hasm.Role
	policy     config.Policy
	act        activation   // the policy's activation, for status and topology
	runner     *hasm.Runner // shared store: the activation runner
	nodeID     string
	storeKind  string
	storeWhere string
	selfURL    string // what clients and peers learn (the cluster connection's connector)
	mgmt       string
	lim        *netLimits // the broker's connection limits (Run's)
	// openStore opens the journals (nil: server.OpenStore).
	openStore func(ctx context.Context, cfg *config.Config, so server.StoreOptions) (*server.Store, error)

	pubMu sync.Mutex // serialises publish: topology pushes in order

	mu          sync.Mutex
	l           *live // loaded (and maybe serving) store
	serving     bool
	stopping    bool
	watchCancel context.CancelFunc
	ref         *refuser
	peers       map[string]server.Member // by probed address
	announced   server.Topology          // last topology pushed to clients

	// Set before the pair runs by a policy's extra part (colocated.go):
	// onServing runs once the live serves; extraPeers are probed beside
	// the static connectors; extraStatus adds to /status.
	onServing  func(l *live)
	extraPeers func() []string
	// quorumServe answers a quorum vote connection (quorum.go); nil
	// unless the pair is coordinated by the quorum vote.
	quorumServe func(nc net.Conn, r *bufio.Reader, hello *wire.Hello, corr uint64)
	extraStatus func(st *server.Status)
	// quorumPeerFor (colocated.go) returns what a backup this process
	// hosts for node says of itself while it is active: the quorum
	// vote's answer about node carries it, so the node's restarted
	// primary finds its live (quorum.go).
	quorumPeerFor func(node lockfile.NodeID) (hasm.QPeer, bool)
}

func newHABroker(cfg *config.Config, log *slog.Logger, role hasm.Role) *haBroker {
	return &haBroker{cfg: cfg, log: log, baseLog: log, role: role, policy: cfg.HA.Policy, selfURL: haAnnounceURL(cfg),
		peers: map[string]server.Member{}}
}

// activation is what the policy-independent parts of a pair (topology,
// /status, the banner, the refuser) need from the activation runner.
type activation interface {
	Status() hasm.Status
	Epoch() uint64
	PeerAnnounced(hasm.Peer)
}

// haAnnounceURL is the URL this broker announces: the connector its first
// cluster connection names, else its first tcp acceptor (a wildcard host
// replaced by the host name).
func haAnnounceURL(cfg *config.Config) string {
	for _, cc := range cfg.ClusterConnections {
		for _, c := range cfg.Connectors {
			if cc.ConnectorRef != "" && c.Name == cc.ConnectorRef && c.Scheme == "tcp" {
				return "tcp://" + c.Address()
			}
		}
	}
	for _, a := range cfg.Acceptors {
		if a.Scheme != "tcp" {
			continue
		}
		host := a.Host
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if h, err := os.Hostname(); err == nil {
				host = h
			}
		}
		return "tcp://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
	}
	return ""
}

func (h *haBroker) canAck() bool { return h.runner.CanAck() }

// mayWrite gates writes to a shared file store (ha_fence.go): allowed
// while this broker loads the store under the epoch it has just taken,
// and otherwise only while it can prove it holds the lock (a good
// verification younger than the lease), also while it closes the store
// on a stop or failback (hasm.Node.MayWrite). A broker paused past its
// lease, then stopped, writes nothing: its successor may own the store.
func (h *haBroker) mayWrite() bool { return h.runner.MayWrite() }

func (h *haBroker) setStopping() {
	h.mu.Lock()
	h.stopping = true
	h.mu.Unlock()
}

// loadStore is the LoadStore hook: open and replay the store under epoch.
func (h *haBroker) loadStore(ctx context.Context, epoch uint64) error {
	h.log.Info("loading the store", "epoch", epoch)
	l, err := loadLive(ctx, h.cfg, h.baseLog, liveOptions{Epoch: epoch, NodeID: h.nodeID, Policy: string(config.PolicySharedStore),
		Role: h.role.String(), CanAck: h.canAck, OpenStore: h.openStore, Limits: h.lim})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	failed := l.store.Failed(wctx)
	go func() {
		select {
		case err := <-failed:
			h.runner.StorageError(err)
		case <-wctx.Done():
		}
	}()
	h.mu.Lock()
	h.l, h.watchCancel = l, cancel
	h.mu.Unlock()
	return nil
}

// startServing is the StartServing hook: stop refusing, open the
// acceptors, announce.
func (h *haBroker) startServing(epoch uint64) {
	h.mu.Lock()
	l := h.l
	h.mu.Unlock()
	if l == nil {
		h.runner.StorageError(fmt.Errorf("start serving epoch %d: no store loaded", epoch))
		return
	}
	h.closeRefuser()
	if err := l.serve(); err != nil {
		h.log.Error("opening the acceptors", "err", err)
		h.runner.StorageError(fmt.Errorf("opening the acceptors: %w", err))
		return
	}
	h.mu.Lock()
	h.serving = true
	h.mu.Unlock()
	if h.onServing != nil {
		h.onServing(l)
	}
	h.publish()
	h.log.Info("active", "epoch", epoch, "url", h.selfURL)
	h.printBanner()
}

// stopServing is the StopServing hook: close client connections and the
// store (on a stop or failback), then refuse clients again (failback).
// After a halt, or when this broker cannot prove it still holds the lock
// (mayWrite), the store is left alone: no seal, no flush; the process
// exits without another write and the next load handles the torn tail.
func (h *haBroker) stopServing() {
	h.mu.Lock()
	l, stopping, cancel := h.l, h.stopping, h.watchCancel
	h.l, h.serving, h.watchCancel = nil, false, nil
	h.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	halted := h.runner.Phase() == hasm.PhaseHalted
	if l != nil {
		switch {
		case halted:
			l.closeAcceptors(wire.CodeUnavailable, "broker halted")
			l.srv.Close()
		case !h.mayWrite():
			// The node halts on a stop without proof; this covers the
			// rest (the proof ran out since the node decided). Every
			// write is fenced anyway: this only saves the attempt.
			l.closeAcceptors(wire.CodeUnavailable, "broker halted")
			l.srv.Close()
			halted = true
			h.runner.StorageError(fmt.Errorf("closing the store: %w", errFenced))
		case stopping:
			if err := l.stop(wire.CodeShuttingDown, "broker stopping"); err != nil {
				h.runner.StorageError(err)
			}
		default:
			if err := l.stop(wire.CodeUnavailable, "failing back to the primary"); err != nil {
				h.runner.StorageError(err)
			}
		}
	}
	if !halted && !stopping {
		if err := h.openRefuser(); err != nil {
			h.log.Warn("cannot refuse clients while waiting", "err", err)
		}
	}
	h.publish()
}

// announce is the Announce hook.
func (h *haBroker) announce(hasm.Action) { h.publish() }

// abandon drops a halted broker's store without closing it (a write could
// hang or fail on the broken storage; the process exits next).
func (h *haBroker) abandon() {
	h.mu.Lock()
	l, cancel := h.l, h.watchCancel
	h.l, h.serving, h.watchCancel = nil, false, nil
	h.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if l != nil {
		l.closeAcceptors(wire.CodeUnavailable, "broker halted")
		l.srv.Close()
	}
}

// shutdown closes a store still loaded after a clean stop (loaded but not
// yet serving when the stop came).
func (h *haBroker) shutdown() error {
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
	return l.stop(wire.CodeShuttingDown, "broker stopping") // fenced by mayWrite like any write

}

// self is this broker's own topology member.
func (h *haBroker) self() server.Member {
	st := h.act.Status()
	return server.Member{NodeID: h.nodeID, Role: st.Role, State: st.State, URL: h.selfURL, Epoch: st.Epoch}
}

// members is the topology: this broker first (the probe convention), then
// the peers in address order; with down, also the peers that did not
// answer their last probe (state "down").
func (h *haBroker) members(down bool) []server.Member {
	ms := []server.Member{h.self()}
	h.mu.Lock()
	keys := make([]string, 0, len(h.peers))
	for k := range h.peers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if m := h.peers[k]; down || m.State != stateDown {
			ms = append(ms, m)
		}
	}
	h.mu.Unlock()
	return ms
}

// stateDown is the state /status and cluster status show for a peer that
// does not answer.
const stateDown = "down"

// topology is what this broker announces to clients: its members that
// answer and share its node ID (the pair), under its epoch. A broker of
// another node (a cluster connection may name other lives) is no
// failover target: an in-flight send resent there would be stored in
// another node's store as well.
func (h *haBroker) topology() server.Topology {
	ms := h.members(false)
	h.mu.Lock()
	node := h.nodeID
	h.mu.Unlock()
	out := ms[:1]
	for _, m := range ms[1:] {
		if m.NodeID == node {
			out = append(out, m)
		}
	}
	return server.Topology{Epoch: h.act.Epoch(), Members: out}
}

// publish pushes the topology to the clients of a serving broker when it
// changed.
func (h *haBroker) publish() {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	t := h.topology()
	h.mu.Lock()
	l, serving := h.l, h.serving
	same := t.Epoch == h.announced.Epoch && slices.Equal(t.Members, h.announced.Members)
	if serving && l != nil && !same {
		h.announced = t
	}
	h.mu.Unlock()
	if serving && l != nil && !same {
		l.srv.SetTopology(t)
	}
}

// setPeer records what a probe of addr found (ok false: nothing usable
// answered) and tells the state machine about an active peer.
func (h *haBroker) setPeer(addr string, m server.Member, ok bool) {
	h.mu.Lock()
	old, had := h.peers[addr]
	if !ok {
		// Keep what it was, shown as down.
		m = old
		if !had {
			m = server.Member{URL: "tcp://" + addr}
		}
		m.State = stateDown
	}
	h.peers[addr] = m
	h.mu.Unlock()
	if had && old == m {
		return
	}
	switch {
	case ok:
		h.log.Info("peer", "peer_url", m.URL, "peer_role", m.Role, "peer_state", m.State, "peer_epoch", m.Epoch)
	case had:
		h.log.Info("peer not answering", "peer_addr", addr, "peer_was", old.State)
	}
	h.mu.Lock()
	sameNode := m.NodeID == h.nodeID
	h.mu.Unlock()
	if ok && m.State == "active" && sameNode { // another node's live is not this pair's
		r := hasm.Primary
		if m.Role == hasm.Backup.String() {
			r = hasm.Backup
		}
		h.act.PeerAnnounced(hasm.Peer{Role: r, Epoch: m.Epoch, Active: true})
	}
	h.publish()
}

// server returns the serving server (nil while waiting), for /metrics.
func (h *haBroker) server() *server.Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.l == nil || !h.serving {
		return nil
	}
	return h.l.srv
}

func (h *haBroker) connections() int {
	h.mu.Lock()
	l, serving := h.l, h.serving
	h.mu.Unlock()
	if l == nil || !serving {
		return 0
	}
	return l.connections()
}

// netStats are the acceptors' counters over every activation.
func (h *haBroker) netStats() server.NetStats {
	h.mu.Lock()
	l, serving := h.l, h.serving
	h.mu.Unlock()
	if l == nil || !serving {
		return h.lim.netStats(nil)
	}
	return l.netStats()
}

// status is GET /status: the server's while serving, else this broker's
// own; state, epoch and peers always come from the activation.
func (h *haBroker) status() server.Status {
	h.mu.Lock()
	l, serving := h.l, h.serving
	var accs []string
	if h.ref != nil {
		accs = h.ref.urls()
	}
	h.mu.Unlock()
	var st server.Status
	if l != nil && serving {
		st = l.status()
	} else {
		st = server.Status{NodeID: h.nodeID, Name: h.cfg.Name, Version: server.Version, Policy: string(h.policy),
			Role: h.role.String(), Store: h.storeKind, CPUSeconds: server.CPUSeconds(), Queues: []server.QueueInfo{},
			Acceptors: accs}
	}
	if !slices.Contains(st.Acceptors, h.selfURL) {
		st.Acceptors = append(st.Acceptors, h.selfURL) // the announced address: cluster status marks this row
	}
	rs := h.act.Status()
	st.Policy = string(h.policy) // colocated runs the shared-store pair's live
	if st.Halted == "" {
		st.State = rs.State
	}
	st.Epoch = rs.Epoch
	st.Peers = h.members(true)
	if h.extraStatus != nil {
		h.extraStatus(&st)
	}
	return st
}

// printBanner prints the banner: at start (waiting, or about to activate)
// and again on every activation.
func (h *haBroker) printBanner() {
	rs := h.act.Status()
	h.mu.Lock()
	var urls []string
	if h.l != nil && h.serving {
		urls = h.l.urls
	} else if h.ref != nil {
		urls = h.ref.urls()
	}
	h.mu.Unlock()
	cfg := h.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "Tandem %s broker %q\n", server.Version, cfg.Name)
	fmt.Fprintf(&b, "  node ID:     %s\n", h.nodeID)
	fmt.Fprintf(&b, "  role:        %s (policy %s, epoch %d)\n", rs.Role, h.policy, rs.Epoch)
	fmt.Fprintf(&b, "  state:       %s (%s)\n", rs.State, rs.Phase)
	fmt.Fprintf(&b, "  store:       %s (%s)\n", h.storeKind, h.storeWhere)
	fmt.Fprintf(&b, "  acceptor:    %s (announced as %s)\n", strings.Join(urls, ", "), h.selfURL)
	fmt.Fprintf(&b, "  management:  %s://%s/status\n", managementScheme(cfg), h.mgmt)
	fmt.Fprintf(&b, "  cpu:         %s\n", CPUNote)
	fmt.Fprintf(&b, "  limits:      %s\n", h.lim.bannerNote())
	var sec *auth.Guard
	if h.lim != nil {
		sec = h.lim.sec
	}
	b.WriteString(securityBanner(cfg, sec, h.log))
	if cfg.File != "" {
		fmt.Fprintf(&b, "  config:      %s\n", cfg.File)
	} else {
		fmt.Fprintf(&b, "  config:      built-in defaults\n")
	}
	os.Stdout.WriteString(b.String())
}
