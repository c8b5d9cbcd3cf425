package broker

// UDP broadcast and discovery groups (issue 19): a serving single broker
// with <broadcast-groups> sends a wire.Announcement (its node ID, name,
// group and the group's connectors) every broadcast-period to each
// group's address and port; a live-only broker whose scale-down (or
// first cluster connection) names a <discovery-group> listens on that
// group's port and keeps what it hears, per node ID, until refresh-timeout
// passes without a new announcement. A multicast group address is
// joined (on the interfaces the system picks); any other address (a
// broadcast address such as 127.255.255.255 on one machine, or a unicast
// one) is sent to as is, and listeners bind the port with SO_REUSEADDR
// and SO_REUSEPORT so several brokers of one machine each get every
// datagram. Datagrams that do not parse (another program on the port, a
// newer version, a bad CRC) are counted and logged once a minute.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/wire"
)

// groupAddr resolves a group's address and port.
func groupAddr(host string, port int) (*net.UDPAddr, error) {
	a, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("group address %s:%d: %w", host, port, err)
	}
	return a, nil
}

func reuseControl(broadcast bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 1)
				}
			}
			if broadcast && serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// listenGroup opens a socket receiving the group's datagrams.
func listenGroup(ga *net.UDPAddr) (*net.UDPConn, error) {
	if ga.IP.IsMulticast() {
		return net.ListenMulticastUDP("udp4", nil, ga)
	}
	lc := net.ListenConfig{Control: reuseControl(false)}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", ga.Port))
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// broadcaster announces this broker to its broadcast groups.
type broadcaster struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startBroadcast starts one goroutine per broadcast group (nil when there
// is none); stop ends them.
func startBroadcast(cfg *config.Config, node string, log *slog.Logger) (*broadcaster, error) {
	if len(cfg.BroadcastGroups) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &broadcaster{cancel: cancel}
	for _, g := range cfg.BroadcastGroups {
		a := &wire.Announcement{NodeID: node, Name: cfg.Name, Group: clusterGroup(cfg)}
		for _, ref := range g.ConnectorRefs {
			for _, c := range cfg.Connectors {
				if c.Name == ref && c.Scheme == "tcp" {
					a.Connectors = append(a.Connectors, "tcp://"+c.Address())
				}
			}
		}
		dg, err := wire.AppendAnnouncement(nil, a)
		if err != nil {
			b.stop()
			return nil, fmt.Errorf("broadcast group %q: %w", g.Name, err)
		}
		ga, err := groupAddr(g.GroupAddress, g.GroupPort)
		if err != nil {
			b.stop()
			return nil, fmt.Errorf("broadcast group %q: %w", g.Name, err)
		}
		lc := net.ListenConfig{Control: reuseControl(true)}
		pc, err := lc.ListenPacket(ctx, "udp4", ":0")
		if err != nil {
			b.stop()
			return nil, fmt.Errorf("broadcast group %q: %w", g.Name, err)
		}
		every := g.BroadcastPer
		if every <= 0 {
			every = 2 * time.Second
		}
		glog := log.With("broadcast_group", g.Name, "group", ga.String())
		glog.Info("broadcasting this broker", "connectors", strings.Join(a.Connectors, ","), "every", every)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer pc.Close()
			t := time.NewTicker(every)
			defer t.Stop()
			failing := false
			for {
				_, err := pc.WriteTo(dg, ga)
				if err != nil && !failing {
					glog.Warn("cannot send the announcement", "err", err)
				}
				failing = err != nil
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	return b, nil
}

// stop ends the announcements (nil-safe; again is a no-op).
func (b *broadcaster) stop() {
	if b == nil {
		return
	}
	b.cancel()
	b.wg.Wait()
}

// discovered is one broker a discovery group heard.
type discovered struct {
	ann  *wire.Announcement
	seen time.Time
}

// discovery listens to one discovery group.
type discovery struct {
	name    string
	refresh time.Duration
	pc      *net.UDPConn
	log     *slog.Logger
	done    chan struct{}

	mu    sync.Mutex
	self  string // this broker's node ID once known: not a candidate
	nodes map[string]discovered
	addrs map[string]time.Time // first connector (host:port) -> last heard: the brokers themselves (a pair's two share a node ID)
	bad   int
}

// startDiscovery listens to the discovery group the scale-down (or the
// first cluster connection) names.
func (d *scaleDowner) startDiscovery() error {
	name := ""
	if sd := d.cfg.HA.ScaleDown; sd != nil && sd.DiscoveryGroup != "" {
		name = sd.DiscoveryGroup
	} else if len(d.cfg.ClusterConnections) > 0 {
		name = d.cfg.ClusterConnections[0].DiscoveryGroupRef
	}
	if name == "" {
		return nil
	}
	for _, g := range d.cfg.DiscoveryGroups {
		if g.Name != name {
			continue
		}
		disc, err := listenDiscovery(g, d.log)
		if err != nil {
			return fmt.Errorf("discovery group %q: %w", g.Name, err)
		}
		d.disc = disc
		return nil
	}
	return fmt.Errorf("discovery group %q is not defined in <discovery-groups>", name)
}

// close stops the discovery listener.
func (d *scaleDowner) close() {
	if d.disc != nil {
		d.disc.close()
	}
}

func listenDiscovery(g config.DiscoveryGroup, log *slog.Logger) (*discovery, error) {
	ga, err := groupAddr(g.GroupAddress, g.GroupPort)
	if err != nil {
		return nil, err
	}
	pc, err := listenGroup(ga)
	if err != nil {
		return nil, err
	}
	refresh := g.RefreshTimeout
	if refresh <= 0 {
		refresh = 10 * time.Second
	}
	d := &discovery{name: g.Name, refresh: refresh, pc: pc, log: log.With("discovery_group", g.Name, "group", ga.String()),
		done: make(chan struct{}), nodes: map[string]discovered{}, addrs: map[string]time.Time{}}
	d.log.Info("listening for broadcast brokers")
	go d.run()
	return d, nil
}

func (d *discovery) run() {
	defer close(d.done)
	buf := make([]byte, wire.MaxAnnouncement+1)
	lastBadLog := time.Time{}
	for {
		n, from, err := d.pc.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		a, err := wire.ParseAnnouncement(buf[:n])
		d.mu.Lock()
		if err != nil {
			d.bad++
			if time.Since(lastBadLog) > time.Minute {
				lastBadLog = time.Now()
				d.log.Warn("datagram on the discovery port ignored", "from", from.String(), "err", err, "ignored_so_far", d.bad)
			}
			d.mu.Unlock()
			continue
		}
		_, known := d.nodes[a.NodeID]
		d.nodes[a.NodeID] = discovered{ann: a, seen: time.Now()}
		for _, c := range a.Connectors {
			if addr, ok := strings.CutPrefix(c, "tcp://"); ok {
				d.addrs[addr] = time.Now()
				break
			}
		}
		self := a.NodeID == d.self
		d.mu.Unlock()
		if !known && !self {
			d.log.Info("broker discovered", "peer_node", a.NodeID, "peer_name", a.Name, "peer_group", a.Group,
				"connectors", strings.Join(a.Connectors, ","))
		}
	}
}

// setSelf names this broker's node ID (never a candidate).
func (d *discovery) setSelf(node string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.self = node
	d.mu.Unlock()
}

// addresses are the host:port of the first connector of each broker
// heard within refresh-timeout, by node ID.
func (d *discovery) addresses() []string {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	nodes := make([]string, 0, len(d.nodes))
	for id, x := range d.nodes {
		if time.Since(x.seen) > d.refresh {
			delete(d.nodes, id)
			continue
		}
		if id != d.self {
			nodes = append(nodes, id)
		}
	}
	slices.Sort(nodes)
	var out []string
	for _, id := range nodes {
		for _, c := range d.nodes[id].ann.Connectors {
			if a, ok := strings.CutPrefix(c, "tcp://"); ok {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// brokers are the host:port of every broker heard within
// refresh-timeout (each by its first connector), self excluded, sorted:
// the quorum vote's electorate with a discovery group.
func (d *discovery) brokers(self string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for a, seen := range d.addrs {
		switch {
		case time.Since(seen) > d.refresh:
			delete(d.addrs, a)
		case a != self:
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

func (d *discovery) close() {
	d.pc.Close()
	<-d.done
}
