package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// live is a broker serving from its store, in two steps an HA activation
// can drive: loadLive (open and replay the store under an epoch), then
// serve (open the acceptors, announce the topology); stop undoes both.
type live struct {
	cfg   *config.Config
	log   *slog.Logger
	store *server.Store
	srv   *server.Server
	accs  []*server.Acceptor
	urls  []string
	lim   *netLimits // the broker's, shared by its activations
}

// liveOptions are what an activation decides.
type liveOptions struct {
	Epoch  uint64      // 0: the store's own
	NodeID string      // "": the store's (bindings journal)
	Policy string      // for /status; "" = none
	Role   string      // "" = primary
	CanAck func() bool // nil = always
	// Limits are the broker's connection limits (Run's; nil: none).
	Limits *netLimits
	// OpenStore opens the journals instead of server.OpenStore (HA on a
	// database store opens them fenced by the activation's epoch).
	OpenStore func(ctx context.Context, cfg *config.Config, so server.StoreOptions) (*server.Store, error)
}

// loadLive opens the store the configuration selects and loads it.
func loadLive(ctx context.Context, cfg *config.Config, log *slog.Logger, o liveOptions) (*live, error) {
	open := o.OpenStore
	if open == nil {
		open = server.OpenStore
	}
	store, err := open(ctx, cfg, server.StoreOptions{Logger: log, Epoch: o.Epoch})
	if err != nil {
		return nil, err
	}
	idCache := cfg.IDCacheSize
	if idCache == 0 {
		idCache = -1 // id-cache-size 0 turns the cache off
	}
	scan := cfg.AddressQueueScanPeriod
	if scan <= 0 {
		scan = -1 // as in Artemis, 0 and -1 turn the scan off
	}
	expiryScan := cfg.MessageExpiryScanPeriod
	if expiryScan <= 0 {
		expiryScan = -1
	}
	srv := server.New(server.Options{
		Name: cfg.Name, NodeID: o.NodeID, Messages: store.Messages, Bindings: store.Bindings, Store: store.Kind,
		IDCacheSize: idCache, NoPersistIDCache: !cfg.PersistIDCache,
		NoSyncNonTransactional: !cfg.Journal.SyncNonTransactional, NoSyncTransactional: !cfg.Journal.SyncTransactional,
		Policy: o.Policy, Role: o.Role, Epoch: o.Epoch, CanAck: o.CanAck, Logger: log,
		AddressSettings: cfg.AddressSettings, MaxQueues: cfg.MaxQueues, MaxAddresses: cfg.MaxAddresses,
		AddressQueueScanPeriod: scan, Addresses: cfg.Addresses,
		MessageExpiryScanPeriod: expiryScan, Pages: store.PageLog(), Large: store.LargeLog(), GlobalMaxSize: globalMaxSize(cfg),
		ClusterUser: cfg.ClusterUser, ClusterPassword: cfg.ClusterPassword, ClusterGroup: clusterGroup(cfg),
	})
	if err := srv.Start(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return &live{cfg: cfg, log: log.With("node_id", srv.NodeID(), "role", srv.Options().Role), store: store, srv: srv, lim: o.Limits}, nil
}

// serve opens every tcp acceptor and announces this broker as the active
// member of the topology.
func (l *live) serve() error {
	cfg := l.cfg
	// One guard for every acceptor (security.go); brokers of a pair
	// probe each other as the cluster user, which it knows.
	sec, err := l.lim.security(cfg, l.log)
	if err != nil {
		return err
	}
	hs := protocolHandlers()
	for _, h := range hs {
		l.srv.RegisterProtocol(h)
	}
	for _, ac := range cfg.Acceptors {
		if ac.Scheme != "tcp" {
			l.log.Warn("acceptor scheme not supported, skipped", "acceptor", ac.Name, "url", ac.URL)
			continue
		}
		ps, err := acceptorProtocols(l.log, ac, hs)
		if err != nil {
			l.closeAcceptors(wire.CodeShuttingDown, "start failed")
			return fmt.Errorf("acceptor %s: %w", ac.Name, err)
		}
		netOpts := l.lim.netOptions(cfg, ac, nil)
		netOpts.Protocols, netOpts.Params, netOpts.Security = ps, ac.Params, sec
		if netOpts.TLS, err = acceptorTLS(ac); err != nil {
			l.closeAcceptors(wire.CodeShuttingDown, "start failed")
			return err
		}
		a, err := l.srv.Listen(ac.Address(), netOpts)
		if err != nil {
			l.closeAcceptors(wire.CodeShuttingDown, "start failed")
			return err
		}
		l.accs = append(l.accs, a)
		l.urls = append(l.urls, "tcp://"+a.Addr().String())
	}
	if len(l.accs) == 0 {
		return errors.New("no tcp acceptor configured")
	}
	o := l.srv.Options()
	members := []server.Member{{NodeID: l.srv.NodeID(), Role: o.Role, State: "active", URL: l.announceURL(), Epoch: l.srv.Epoch()}}
	l.srv.SetTopology(server.Topology{Epoch: l.srv.Epoch(), Members: members})
	return nil
}

// announceURL is the address clients learn from the topology: the
// connector the first cluster connection names (Artemis's connector-ref),
// else the first acceptor, with a wildcard host replaced by this host's
// name.
func (l *live) announceURL() string {
	for _, cc := range l.cfg.ClusterConnections {
		for _, c := range l.cfg.Connectors {
			if cc.ConnectorRef != "" && c.Name == cc.ConnectorRef && c.Scheme == "tcp" {
				return "tcp://" + c.Address()
			}
		}
	}
	u := l.urls[0]
	host, port, err := net.SplitHostPort(strings.TrimPrefix(u, "tcp://"))
	if err != nil {
		return u
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return "tcp://" + net.JoinHostPort(h, port)
		}
	}
	return u
}

func (l *live) closeAcceptors(code wire.Code, reason string) {
	for _, a := range l.accs {
		a.Close(code, reason)
		l.lim.retire(a)
	}
	l.accs = nil
}

// stop tells clients why (code), closes their connections (their unacked
// deliveries go back to the queues), stops the server and closes the
// store (flushing what is pending).
func (l *live) stop(code wire.Code, reason string) error {
	l.closeAcceptors(code, reason)
	l.srv.Close()
	if err := l.store.Close(); err != nil {
		return fmt.Errorf("closing the store: %w", err)
	}
	return nil
}

// status is GET /status for this broker.
func (l *live) status() server.Status {
	st := l.srv.Status()
	st.Acceptors = l.urls
	st.Connections = l.connections()
	return st
}

// netStats are the acceptors' counters, with those of acceptors closed.
func (l *live) netStats() server.NetStats { return l.lim.netStats(l.accs) }

// connections counts open client connections.
func (l *live) connections() int {
	n := 0
	for _, a := range l.accs {
		n += a.Connections()
	}
	return n
}
