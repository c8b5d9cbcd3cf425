package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// haProbeClientID marks the Hello of a cluster-connection probe (see
// runha.go): a waiting broker answers it with a Welcome carrying its
// topology instead of refusing it.
const haProbeClientID = "tandem-ha-probe"

// refuser holds a waiting broker's acceptor ports: it answers a client's
// Hello with CodeUnavailable (the client moves on to the live) and a
// probe's with this broker's topology.
type refuser struct {
	lns       []net.Listener
	protocols []server.ProtocolHandler // refused their own way
	wg        sync.WaitGroup
	h         *haBroker
	stop      chan struct{}
}

// openRefuser binds every tcp acceptor of the configuration.
func (h *haBroker) openRefuser() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ref != nil {
		return nil
	}
	r := &refuser{h: h, stop: make(chan struct{}), protocols: protocolHandlers()}
	for _, ac := range h.cfg.Acceptors {
		if ac.Scheme != "tcp" {
			continue
		}
		ln, err := net.Listen("tcp", ac.Address())
		if err != nil {
			r.close()
			return fmt.Errorf("acceptor %s: %w", ac.Name, err)
		}
		// A TLS acceptor refuses in TLS too: its clients, and the
		// peers' probes, speak nothing else.
		tc, err := acceptorTLS(ac)
		if err != nil {
			ln.Close()
			r.close()
			return err
		}
		if tc != nil {
			ln = tls.NewListener(ln, tc)
		}
		r.lns = append(r.lns, ln)
	}
	if len(r.lns) == 0 {
		return errors.New("no tcp acceptor configured")
	}
	for _, ln := range r.lns {
		r.wg.Add(1)
		go r.accept(ln)
	}
	h.ref = r
	return nil
}

// closeRefuser frees the acceptor ports (the live server binds them next).
func (h *haBroker) closeRefuser() {
	h.mu.Lock()
	r := h.ref
	h.ref = nil
	h.mu.Unlock()
	if r != nil {
		r.close()
	}
}

func (r *refuser) urls() []string {
	var out []string
	for _, ln := range r.lns {
		out = append(out, "tcp://"+ln.Addr().String())
	}
	return out
}

func (r *refuser) close() {
	close(r.stop)
	for _, ln := range r.lns {
		ln.Close()
	}
	r.wg.Wait()
}

func (r *refuser) accept(ln net.Listener) {
	defer r.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-r.stop:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.answer(nc)
		}()
	}
}

// answer reads the Hello and answers it, then closes the connection.
func (r *refuser) answer(nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(nc)
	ph, core, err := server.Detect(br, r.protocols, true)
	if err != nil {
		return
	}
	if !core { // another protocol: refused its own way (docs/protocols.md)
		if rf, ok := ph.(server.ProtocolRefuser); ok {
			st := r.h.act.Status()
			rf.Refuse(nc, br, fmt.Sprintf("%s %s is not active (%s): connect to the live broker", st.Role, r.h.selfURL, st.Phase))
		}
		return
	}
	dec := wire.NewDecoder(br)
	dec.SetMaxFrameSize(server.MaxHelloSize) // as a live's acceptor before the handshake
	hdr, f, err := dec.Read()
	if err != nil {
		return
	}
	hello, ok := f.(*wire.Hello)
	if !ok {
		return
	}
	if hello.ClientID == wire.QuorumClientID && r.answerQuorum(nc, br, dec, hello, hdr.Corr) {
		return
	}
	h := r.h
	var out wire.Frame
	corr := uint64(0)
	if hello.ClientID == haProbeClientID && h.clusterAuth(nc, hello) && hello.MaxVersion >= wire.MinVersion {
		t := h.topology()
		out = &wire.Welcome{Version: min(hello.MaxVersion, wire.Version), NodeID: h.nodeID, ServerVersion: server.Version,
			Topology: toWire(t)}
		corr = hdr.Corr
	} else {
		st := h.act.Status()
		out = &wire.Error{Code: wire.CodeUnavailable,
			Message: fmt.Sprintf("%s %s is not active (%s): connect to the live broker", st.Role, h.selfURL, st.Phase)}
	}
	b, err := wire.AppendFrame(nil, corr, out)
	if err == nil {
		_, _ = nc.Write(b)
	}
}

// clusterAuth checks a probe's credentials: the cluster user and
// password only, whatever the users, and whether or not anonymous clients
// are let in (a waiting broker tells its topology to brokers of its
// cluster, nobody else).
func (h *haBroker) clusterAuth(nc net.Conn, hello *wire.Hello) bool {
	sec, err := h.lim.security(h.cfg, h.log)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return sec.ClusterLogin(ctx, auth.Credentials{User: hello.User, Password: hello.Password,
		Remote: nc.RemoteAddr().String(), Protocol: "cluster"}) == nil
}

func toWire(t server.Topology) wire.Topology {
	wt := wire.Topology{Epoch: t.Epoch}
	for _, m := range t.Members {
		wt.Members = append(wt.Members, wire.Member{NodeID: m.NodeID, Role: m.Role, State: m.State, URL: m.URL, Epoch: m.Epoch})
	}
	return wt
}

// probeTargets are the host:port addresses of the static connectors of
// the first cluster connection, without this broker's own.
func (h *haBroker) probeTargets() ([]string, time.Duration) {
	if len(h.cfg.ClusterConnections) == 0 {
		return nil, 0
	}
	cc := h.cfg.ClusterConnections[0]
	every := min(max(cc.RetryInterval, 200*time.Millisecond), 2*time.Second)
	return staticPeers(h.cfg, h.selfURL), every
}

// staticPeers are the host:port addresses of the static connectors of the
// first cluster connection, without selfURL's.
func staticPeers(cfg *config.Config, selfURL string) []string {
	if len(cfg.ClusterConnections) == 0 {
		return nil
	}
	cc := cfg.ClusterConnections[0]
	self := strings.TrimPrefix(selfURL, "tcp://")
	var out []string
	for _, name := range cc.StaticConnectors {
		for _, c := range cfg.Connectors {
			if c.Name == name && c.Scheme == "tcp" && c.Address() != self && !slices.Contains(out, c.Address()) {
				out = append(out, c.Address())
			}
		}
	}
	return out
}

// peerNode is the node ID the last answering probe of addr reported
// ("" if none did).
func (h *haBroker) peerNode(addr string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peers[addr].NodeID
}

// probePeers probes the cluster connection's peers until ctx ends.
func (h *haBroker) probePeers(ctx context.Context) {
	targets, every := h.probeTargets()
	if len(targets) == 0 && h.extraPeers == nil {
		h.log.Info("no cluster connection with static connectors: the topology lists this broker only")
		return
	}
	if every == 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		all := targets
		if h.extraPeers != nil { // colocated.go: this broker's backup
			for _, a := range h.extraPeers() {
				if !slices.Contains(all, a) {
					all = append(slices.Clone(all), a)
				}
			}
		}
		for _, addr := range all {
			m, ok := h.probe(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			h.setPeer(addr, m, ok)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe asks the broker at addr who it is: the first member of the
// topology in its Welcome.
func (h *haBroker) probe(ctx context.Context, addr string) (server.Member, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return server.Member{}, false
	}
	defer nc.Close()
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	tc, err := peerTLS(h.cfg, addr)
	if err != nil {
		h.log.Warn("cluster probe: TLS", "peer", addr, "err", err)
		return server.Member{}, false
	}
	if tc != nil {
		host, _, _ := net.SplitHostPort(addr)
		t := tls.Client(nc, tlsconfig.ForHost(tc, host))
		if err := t.HandshakeContext(ctx); err != nil {
			h.log.Warn("cluster probe: TLS handshake failed", "peer", addr, "err", err)
			return server.Member{}, false
		}
		nc = t
	}
	// Peers know each other by the cluster user: a live broker's
	// acceptor logs it in, a waiting broker's refuser answers only it.
	hello := &wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.Version, ClientID: haProbeClientID,
		User: h.cfg.ClusterUser, Password: h.cfg.ClusterPassword}
	b, err := wire.AppendFrame(nil, 1, hello)
	if err != nil {
		return server.Member{}, false
	}
	if _, err := nc.Write(b); err != nil {
		return server.Member{}, false
	}
	_, f, err := wire.NewDecoder(nc).Read()
	if err != nil {
		return server.Member{}, false
	}
	w, ok := f.(*wire.Welcome)
	if !ok {
		return server.Member{}, false
	}
	if len(w.Topology.Members) == 0 {
		// A broker without HA: active, as far as anyone can tell.
		return server.Member{NodeID: w.NodeID, Role: "primary", State: "active", URL: "tcp://" + addr, Epoch: w.Topology.Epoch}, true
	}
	m := w.Topology.Members[0]
	return server.Member{NodeID: m.NodeID, Role: m.Role, State: m.State, URL: m.URL, Epoch: m.Epoch}, true
}
