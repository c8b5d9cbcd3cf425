package broker

// Live-only HA with scale-down (issue 19, R30-R33): a live-only broker
// serves alone; on a graceful stop (SIGTERM, SIGINT) with <scale-down>
// enabled it moves its messages, with their duplicate IDs, delivery counts
// and properties, and then its duplicate-ID caches, to another live broker
// of the cluster, and only once that target holds them durably tells its
// clients to go there (a topology naming the target, then Disconnect with
// CodeUnavailable) and stops. A crash is not scaled down: the messages
// stay in this broker's journal for its next start.
//
// The steps of a scale-down:
//
//  1. Find a target: the <connectors> of <scale-down>, else the brokers a
//     <discovery-group-ref> finds, else the static connectors of the first
//     cluster connection; with <group-name>, only a broker that announces
//     that group. The first that accepts a cluster connection (the
//     cluster credentials) is the target.
//  2. Freeze (server.Freeze): no client operation runs any more; clients
//     stay connected. Every message is in a queue.
//  3. Record the scale-down (target node ID and URL, highest message ID)
//     durably, then move the messages in ascending ID order in batches
//     (commit-interval messages, at most about a MiB); each batch is acked
//     here only after the target answered that it holds it durably. The
//     target keeps this broker's watermark with the batch, so a batch sent
//     again is dropped there.
//  4. Move the duplicate-ID caches; delete the record; push the topology
//     naming the target; fail the parked client operations with
//     CodeUnavailable (they resend to the target); close the acceptors
//     with Disconnect CodeUnavailable.
//
// Interrupted: what the target did not confirm stays here. A broker
// killed in the middle finds the record at its next start and, before it
// serves, asks that target (by the recorded URL, then every candidate) for
// its watermark: the messages up to it are on the target and are acked
// here. It waits for the target as long as it takes: serving before would
// deliver messages the target holds too.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// scaleDownStream names the watermark of scale-downs on a target.
const scaleDownStream = "scale-down"

// Scale-down limits: a batch carries at most this many bytes of messages
// (the frame limit is about 2 MiB), and at most defaultCommitInterval
// messages when commit-interval is -1.
const (
	maxBatchBytes         = 1 << 20
	defaultCommitInterval = 1000
	maxDupIDsPerFrame     = 4096
	// freezeTimeout bounds the wait for client operations in progress.
	freezeTimeout = 30 * time.Second
)

// targetSearch bounds how long a stopping broker looks for a target (a
// variable: tests shorten it).
var targetSearch = 15 * time.Second

// clusterGroup is the group name this broker announces to cluster
// connections: <scale-down><group-name> of a live-only broker, else the
// policy's <group-name>.
func clusterGroup(cfg *config.Config) string {
	if sd := cfg.HA.ScaleDown; cfg.HA.Policy == config.PolicyLiveOnly && sd != nil && sd.GroupName != "" {
		return sd.GroupName
	}
	return cfg.HA.GroupName
}

// runLiveOnly is `tandem run` with <ha-policy><live-only> (or
// <primary-only>).
func runLiveOnly(stop context.Context, cfg *config.Config, log *slog.Logger, lim *netLimits) int {
	sd := &scaleDowner{cfg: cfg, log: log, stop: stop}
	if err := sd.startDiscovery(); err != nil {
		fmt.Fprintf(os.Stderr, "tandem run: %v\n", err)
		return exitCannot
	}
	defer sd.close()
	return serveWith(stop, cfg, log, lim, serveHooks{policy: string(config.PolicyLiveOnly),
		loaded: sd.resolvePending, stopping: sd.scaleDown})
}

// scaleDowner carries out the scale-down of one live-only broker.
type scaleDowner struct {
	cfg  *config.Config
	log  *slog.Logger
	stop context.Context // the broker's stop signal
	disc *discovery      // <discovery-group-ref>'s group (nil: none)
}

// normalStop is what clients are told by a stop without a scale-down.
func normalStop() (wire.Code, string) { return wire.CodeShuttingDown, "broker stopping" }

// testStallAfter is the batch after which a scale-down stalls (the
// TANDEM_TEST_SCALEDOWN_STALL_AFTER test hook: a fault test kills the
// broker then, in the window where the target holds a batch this broker
// has not acked).
func testStallAfter() int {
	n, _ := strconv.Atoi(os.Getenv("TANDEM_TEST_SCALEDOWN_STALL_AFTER"))
	return n
}

// candidates are the host:port addresses a target is looked for at, in
// order, without this broker's own.
func (d *scaleDowner) candidates() []string {
	cfg := d.cfg
	sd := cfg.HA.ScaleDown
	self := strings.TrimPrefix(haAnnounceURL(cfg), "tcp://")
	var out []string
	add := func(addr string) {
		for _, a := range out {
			if a == addr {
				return
			}
		}
		if addr != "" && addr != self {
			out = append(out, addr)
		}
	}
	byName := func(names []string) {
		for _, n := range names {
			found := false
			for _, c := range cfg.Connectors {
				if c.Name == n && c.Scheme == "tcp" {
					add(c.Address())
					found = true
				}
			}
			if !found {
				d.log.Warn("scale-down: connector is not defined (or not tcp)", "connector", n)
			}
		}
	}
	switch {
	case sd != nil && len(sd.Connectors) > 0:
		byName(sd.Connectors)
	case sd != nil && sd.DiscoveryGroup != "":
		if d.disc != nil {
			for _, a := range d.disc.addresses() {
				add(a)
			}
		}
	default:
		for _, cc := range cfg.ClusterConnections {
			byName(cc.StaticConnectors)
			if cc.DiscoveryGroupRef != "" && d.disc != nil {
				for _, a := range d.disc.addresses() {
					add(a)
				}
			}
		}
	}
	return out
}

// connectTarget finds a target (want: only that node ID; "" any) and
// returns its joined connection; it looks for at most within.
func (d *scaleDowner) connectTarget(ctx context.Context, l *live, want string, within time.Duration) (*clusterConn, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	group := ""
	if sd := d.cfg.HA.ScaleDown; sd != nil {
		group = sd.GroupName
	}
	var last error = errors.New("no candidate")
	every := 500 * time.Millisecond
	if len(d.cfg.ClusterConnections) > 0 {
		every = min(max(d.cfg.ClusterConnections[0].RetryInterval, 100*time.Millisecond), 2*time.Second)
	}
	for {
		cands := d.candidates()
		if len(cands) == 0 {
			last = errors.New("no candidate target: <scale-down> names no connector, and neither the discovery group nor a cluster connection knows another broker")
		}
		for _, addr := range cands {
			tc, err := dialCluster(ctx, d.cfg, addr, l.srv.NodeID(), l.srv.Epoch(), scaleDownStream)
			if err != nil {
				last = err
				d.log.Debug("scale-down: candidate does not take messages", "addr", addr, "err", err)
				continue
			}
			j := tc.joined
			switch {
			case want != "" && j.NodeID != want:
				last = fmt.Errorf("%s is node %s, not %s", addr, j.NodeID, want)
			case want == "" && group != "" && j.Group != group:
				last = fmt.Errorf("%s (%s) is in group %q, not %q", addr, j.Name, j.Group, group)
			default:
				return tc, nil
			}
			tc.close()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no scale-down target within %v: %w", within, last)
		case <-time.After(every):
		}
	}
}

// scaleDown is the stopping hook: it moves everything to a target and
// tells the clients to go there, or, when it cannot, stops normally with
// the messages left in this broker's journal (and says why).
func (d *scaleDowner) scaleDown(l *live) (wire.Code, string) {
	sd := d.cfg.HA.ScaleDown
	if sd == nil || !sd.Enabled {
		return normalStop()
	}
	log := l.log.With("scale_down", true)
	if n := l.srv.PreparedTransactions(); n > 0 {
		log.Error("not scaling down: the store holds prepared transactions, which Tandem does not move (XA is not supported); the messages stay in this broker's journal",
			"prepared", n)
		return normalStop()
	}
	ctx := context.Background()
	tc, err := d.connectTarget(ctx, l, "", targetSearch)
	if err != nil {
		log.Error("not scaling down: the messages stay in this broker's journal", "err", err)
		return normalStop()
	}
	defer tc.close()
	url := "tcp://" + tc.addr
	log = log.With("target", url, "target_node", tc.joined.NodeID)
	log.Info("scale-down started: freezing clients")
	fctx, cancel := context.WithTimeout(ctx, freezeTimeout)
	err = l.srv.Freeze(fctx)
	cancel()
	if err != nil {
		log.Error("not scaling down: freezing failed; the messages stay in this broker's journal", "err", err)
		l.srv.Release(nil)
		return normalStop()
	}
	msgs, err := l.srv.ExportMessages()
	if errors.Is(err, server.ErrNotExportable) {
		// Paged or large messages: nothing was taken or sent.
		log.Error("not scaling down: the messages stay in this broker's journal", "err", err)
		l.srv.Release(nil)
		return normalStop()
	}
	if err == nil {
		err = d.move(ctx, l, tc, msgs, log)
	}
	if err != nil {
		l.srv.RestoreExported()
		log.Error("scale-down interrupted: what the target did not confirm stays in this broker's journal", "err", err)
		l.srv.Release(nil)
		return normalStop()
	}
	d.moveDupIDs(ctx, l, tc, log)
	if err := l.srv.ClearPendingScaleDown(ctx); err != nil {
		log.Error("scale-down: clearing its record", "err", err)
	}
	// The peers of a cluster connection send what waits for this broker
	// to the target instead (bridge.go, server.ReclaimForward).
	actx, acancel := context.WithTimeout(ctx, 2*time.Second)
	l.srv.AnnounceScaledDown(actx, tc.joined.NodeID)
	acancel()
	l.srv.SetTopology(server.Topology{Epoch: l.srv.Epoch(), Members: []server.Member{
		{NodeID: tc.joined.NodeID, Role: "primary", State: "active", URL: url, Epoch: tc.joined.Epoch}}})
	reason := "scaled down to " + url
	l.srv.Release(fmt.Errorf("%w: %s", server.ErrFrozen, reason))
	log.Info("scale-down complete: clients are sent to the target", "messages", len(msgs))
	return wire.CodeUnavailable, reason
}

// move sends msgs (ascending IDs) to the target in batches, acking each
// here once the target confirmed it. Messages at or below the target's
// watermark for this broker are there already (a batch confirmed before a
// crash): they are acked here without being sent.
func (d *scaleDowner) move(ctx context.Context, l *live, tc *clusterConn, msgs []wire.ClusterMessage, log *slog.Logger) error {
	epoch := l.srv.Epoch()
	w := tc.joined.Watermark
	var there []uint64
	for len(msgs) > 0 && msgs[0].ID <= w {
		there = append(there, msgs[0].ID)
		msgs = msgs[1:]
	}
	if len(there) > 0 {
		if err := l.srv.AckExported(ctx, there); err != nil {
			return err
		}
		log.Info("scale-down: messages the target holds already acked here", "messages", len(there), "watermark", w)
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := l.srv.SetPendingScaleDown(ctx, server.PendingScaleDown{Target: tc.joined.NodeID, URL: "tcp://" + tc.addr,
		High: msgs[len(msgs)-1].ID}); err != nil {
		return err
	}
	per := defaultCommitInterval
	if sd := d.cfg.HA.ScaleDown; sd != nil && sd.CommitInterval > 0 {
		per = sd.CommitInterval
	}
	stall := testStallAfter()
	total, moved, n := len(msgs), 0, 0
	for len(msgs) > 0 {
		k, size := 0, 0
		for k < len(msgs) && k < per {
			sz := messageSize(&msgs[k])
			if k > 0 && size+sz > maxBatchBytes {
				break
			}
			size += sz
			k++
		}
		batch := msgs[:k]
		a, err := tc.send(ctx, &wire.ClusterMessages{Epoch: epoch, Messages: batch})
		if err != nil {
			if errors.Is(err, errClusterRefused) && moved == 0 {
				// Nothing of this scale-down is on the target: the
				// record may go (the next start need not ask it).
				if cerr := l.srv.ClearPendingScaleDown(ctx); cerr != nil {
					log.Error("scale-down: clearing its record", "err", cerr)
				}
			}
			return fmt.Errorf("batch of %d messages (%d of %d moved): %w", k, moved, total, err)
		}
		if last := batch[k-1].ID; a.Watermark < last {
			return fmt.Errorf("the target answered watermark %d for a batch up to ID %d", a.Watermark, last)
		}
		n++
		if stall > 0 && n == stall {
			log.Warn("scale-down stalled after a confirmed batch (TANDEM_TEST_SCALEDOWN_STALL_AFTER)", "batch", n)
			select {} // until the test kills the process
		}
		ids := make([]uint64, k)
		for i := range batch {
			ids[i] = batch[i].ID
		}
		if err := l.srv.AckExported(ctx, ids); err != nil {
			return err
		}
		moved += k
		log.Info("scale-down batch confirmed by the target", "batch", n, "messages", k, "stored", a.Stored, "dropped", a.Dropped,
			"moved", moved, "of", total)
		msgs = msgs[k:]
	}
	return nil
}

// messageSize estimates a message's encoded size in a ClusterMessages.
func messageSize(m *wire.ClusterMessage) int {
	n := 64 + len(m.Message.Address) + len(m.Message.DuplicateID) + len(m.Message.Body)
	for _, p := range m.Message.Properties {
		n += 16 + len(p.Key) + len(p.Str) + len(p.Bytes)
	}
	for _, q := range m.Queues {
		n += 16 + len(q.Name) + len(q.Address)
	}
	return n
}

// moveDupIDs sends the duplicate-ID caches. A failure leaves the
// messages where they are (moved); clients resending to the target may
// then store a message twice, which the log says.
func (d *scaleDowner) moveDupIDs(ctx context.Context, l *live, tc *clusterConn, log *slog.Logger) {
	cas := l.srv.ExportDuplicateIDs()
	epoch := l.srv.Epoch()
	var frame []wire.ClusterAddress
	count, sent := 0, 0
	flush := func() bool {
		if len(frame) == 0 {
			return true
		}
		if _, err := tc.send(ctx, &wire.ClusterDupIDs{Epoch: epoch, Addresses: frame}); err != nil {
			log.Error("scale-down: the duplicate-ID caches did not all reach the target: a client's resend of a moved or consumed message may be stored there again",
				"err", err, "ids_sent", sent)
			return false
		}
		sent += count
		frame, count = nil, 0
		return true
	}
	for _, ca := range cas {
		for len(ca.IDs) > 0 {
			k := min(len(ca.IDs), maxDupIDsPerFrame-count)
			frame = append(frame, wire.ClusterAddress{Name: ca.Name, Flags: ca.Flags, IDs: ca.IDs[:k]})
			ca.IDs = ca.IDs[k:]
			count += k
			if count >= maxDupIDsPerFrame && !flush() {
				return
			}
		}
	}
	if flush() && sent > 0 {
		log.Info("scale-down: duplicate-ID caches moved", "ids", sent)
	}
}

// resolvePending is the loaded hook: a scale-down interrupted by a crash
// left its record; before serving, the broker asks that target which of
// the recorded messages it holds and acks those here. It waits for the
// target until the broker is stopped.
func (d *scaleDowner) resolvePending(l *live) error {
	d.disc.setSelf(l.srv.NodeID())
	p, ok := l.srv.PendingScaleDown()
	if !ok {
		return nil
	}
	log := l.log.With("scale_down", true, "target", p.URL, "target_node", p.Target)
	log.Warn("a scale-down was interrupted: asking its target which messages it holds before serving", "high", p.High)
	every := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		tc, err := dialCluster(d.stop, d.cfg, strings.TrimPrefix(p.URL, "tcp://"), l.srv.NodeID(), l.srv.Epoch(), scaleDownStream)
		if err == nil && tc.joined.NodeID != p.Target {
			tc.close()
			err = fmt.Errorf("%s is node %s now", p.URL, tc.joined.NodeID)
		}
		if err != nil {
			tc, err = d.connectTarget(d.stop, l, p.Target, every)
		}
		if err == nil {
			w := tc.joined.Watermark
			tc.close()
			n, err := l.srv.DropMovedMessages(d.stop, min(w, p.High))
			if err != nil {
				return fmt.Errorf("acking the messages the scale-down target holds: %w", err)
			}
			if err := l.srv.ClearPendingScaleDown(d.stop); err != nil {
				return err
			}
			log.Info("interrupted scale-down resolved: the messages the target holds were acked here", "messages", n, "watermark", w)
			return nil
		}
		if attempt == 1 || attempt%20 == 0 {
			log.Warn("waiting for the target of the interrupted scale-down (it may hold some of this broker's messages)", "err", err)
		}
		select {
		case <-d.stop.Done():
			return fmt.Errorf("stopped while waiting for the target of an interrupted scale-down (%s)", p.URL)
		case <-time.After(every):
		}
	}
}
