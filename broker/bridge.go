package broker

// Cluster bridges (issue 19, docs/clustering.md): a live broker without a
// backup policy (or live-only) whose first cluster connection has static
// connectors and a message-load-balancing other than OFF connects to each
// peer twice, with the cluster credentials:
//
//   - a bindings connection (wire.BindingsStream): the peer pushes its
//     queues and consumer counts, which the server's load balancing and
//     redistribution read (server.SetRemoteBindings);
//   - a forward connection (wire.ForwardStream): the bridge takes batches
//     from the peer's forwarding queue (server.TakeForward), sends them
//     and acks them here only once the peer answered that it holds them
//     durably (server.AckForward); any other outcome puts them back
//     (server.ReturnForward) and they go again after the reconnect, the
//     peer's duplicate-ID cache dropping what it stored already.
//
// A goroutine per peer owns both connections; one more runs
// redistribution. All stop with stop, before a scale-down freezes the
// server.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// Bridge limits: a forwarded batch carries at most forwardBatch messages
// (about maxBatchBytes); an idle connection pings every bridgePing; an
// empty forwarding queue is looked at every forwardPoll.
const (
	forwardBatch       = 500
	bridgePing         = 5 * time.Second
	forwardPoll        = 5 * time.Millisecond
	redistributeEvery  = 100 * time.Millisecond
	redistributeAtOnce = 1000
	// stopGrace is how long a stopping bridge waits for the answer to
	// the batch in flight.
	stopGrace = 5 * time.Second
)

// clusterBridges are the bridges of one broker.
type clusterBridges struct {
	cfg    *config.Config
	log    *slog.Logger
	srv    *server.Server
	mode   server.LoadBalancing
	retry  time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stallAfter is the TANDEM_TEST_FORWARD_STALL_AFTER hook: after that
	// many confirmed batches the bridge stops before acking the next
	// confirmed one (a fault test kills the broker in that window).
	stallAfter int
}

// startBridges starts the bridges cfg asks for (nil: none).
func startBridges(cfg *config.Config, srv *server.Server, log *slog.Logger) (*clusterBridges, error) {
	if len(cfg.ClusterConnections) == 0 {
		return nil, nil
	}
	cc := cfg.ClusterConnections[0]
	mode, err := server.ParseLoadBalancing(cc.MessageLoadBalancing)
	if err != nil {
		return nil, fmt.Errorf("cluster connection %q: %w", cc.Name, err)
	}
	srv.SetLoadBalancing(mode)
	if mode == server.BalanceOff {
		return nil, nil
	}
	addrs := bridgePeers(cfg, log)
	if len(addrs) == 0 {
		log.Info("cluster connection without static connectors: no message load balancing", "cluster_connection", cc.Name)
		return nil, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &clusterBridges{cfg: cfg, log: log.With("cluster_connection", cc.Name), srv: srv, mode: mode, cancel: cancel,
		retry: min(max(cc.RetryInterval, 100*time.Millisecond), 2*time.Second)}
	b.stallAfter, _ = strconv.Atoi(os.Getenv("TANDEM_TEST_FORWARD_STALL_AFTER"))
	for _, a := range addrs {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.runPeer(ctx, a)
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.redistribute(ctx)
	}()
	b.log.Info("cluster bridges started", "message_load_balancing", mode.String(), "peers", strings.Join(addrs, ","))
	return b, nil
}

// bridgePeers are the host:port addresses of the first cluster
// connection's static connectors, without this broker's own.
func bridgePeers(cfg *config.Config, log *slog.Logger) []string {
	self := strings.TrimPrefix(haAnnounceURL(cfg), "tcp://")
	var out []string
	for _, n := range cfg.ClusterConnections[0].StaticConnectors {
		for _, c := range cfg.Connectors {
			if c.Name != n {
				continue
			}
			if c.Scheme != "tcp" {
				log.Warn("cluster connection: connector is not tcp; no bridge to it", "connector", n)
				continue
			}
			if a := c.Address(); a != self && !containsStr(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// stop stops every bridge and waits for them; what was in flight goes
// back to the forwarding queues.
func (b *clusterBridges) stop() {
	if b == nil {
		return
	}
	b.cancel()
	b.wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runPeer keeps the bindings and forward connections to addr up until ctx
// ends.
func (b *clusterBridges) runPeer(ctx context.Context, addr string) {
	log := b.log.With("peer_addr", addr)
	failures := 0
	for ctx.Err() == nil {
		bc, err := dialCluster(ctx, b.cfg, addr, b.srv.NodeID(), b.srv.Epoch(), wire.BindingsStream)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 || failures%100 == 0 {
				log.Info("cluster bridge: peer not reachable, retrying", "err", err, "attempts", failures)
			}
			sleepCtx(ctx, b.retry)
			continue
		}
		failures = 0
		node := bc.joined.NodeID
		if err := b.srv.PeerJoined(ctx, node, bc.joined.Name, bc.joined.Epoch); err != nil {
			log.Error("cluster bridge: cannot set up the peer's forwarding queue", "peer", node, "err", err)
			bc.close()
			sleepCtx(ctx, b.retry)
			continue
		}
		log.Info("cluster bridge connected", "peer", node, "peer_name", bc.joined.Name, "peer_epoch", bc.joined.Epoch)
		pctx, pcancel := context.WithCancel(ctx)
		var fwg sync.WaitGroup
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			defer pcancel() // a forward connection that gives up ends the bindings one too
			b.forward(pctx, addr, node, log)
		}()
		err = b.readBindings(pctx, bc, node)
		b.srv.SetPeerConnected(node, false)
		pcancel()
		bc.close()
		fwg.Wait()
		if ctx.Err() != nil {
			return
		}
		var sd *peerScaledDown
		if errors.As(err, &sd) {
			n, rerr := b.srv.ReclaimForward(ctx, node, sd.target)
			if rerr != nil {
				log.Error("cluster bridge: the peer scaled down; taking back what waited for it failed", "peer", node,
					"target", sd.target, "moved", n, "err", rerr)
			} else {
				log.Info("cluster bridge: the peer scaled down; what waited for it goes to its target", "peer", node,
					"target", sd.target, "messages", n)
			}
		}
		log.Info("cluster bridge disconnected, reconnecting", "peer", node, "err", err)
		sleepCtx(ctx, b.retry)
	}
}

// readBindings reads the peer's ClusterBindings pushes until the
// connection or ctx ends, pinging while it is quiet.
func (b *clusterBridges) readBindings(ctx context.Context, c *clusterConn, node string) error {
	var wmu sync.Mutex
	write := func(corr uint64, f wire.Frame) error {
		buf, err := wire.AppendFrame(nil, corr, f)
		if err != nil {
			return err
		}
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(clusterRequestTimeout))
		_, err = c.nc.Write(buf)
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	pingDone := make(chan struct{})
	defer func() { <-pingDone }()
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	go func() { // owned by this call: it waits for it
		defer close(pingDone)
		for sleepCtx(pctx, bridgePing) {
			if write(0, &wire.Ping{}) != nil {
				_ = c.nc.SetDeadline(time.Now())
				return
			}
		}
	}()
	connected := false
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(4 * bridgePing))
		h, fr, err := c.dec.Read()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		switch x := fr.(type) {
		case *wire.Ping:
			if err := write(h.Corr, &wire.Pong{}); err != nil {
				return err
			}
		case *wire.ClusterBindings:
			if x.NodeID != node {
				return fmt.Errorf("bindings of node %s on the connection to %s", x.NodeID, node)
			}
			if x.ScaledDownTo != "" {
				return &peerScaledDown{target: x.ScaledDownTo}
			}
			b.srv.SetRemoteBindings(node, x.Epoch, x.Queues)
			if !connected {
				connected = true
				b.srv.SetPeerConnected(node, true)
			}
		case *wire.Error:
			return fmt.Errorf("%v: %s", x.Code, x.Message)
		case *wire.Disconnect:
			return fmt.Errorf("the peer disconnects: %v: %s", x.Code, x.Message)
		}
	}
}

// forward drains node's forwarding queue over a forward connection to
// addr until ctx ends.
func (b *clusterBridges) forward(ctx context.Context, addr, node string, log *slog.Logger) {
	confirmed := 0
	for ctx.Err() == nil {
		fc, err := dialCluster(ctx, b.cfg, addr, b.srv.NodeID(), b.srv.Epoch(), wire.ForwardStream)
		if err != nil {
			if ctx.Err() == nil {
				log.Debug("cluster bridge: forward connection failed", "err", err)
				sleepCtx(ctx, b.retry)
			}
			continue
		}
		if fc.joined.NodeID != node {
			log.Warn("cluster bridge: the peer's node ID changed; reconnecting", "was", node, "now", fc.joined.NodeID)
			fc.close()
			return
		}
		err = b.forwardOn(ctx, fc, node, &confirmed, log)
		fc.close()
		b.srv.ReturnForward(node)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errBridgeFatal) {
			log.Error("cluster bridge stopped", "peer", node, "err", err)
			return
		}
		log.Info("cluster bridge: forward connection lost; what was in flight goes again", "peer", node, "err", err)
		sleepCtx(ctx, b.retry)
	}
}

// peerScaledDown is readBindings' end when the peer scaled down into
// target.
type peerScaledDown struct{ target string }

func (e *peerScaledDown) Error() string { return "the peer scaled down into " + e.target }

// errBridgeFatal is a local failure (the journal): the bridge stops.
var errBridgeFatal = errors.New("local storage failed")

// forwardOn sends batches on fc until an error.
func (b *clusterBridges) forwardOn(ctx context.Context, fc *clusterConn, node string, confirmed *int, log *slog.Logger) error {
	lastSent := time.Now()
	for {
		ms := b.srv.TakeForward(node, forwardBatch, maxBatchBytes)
		if ms == nil {
			if time.Since(lastSent) > bridgePing {
				if err := fc.ping(ctx); err != nil {
					return err
				}
				lastSent = time.Now()
			}
			if !sleepCtx(ctx, forwardPoll) {
				return ctx.Err()
			}
			continue
		}
		// A stop lets the batch in flight have its answer (for a while):
		// an unknown outcome is resolved only by a resend, which a
		// scale-down stopping the bridge would not make.
		sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
		grace := context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, scancel) })
		a, err := fc.send(sctx, &wire.ClusterMessages{Epoch: b.srv.Epoch(), Messages: ms})
		grace()
		scancel()
		if err != nil {
			return err
		}
		lastSent = time.Now()
		*confirmed++
		if b.stallAfter > 0 && *confirmed > b.stallAfter {
			log.Warn("test: forward stalled before acking a batch the peer confirmed (TANDEM_TEST_FORWARD_STALL_AFTER)",
				"peer", node, "messages", len(ms))
			<-ctx.Done()
			return ctx.Err()
		}
		if err := b.srv.AckForward(node); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %v", errBridgeFatal, err)
		}
		log.Debug("cluster bridge: batch confirmed", "peer", node, "messages", len(ms), "stored", a.Stored, "dropped", a.Dropped)
	}
}

// ping sends a Ping and waits for its Pong (a quiet forward connection
// stays within the peer's connection TTL).
func (c *clusterConn) ping(ctx context.Context) error {
	c.corr++
	dl := time.Now().Add(clusterRequestTimeout)
	_ = c.nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	buf, err := wire.AppendFrame(nil, c.corr, &wire.Ping{})
	if err != nil {
		return err
	}
	if _, err := c.nc.Write(buf); err != nil {
		return err
	}
	for {
		h, fr, err := c.dec.Read()
		if err != nil {
			return err
		}
		switch x := fr.(type) {
		case *wire.Pong:
			return nil
		case *wire.Ping:
			pb, _ := wire.AppendFrame(nil, h.Corr, &wire.Pong{})
			if _, err := c.nc.Write(pb); err != nil {
				return err
			}
		case *wire.Error:
			return fmt.Errorf("%v: %s", x.Code, x.Message)
		case *wire.Disconnect:
			return fmt.Errorf("the peer disconnects: %v: %s", x.Code, x.Message)
		}
	}
}

// redistribute runs the server's redistribution periodically (only
// modes that redistribute move anything).
func (b *clusterBridges) redistribute(ctx context.Context) {
	for sleepCtx(ctx, redistributeEvery) {
		if _, err := b.srv.Redistribute(time.Now(), redistributeAtOnce); err != nil {
			b.log.Error("redistribution", "err", err)
		}
	}
}
