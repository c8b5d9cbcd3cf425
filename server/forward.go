package server

// Message load balancing and redistribution between the live brokers of
// a cluster (issue 19, docs/clustering.md). The broker package connects
// to each peer of the cluster connection twice: a bindings connection
// (wire.BindingsStream) on which the peer pushes its queues and consumer
// counts (SetRemoteBindings), and a forward connection
// (wire.ForwardStream) on which a bridge moves messages there.
//
// A send picks, for each queue it routes to, the local queue or a peer's
// queue of the same name and address (balanceLocked; chooseTarget is the
// pure decision). A message for a peer goes, in the send's own journal
// append, to that peer's forwarding queue ($tandem.cluster.sf.<node ID>,
// durable) with a RecForwardRoute update naming the target queues. The
// bridge takes batches from the head of it (TakeForward), sends them with
// a duplicate ID each (the client's, else one made of this node's ID and
// the message ID, which the journal keeps), and acks them here
// (AckForward) only once the peer answered that it holds them durably;
// anything else puts them back (ReturnForward) for a resend the peer's
// duplicate-ID cache drops if it stored them already.
//
// Redistribution (Redistribute) moves the messages of a queue without
// local consumers for its address's redistribution-delay into the
// forwarding queue of a peer whose queue of the same name has consumers:
// the move is one append (the forwarding queue's reference, the route and
// the source queue's ack), and the bridge does the rest.
//
// Records (messages journal, part of the on-disk format):
//
//	RecForwardRoute  Update of a message: format u8 (1), forwarding
//	                 queue ID u64, flags u8 (1: redistributed), routing
//	                 u8, deliveries uvarint, address str, list of queue name
//	                 str. The last one per forwarding queue is the route.
//	RecMessageOrigin Update of a message: format u8 (1), node ID str.

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/selector"
	"github.com/tandemmq/tandem/wire"
)

// RecForwardRoute names the peer queues a message in a forwarding queue
// goes to (an Update of the message); RecMessageOrigin names the broker a
// client sent a message to, for one another broker moved here (an Update
// of the message).
const (
	RecForwardRoute  uint8 = 11
	RecMessageOrigin uint8 = 12
)

// ForwardQueuePrefix begins the names of the forwarding queues (and their
// addresses): ForwardQueuePrefix + the peer's node ID. Queues and
// addresses under ClusterPrefix are never announced to peers.
const (
	ClusterPrefix      = "$tandem.cluster."
	ForwardQueuePrefix = ClusterPrefix + "sf."
)

// LoadBalancing is a cluster connection's message-load-balancing.
type LoadBalancing int32

// The message-load-balancing modes (Artemis's names in ParseLoadBalancing).
const (
	BalanceOff LoadBalancing = iota
	BalanceStrict
	BalanceOnDemand
	BalanceOffWithRedistribution
)

// ParseLoadBalancing returns the mode a <message-load-balancing> names.
func ParseLoadBalancing(s string) (LoadBalancing, error) {
	switch s {
	case "OFF":
		return BalanceOff, nil
	case "STRICT":
		return BalanceStrict, nil
	case "ON_DEMAND", "":
		return BalanceOnDemand, nil
	case "OFF_WITH_REDISTRIBUTION":
		return BalanceOffWithRedistribution, nil
	}
	return BalanceOff, fmt.Errorf("message-load-balancing %q: want OFF, STRICT, ON_DEMAND or OFF_WITH_REDISTRIBUTION", s)
}

func (b LoadBalancing) String() string {
	return [...]string{"OFF", "STRICT", "ON_DEMAND", "OFF_WITH_REDISTRIBUTION"}[b]
}

// redistributes reports whether the mode moves messages of queues without
// consumers (Artemis: ON_DEMAND and OFF_WITH_REDISTRIBUTION).
func (b LoadBalancing) redistributes() bool {
	return b == BalanceOnDemand || b == BalanceOffWithRedistribution
}

// chooseTarget is the load-balancing decision for one message and one
// binding (a local queue and the peers' queues of the same name): it
// returns -1 for the local queue or the index in remote of the peer queue
// the message goes to. remote holds the peers' consumer counts (a
// negative count: the peer is not connected now). rr is the binding's
// rotation, advanced for every choice among more than one candidate.
//
//   - OFF, OFF_WITH_REDISTRIBUTION: local.
//   - STRICT: round robin over the local queue and every connected peer
//     queue, consumers or not (a peer that is away, stopped or scaled
//     down gets nothing new until it is back).
//   - ON_DEMAND: round robin over the connected peer queues with consumers,
//     and the local queue when it has consumers; local when none has.
func chooseTarget(mode LoadBalancing, local int, remote []int, rr *uint32) int {
	var buf [8]int
	cands := buf[:0]
	switch mode {
	case BalanceStrict:
		cands = append(cands, -1)
		for i, n := range remote {
			if n >= 0 {
				cands = append(cands, i)
			}
		}
	case BalanceOnDemand:
		if local > 0 {
			cands = append(cands, -1)
		}
		for i, n := range remote {
			if n > 0 {
				cands = append(cands, i)
			}
		}
	}
	switch len(cands) {
	case 0:
		return -1
	case 1:
		return cands[0]
	}
	i := *rr % uint32(len(cands))
	*rr++
	return cands[i]
}

// peer is another live of the cluster connection.
type peer struct {
	node      string
	fwd       *Queue // its forwarding queue; nil until it joined once
	connected atomic.Bool
	forwarded atomic.Uint64
	// Guarded by forwarding.mu.
	name     string
	epoch    uint64
	bindings []wire.ClusterBinding
	inflight []*ref // taken by TakeForward, not acked or returned yet
}

// remoteQueue is a peer's queue as balanceLocked sees it.
type remoteQueue struct {
	peer      *peer
	fwd       *Queue // the peer's forwarding queue
	address   string
	routing   Routing
	filter    *selector.Selector // nil: none
	consumers int                // -1 while the peer is not connected
}

// remoteTable is the peers' queues by name (immutable once published).
type remoteTable struct {
	byName map[string][]remoteQueue
}

// fwdRoute is where a message in a forwarding queue goes on the peer.
type fwdRoute struct {
	redist     bool
	routing    Routing
	deliveries uint32
	address    string
	queues     []string
}

// forwarding is the server's load-balancing state (in clusterState).
type forwarding struct {
	// active is set while sends may go to peers: a mode other than OFF
	// and at least one remote binding. The send path checks only it.
	active atomic.Bool
	mode   atomic.Int32
	remote atomic.Pointer[remoteTable]

	mu     sync.Mutex
	peers  map[string]*peer               // by node ID
	routes map[uint64]map[uint64]fwdRoute // forwarding queue ID -> message ID -> route
	// rr is each binding's rotation, by local queue name.
	rr map[string]*uint32

	subsMu sync.Mutex
	subs   map[chan struct{}]*atomic.Bool // set once it pushed leaving
	nsubs  atomic.Int32
	// leaving is the node ID this broker scaled down into (nil: none).
	leaving atomic.Pointer[string]

	// origins are the node IDs Message.origin indexes (origins[0] is
	// unused: this broker); append-only, guarded by originMu.
	originMu  sync.Mutex
	origins   []string
	originIdx map[string]uint32
}

func (f *forwarding) init() {
	f.peers = map[string]*peer{}
	f.routes = map[uint64]map[uint64]fwdRoute{}
	f.rr = map[string]*uint32{}
	f.subs = map[chan struct{}]*atomic.Bool{}
	f.mode.Store(int32(BalanceOff))
	f.origins = []string{""}
	f.originIdx = map[string]uint32{}
}

// originIndex returns the Message.origin of node.
func (f *forwarding) originIndex(node string) uint32 {
	f.originMu.Lock()
	defer f.originMu.Unlock()
	i, ok := f.originIdx[node]
	if !ok {
		i = uint32(len(f.origins))
		f.origins = append(f.origins, node)
		f.originIdx[node] = i
	}
	return i
}

// originOf returns the node ID a client sent m to.
func (s *Server) originOf(m *Message) string {
	if m.origin == 0 {
		return s.nodeID
	}
	f := s.fwd()
	f.originMu.Lock()
	defer f.originMu.Unlock()
	return f.origins[m.origin]
}

// exportProps returns m's properties with the cluster properties a moved
// message carries appended (m's own are shared, never changed).
func (s *Server) exportProps(m *Message, extra ...wire.Property) []wire.Property {
	props := append(slices.Clip(m.Properties), extra...)
	return append(props, wire.StringProp(wire.OriginProperty, s.originOf(m)))
}

func encodeOrigin(node string) []byte {
	return appendString([]byte{clusterRecordFormat}, node)
}

func decodeOrigin(b []byte) (string, error) {
	d := decoder{b: b}
	if f := d.byte(); f != clusterRecordFormat && d.err == nil {
		return "", fmt.Errorf("message origin record: unknown format %d", f)
	}
	node := d.string()
	if d.err == nil && d.off != len(b) {
		return "", fmt.Errorf("message origin record: offset %d: trailing bytes", d.off)
	}
	if d.err != nil {
		return "", fmt.Errorf("message origin record: %w", d.err)
	}
	return node, nil
}

// setOrigin gives a message moved here from another broker its origin
// (the node ID in its OriginProperty; "" the source's, from) and appends
// its record to entries when the message is journaled; it reports whether
// this broker is the origin.
func (s *Server) setOrigin(m *Message, origin string, entries []journal.Entry) ([]journal.Entry, bool) {
	if origin == s.nodeID {
		return entries, true
	}
	m.origin = s.fwd().originIndex(origin)
	if m.durableRefs > 0 {
		entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: m.ID, Type: RecMessageOrigin, Data: encodeOrigin(origin)})
	}
	return entries, false
}

// changed wakes the bindings subscribers (a consumer came or went).
func (f *forwarding) changed() {
	if f.nsubs.Load() == 0 {
		return
	}
	f.subsMu.Lock()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	f.subsMu.Unlock()
}

func (s *Server) fwd() *forwarding { return &s.cluster.fwd }

// SetLoadBalancing sets the cluster connection's message-load-balancing
// (the default, before any call: OFF).
func (s *Server) SetLoadBalancing(mode LoadBalancing) {
	f := s.fwd()
	f.mode.Store(int32(mode))
	s.publishRemote()
}

// loadForwardQueue registers a forwarding queue found at load.
func (s *Server) loadForwardQueue(q *Queue) {
	node, ok := strings.CutPrefix(q.name, ForwardQueuePrefix)
	if !ok || node == "" {
		return
	}
	f := s.fwd()
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.peers[node]
	if p == nil {
		p = &peer{node: node}
		f.peers[node] = p
	}
	p.fwd = q
}

// PeerJoined records that node (name, epoch) answered a cluster
// connection, creating its forwarding queue (durably) the first time.
func (s *Server) PeerJoined(ctx context.Context, node, name string, epoch uint64) error {
	if node == "" || node == s.nodeID {
		return fmt.Errorf("%w: peer node ID %q", ErrInvalid, node)
	}
	f := s.fwd()
	f.mu.Lock()
	p := f.peers[node]
	if p == nil {
		p = &peer{node: node}
		f.peers[node] = p
	}
	p.name, p.epoch = name, max(p.epoch, epoch)
	has := p.fwd != nil
	f.mu.Unlock()
	if has {
		return nil
	}
	qn := ForwardQueuePrefix + node
	q, err := s.createQueue(ctx, qn, qn, Anycast, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("server: forwarding queue for %s: %w", node, err)
	}
	f.mu.Lock()
	p.fwd = q
	f.mu.Unlock()
	s.publishRemote()
	return nil
}

// SetPeerConnected records whether the bindings connection to node is up
// (ON_DEMAND forwards only to connected peers).
func (s *Server) SetPeerConnected(node string, up bool) {
	f := s.fwd()
	f.mu.Lock()
	p := f.peers[node]
	f.mu.Unlock()
	if p != nil && p.connected.Swap(up) != up {
		s.publishRemote()
	}
}

// SetRemoteBindings replaces node's queues (a ClusterBindings push). A
// push from an older epoch than one seen is ignored.
func (s *Server) SetRemoteBindings(node string, epoch uint64, qs []wire.ClusterBinding) {
	f := s.fwd()
	f.mu.Lock()
	p := f.peers[node]
	if p == nil || epoch < p.epoch {
		f.mu.Unlock()
		return
	}
	p.epoch = epoch
	p.bindings = qs
	f.mu.Unlock()
	s.publishRemote()
}

// publishRemote rebuilds the remote table from the peers' bindings.
func (s *Server) publishRemote() {
	f := s.fwd()
	f.mu.Lock()
	t := &remoteTable{byName: map[string][]remoteQueue{}}
	nodes := make([]string, 0, len(f.peers))
	for n := range f.peers {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		p := f.peers[n]
		if p.fwd == nil {
			continue
		}
		for _, b := range p.bindings {
			rq := remoteQueue{peer: p, fwd: p.fwd, address: b.Address, routing: routingOf(b.Routing, Anycast), consumers: int(b.Consumers)}
			if !p.connected.Load() {
				rq.consumers = -1
			}
			if b.Filter != "" {
				sel, err := selector.Parse(b.Filter)
				if err != nil {
					s.log.Warn("a peer's queue filter does not parse here; its queue gets no forwarded messages",
						"peer", n, "queue", clip(b.Name), "err", err)
					continue
				}
				rq.filter = sel
			}
			t.byName[b.Name] = append(t.byName[b.Name], rq)
		}
	}
	// Published under f.mu: two rebuilds store in the order they read.
	f.remote.Store(t)
	mode := LoadBalancing(f.mode.Load())
	f.active.Store(mode != BalanceOff && mode != BalanceOffWithRedistribution && len(t.byName) > 0)
	f.mu.Unlock()
}

// pendingRoute is a balancing decision for one peer, made before the
// message has its ID.
type pendingRoute struct {
	fwd *Queue
	r   fwdRoute
}

// balanceLocked applies load balancing to qs, the local queues a send of
// m routes to: each queue the decision sends to a peer is replaced by the
// peer's forwarding queue (once per peer) and named in the returned
// routes. Caller holds a.mu (which guards the rotations of a's queues).
func (s *Server) balanceLocked(m *Message, qs []*Queue, prs []pendingRoute) ([]*Queue, []pendingRoute) {
	f := s.fwd()
	t := f.remote.Load()
	if t == nil || m.large != nil {
		return qs, prs
	}
	mode := LoadBalancing(f.mode.Load())
	out := qs[:0]
	var cbuf [4]int
	var rbuf [4]remoteQueue
	for _, q := range qs {
		rs := t.byName[q.name]
		if len(rs) == 0 || q.temporary {
			out = append(out, q)
			continue
		}
		cands, counts := rbuf[:0], cbuf[:0]
		for _, rq := range rs {
			if rq.address == q.addr.name && rq.routing == q.routing && (rq.filter == nil || rq.filter.Matches(m)) {
				cands = append(cands, rq)
				counts = append(counts, rq.consumers)
			}
		}
		if len(cands) == 0 {
			out = append(out, q)
			continue
		}
		local := 0
		if mode == BalanceOnDemand {
			q.mu.Lock()
			local = len(q.consumers)
			q.mu.Unlock()
		}
		f.mu.Lock()
		rr := f.rr[q.name]
		if rr == nil {
			rr = new(uint32)
			f.rr[q.name] = rr
		}
		i := chooseTarget(mode, local, counts, rr)
		f.mu.Unlock()
		if i < 0 {
			out = append(out, q)
			continue
		}
		fq := cands[i].fwd
		j := slices.IndexFunc(prs, func(p pendingRoute) bool { return p.fwd == fq })
		if j < 0 {
			prs = append(prs, pendingRoute{fwd: fq, r: fwdRoute{routing: q.routing, address: q.addr.name}})
			j = len(prs) - 1
			out = append(out, fq)
		}
		prs[j].r.queues = append(prs[j].r.queues, q.name)
	}
	return out, prs
}

// forwardEntriesLocked registers the routes of message m (it has its ID
// now) and appends their records when m is persistent.
func (s *Server) forwardEntriesLocked(m *Message, prs []pendingRoute, entries []journal.Entry) []journal.Entry {
	f := s.fwd()
	f.mu.Lock()
	for _, p := range prs {
		f.setRouteLocked(p.fwd.id, m.ID, p.r)
	}
	f.mu.Unlock()
	if !m.Durable {
		return entries
	}
	for _, p := range prs {
		entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: m.ID, Type: RecForwardRoute,
			Data: encodeRoute(p.fwd.id, p.r)})
	}
	return entries
}

func (f *forwarding) setRouteLocked(qid, msgID uint64, r fwdRoute) {
	m := f.routes[qid]
	if m == nil {
		m = map[uint64]fwdRoute{}
		f.routes[qid] = m
	}
	m[msgID] = r
}

func encodeRoute(qid uint64, r fwdRoute) []byte {
	b := make([]byte, 0, 24+len(r.address)+16*len(r.queues))
	b = append(b, clusterRecordFormat)
	b = binary.LittleEndian.AppendUint64(b, qid)
	var flags uint8
	if r.redist {
		flags |= 1
	}
	b = append(b, flags, uint8(r.routing))
	b = binary.AppendUvarint(b, uint64(r.deliveries))
	b = appendString(b, r.address)
	b = binary.AppendUvarint(b, uint64(len(r.queues)))
	for _, q := range r.queues {
		b = appendString(b, q)
	}
	return b
}

func decodeRoute(b []byte) (qid uint64, r fwdRoute, err error) {
	d := decoder{b: b}
	if f := d.byte(); f != clusterRecordFormat && d.err == nil {
		return 0, fwdRoute{}, fmt.Errorf("forward route record: unknown format %d", f)
	}
	qid = d.uint64()
	flags := d.byte()
	r.redist = flags&1 != 0
	r.routing = Routing(d.byte())
	r.deliveries = uint32(min(d.uvarint(), 1<<32-1))
	r.address = d.string()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(b)-d.off) {
		return 0, fwdRoute{}, fmt.Errorf("forward route record: offset %d: %d queue names in %d bytes", d.off, n, len(b)-d.off)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.queues = append(r.queues, d.string())
	}
	if d.err == nil && flags&^1 != 0 {
		return 0, fwdRoute{}, fmt.Errorf("forward route record: unknown flags %#x", flags)
	}
	if d.err == nil && r.routing != Anycast && r.routing != Multicast {
		return 0, fwdRoute{}, fmt.Errorf("forward route record: routing %d", r.routing)
	}
	if d.err == nil && d.off != len(b) {
		return 0, fwdRoute{}, fmt.Errorf("forward route record: offset %d: trailing bytes", d.off)
	}
	if d.err != nil {
		return 0, fwdRoute{}, fmt.Errorf("forward route record: %w", d.err)
	}
	return qid, r, nil
}

// loadRoutes keeps, at load, the last route per forwarding queue of
// message m whose reference rs still holds.
func (s *Server) loadRoutes(m *Message, routes map[uint64]fwdRoute, rs []*ref) {
	f := s.fwd()
	for qid, r := range routes {
		if slices.ContainsFunc(rs, func(x *ref) bool { return x.q.id == qid }) {
			f.setRouteLocked(qid, m.ID, r)
		}
	}
}

// forwardIDProp is the property giving a forwarded message its forward
// ID (wire.ForwardIDProperty, wire.RedistIDProperty): made of this node's
// ID and the message ID, which the journal keeps, so a resend after a
// crash carries the same; a redistributed message's names the queue too
// (a multicast message may reach the same peer twice, for two
// subscriptions).
func (s *Server) forwardIDProp(m *Message, r fwdRoute) wire.Property {
	if r.redist {
		return wire.StringProp(wire.RedistIDProperty,
			"$tandem.redist:"+s.nodeID+":"+strconv.FormatUint(m.ID, 10)+":"+strings.Join(r.queues, ","))
	}
	return wire.StringProp(wire.ForwardIDProperty, "$tandem.fwd:"+s.nodeID+":"+strconv.FormatUint(m.ID, 10))
}

// TakeForward takes up to max messages (about maxBytes) from the head of
// node's forwarding queue for the bridge, in ascending ID order. They
// stay in the journal: AckForward acks them, ReturnForward puts them
// back. It returns nil when nothing waits (or messages are in flight).
func (s *Server) TakeForward(node string, max, maxBytes int) []wire.ClusterMessage {
	f := s.fwd()
	f.mu.Lock()
	p := f.peers[node]
	if p == nil || p.fwd == nil || len(p.inflight) > 0 {
		f.mu.Unlock()
		return nil
	}
	q := p.fwd
	f.mu.Unlock()
	var taken []*ref
	size := 0
	q.mu.Lock()
	for q.msgs.len() > 0 && len(taken) < max && size < maxBytes {
		r := q.msgs.popFront()
		taken = append(taken, r)
		size += r.msg.Size() + 64
	}
	q.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	slices.SortFunc(taken, func(a, b *ref) int { return cmpU64(a.msg.ID, b.msg.ID) })
	out := make([]wire.ClusterMessage, 0, len(taken))
	f.mu.Lock()
	p.inflight = taken
	routes := f.routes[q.id]
	for _, r := range taken {
		m := r.msg
		rt, ok := routes[m.ID]
		if !ok { // never written so: the message's own address
			rt = fwdRoute{routing: m.Routing, address: m.Address, queues: []string{m.Address}}
			s.log.Warn("a message in a forwarding queue has no fwdRoute; it goes to the queue named as its address", "peer", node, "message_id", m.ID)
		}
		props := s.exportProps(m, s.forwardIDProp(m, rt))
		cm := wire.ClusterMessage{ID: m.ID, Message: wire.Message{Address: rt.address, Routing: wire.RoutingType(rt.routing),
			Durable: m.Durable, DuplicateID: m.DuplicateID, Timestamp: m.Timestamp, Expiration: m.Expiration,
			Properties: props, Body: m.Body}}
		for _, qn := range rt.queues {
			cm.Queues = append(cm.Queues, wire.ClusterQueue{Name: qn, Address: rt.address, Routing: wire.RoutingType(rt.routing),
				Flags: wire.ClusterDurable, Deliveries: rt.deliveries + r.deliveries})
		}
		out = append(out, cm)
	}
	f.mu.Unlock()
	return out
}

// AckForward acks the messages TakeForward gave out for node (the peer
// holds them durably) in one synced append, and waits for it.
func (s *Server) AckForward(node string) error {
	if err := s.checkUsable(); err != nil {
		return err
	}
	f := s.fwd()
	f.mu.Lock()
	p := f.peers[node]
	if p == nil || len(p.inflight) == 0 {
		f.mu.Unlock()
		return nil
	}
	refs := p.inflight
	f.mu.Unlock()
	s.storeMu.Lock()
	ch, err := s.ackRefsLocked(refs)
	s.storeMu.Unlock()
	if err != nil {
		s.storageError(err)
		return fmt.Errorf("server: acking forwarded messages: %w", err)
	}
	// No ctx: once appended the acks land (or the journal halts), and
	// the references must not go back to the queue meanwhile.
	if err = <-ch; err != nil {
		return fmt.Errorf("server: acking forwarded messages: %w", s.halt(err))
	}
	f.mu.Lock()
	p.inflight = nil
	if routes := f.routes[p.fwd.id]; routes != nil {
		for _, r := range refs {
			delete(routes, r.msg.ID)
		}
	}
	f.mu.Unlock()
	for _, r := range refs {
		r.q.acked.Add(1)
		s.release(r)
	}
	p.forwarded.Add(uint64(len(refs)))
	s.ctr.acks.Add(uint64(len(refs)))
	return nil
}

// ReturnForward puts what TakeForward gave out for node back at the head
// of its forwarding queue (the peer's answer did not come: it may hold
// them, and the resend's duplicate IDs tell).
func (s *Server) ReturnForward(node string) {
	f := s.fwd()
	f.mu.Lock()
	p := f.peers[node]
	if p == nil || len(p.inflight) == 0 {
		f.mu.Unlock()
		return
	}
	refs := p.inflight
	p.inflight = nil
	q := p.fwd
	f.mu.Unlock()
	if err := s.putBack(q, refs); err != nil {
		s.log.Error("putting back messages a forward did not move", "peer", node, "err", err)
	}
}

// ForwardPending is how many messages wait in node's forwarding queue
// (in flight included).
func (s *Server) ForwardPending(node string) int {
	f := s.fwd()
	f.mu.Lock()
	p := f.peers[node]
	if p == nil || p.fwd == nil {
		f.mu.Unlock()
		return 0
	}
	q, n := p.fwd, len(p.inflight)
	f.mu.Unlock()
	q.mu.Lock()
	n += q.msgs.len()
	q.mu.Unlock()
	return n
}

// PeerStatus is one peer of the cluster connection in /status.
type PeerStatus struct {
	NodeID    string `json:"node_id"`
	Name      string `json:"name"`
	Connected bool   `json:"connected"`
	// Forwarded counts messages the peer confirmed since this broker
	// started; Pending those waiting in its forwarding queue.
	Forwarded uint64 `json:"forwarded"`
	Pending   int    `json:"pending"`
	// RemoteQueues and RemoteConsumers sum the peer's last bindings.
	RemoteQueues    int `json:"remote_queues"`
	RemoteConsumers int `json:"remote_consumers"`
}

// ClusterStatus is the cluster connection's load balancing in /status.
type ClusterStatus struct {
	LoadBalancing string       `json:"message_load_balancing"`
	Peers         []PeerStatus `json:"peers"`
}

// ClusterStatus returns the peers' bridges (nil: no peer joined).
func (s *Server) ClusterStatus() *ClusterStatus {
	f := s.fwd()
	f.mu.Lock()
	ps := make([]*peer, 0, len(f.peers))
	for _, p := range f.peers {
		ps = append(ps, p)
	}
	f.mu.Unlock()
	if len(ps) == 0 {
		return nil
	}
	slices.SortFunc(ps, func(a, b *peer) int { return strings.Compare(a.node, b.node) })
	cs := &ClusterStatus{LoadBalancing: LoadBalancing(f.mode.Load()).String()}
	for _, p := range ps {
		f.mu.Lock()
		st := PeerStatus{NodeID: p.node, Name: p.name, Connected: p.connected.Load(), Forwarded: p.forwarded.Load(),
			RemoteQueues: len(p.bindings)}
		for _, b := range p.bindings {
			st.RemoteConsumers += int(b.Consumers)
		}
		f.mu.Unlock()
		st.Pending = s.ForwardPending(p.node)
		cs.Peers = append(cs.Peers, st)
	}
	return cs
}

// Bindings returns this broker's queues as its peers see them (queues
// under ClusterPrefix and temporary queues left out), by name.
func (s *Server) Bindings() []wire.ClusterBinding {
	s.mu.RLock()
	qs := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		if !q.temporary && !strings.HasPrefix(q.name, ClusterPrefix) {
			qs = append(qs, q)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(qs, func(a, b *Queue) int { return strings.Compare(a.name, b.name) })
	out := make([]wire.ClusterBinding, 0, len(qs))
	for _, q := range qs {
		b := wire.ClusterBinding{Name: q.name, Address: q.addr.name, Routing: wire.RoutingType(q.routing)}
		if q.filter != nil {
			b.Filter = q.filter.Text()
		}
		q.mu.Lock()
		b.Consumers = uint32(len(q.consumers))
		q.mu.Unlock()
		out = append(out, b)
	}
	return out
}

// bindingsPollInterval is how often a bindings subscription looks for
// changes no hook reports (queues created or deleted).
const bindingsPollInterval = 250 * time.Millisecond

// serveBindings pushes this broker's bindings to a cluster connection
// (send) at once and after every change, until ctx ends. It runs on its
// own goroutine, owned by the connection (its ctx).
func (s *Server) serveBindings(ctx context.Context, send func(*wire.ClusterBindings)) {
	f := s.fwd()
	ch := make(chan struct{}, 1)
	pushedLeaving := new(atomic.Bool)
	f.subsMu.Lock()
	f.subs[ch] = pushedLeaving
	f.nsubs.Add(1)
	f.subsMu.Unlock()
	defer func() {
		f.subsMu.Lock()
		delete(f.subs, ch)
		f.nsubs.Add(-1)
		f.subsMu.Unlock()
	}()
	t := time.NewTicker(bindingsPollInterval)
	defer t.Stop()
	var last []wire.ClusterBinding
	var seq uint64
	for {
		b := s.Bindings()
		leaving := f.leaving.Load()
		if seq == 0 || !slices.Equal(b, last) || (leaving != nil && !pushedLeaving.Load()) {
			seq++
			cb := &wire.ClusterBindings{NodeID: s.nodeID, Epoch: s.epoch, Sequence: seq, Queues: b}
			if leaving != nil {
				cb.ScaledDownTo = *leaving
			}
			send(cb)
			last = b
			if leaving != nil {
				pushedLeaving.Store(true)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-t.C:
		}
	}
}

// Redistribute moves, for every queue without local consumers for its
// address's redistribution-delay, up to max messages to the forwarding
// queue of a connected peer whose queue of the same name and address has
// consumers (ON_DEMAND and OFF_WITH_REDISTRIBUTION only). It returns how
// many it moved. The broker calls it periodically.
func (s *Server) Redistribute(now time.Time, max int) (int, error) {
	f := s.fwd()
	mode := LoadBalancing(f.mode.Load())
	t := f.remote.Load()
	if !mode.redistributes() || t == nil || len(t.byName) == 0 || s.checkUsable() != nil || s.Frozen() {
		return 0, nil
	}
	s.mu.RLock()
	var qs []*Queue
	for _, q := range s.queues {
		if len(t.byName[q.name]) > 0 && !q.temporary && q.addr.policy.RedistributionDelay >= 0 {
			qs = append(qs, q)
		}
	}
	s.mu.RUnlock()
	moved := 0
	for _, q := range qs {
		q.mu.Lock()
		idle := len(q.consumers) == 0 && q.msgs.len() > 0 && !q.deleted && !q.deleting &&
			(q.idleSince.IsZero() || now.Sub(q.idleSince) >= q.addr.policy.RedistributionDelay)
		q.mu.Unlock()
		if !idle {
			continue
		}
		var target *remoteQueue
		for i, rq := range t.byName[q.name] {
			if rq.address == q.addr.name && rq.routing == q.routing && rq.consumers > 0 {
				target = &t.byName[q.name][i]
				break
			}
		}
		if target == nil {
			continue
		}
		n, err := s.redistributeSome(q, target, max-moved)
		moved += n
		if err != nil {
			return moved, err
		}
		if moved >= max {
			break
		}
	}
	return moved, nil
}

// redistributeSome moves up to n messages from the head of q to the
// forwarding queue of rq's peer, in one synced append (the forwarding
// queue's reference, the route, q's ack), as management's move does.
func (s *Server) redistributeSome(q *Queue, rq *remoteQueue, n int) (int, error) {
	dst := rq.fwd
	f := s.fwd()
	a := dst.addr
	a.mu.Lock() // as a send to dst
	dst.mu.Lock()
	gone := a.deleted || dst.deleted || dst.deleting
	dst.mu.Unlock()
	if gone {
		a.mu.Unlock()
		return 0, nil
	}
	f.mu.Lock()
	held := f.routes[dst.id]
	var moving, skipped []*ref
	q.mu.Lock()
	if len(q.consumers) > 0 || q.deleted || q.deleting {
		q.mu.Unlock()
		f.mu.Unlock()
		a.mu.Unlock()
		return 0, nil
	}
	for q.msgs.len() > 0 && len(moving) < n {
		r := q.msgs.popFront()
		_, inFwd := held[r.msg.ID]
		if inFwd || r.pt != nil || r.msg.large != nil || r.notBefore > 0 {
			skipped = append(skipped, r) // already on its way there; paged; large; delayed
			continue
		}
		moving = append(moving, r)
	}
	q.mu.Unlock()
	refs := make([]ref, len(moving))
	routes := make([]fwdRoute, len(moving))
	for i, r := range moving {
		refs[i] = ref{msg: r.msg, q: dst}
		routes[i] = fwdRoute{redist: true, routing: q.routing, deliveries: r.deliveries, address: q.addr.name, queues: []string{q.name}}
		f.setRouteLocked(dst.id, r.msg.ID, routes[i])
	}
	f.mu.Unlock()
	routed(qsOf(refs))
	s.storeMu.Lock()
	var entries []journal.Entry
	for i, r := range moving {
		if r.durable() {
			entries = append(entries,
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecAddRef, Data: dst.refData},
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecForwardRoute, Data: encodeRoute(dst.id, routes[i])},
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecAckRef, Data: q.refData})
		}
	}
	ch := make(chan error, 1)
	var err error
	if len(entries) > 0 {
		err = s.msgs.Append(entries, true, func(err error) { ch <- err })
	} else {
		ch <- nil
	}
	s.storeMu.Unlock()
	a.mu.Unlock()
	if err == nil {
		err = <-ch // no ctx: the references must land whatever happens
		if err != nil {
			err = s.halt(err)
		}
	} else {
		s.storageError(err)
	}
	if err != nil {
		unroute(refs)
		f.mu.Lock()
		for _, r := range moving {
			delete(f.routes[dst.id], r.msg.ID)
		}
		f.mu.Unlock()
		_ = s.putBack(q, append(moving, skipped...))
		return 0, fmt.Errorf("server: redistributing %q: %w", q.name, err)
	}
	q.acked.Add(uint64(len(moving)))
	for i := range refs {
		dst.push(&refs[i])
	}
	if err := s.putBack(q, skipped); err != nil {
		return len(moving), err
	}
	if len(moving) > 0 {
		s.log.Debug("messages redistributed", "queue", q.name, "peer", rq.peer.node, "moved", len(moving))
	}
	return len(moving), nil
}

// exportRoute returns the route of message id when q is a forwarding
// queue (a scale-down moves the message to the queues it was on its way
// to, on whichever broker is the target).
func (s *Server) exportRoute(q *Queue, id uint64) (fwdRoute, bool) {
	if !strings.HasPrefix(q.name, ForwardQueuePrefix) {
		return fwdRoute{}, false
	}
	f := s.fwd()
	f.mu.Lock()
	defer f.mu.Unlock()
	rt, ok := f.routes[q.id][id]
	return rt, ok
}

// takeProp removes property key from props (a moved message's, owned by
// the caller) and returns its value ("" when absent or not a string).
func takeProp(props []wire.Property, key string) (string, []wire.Property) {
	for i := range props {
		if props[i].Key == key {
			id := ""
			if props[i].Kind == wire.KindString {
				id = props[i].Str
			}
			return id, slices.Delete(props, i, i+1)
		}
	}
	return "", props
}

// AnnounceScaledDown tells the peers (their bindings connections) that
// this broker scaled down into node: they send what waits for this
// broker to node instead (ReclaimForward). It waits, until ctx ends, for
// every connection to have the push queued.
func (s *Server) AnnounceScaledDown(ctx context.Context, node string) {
	f := s.fwd()
	f.leaving.Store(&node)
	f.changed()
	for {
		done := true
		f.subsMu.Lock()
		for _, pushed := range f.subs {
			done = done && pushed.Load()
		}
		f.subsMu.Unlock()
		if done || !sleepCtx(ctx, 10*time.Millisecond) {
			return
		}
	}
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

// ReclaimForward sends what waits in the forwarding queue of peer, which
// scaled down into target, on to target: into this broker's own queues
// when target is this broker, else into target's forwarding queue. The
// messages keep their forward IDs, and the target holds the peer's
// duplicate-ID caches (the scale-down moved them), so a message the peer
// had stored (and moved on itself) is dropped there, not stored twice.
// The caller stopped the peer's bridge. It returns how many messages it
// moved (dropped ones included).
func (s *Server) ReclaimForward(ctx context.Context, peer, target string) (int, error) {
	f := s.fwd()
	f.mu.Lock()
	p, t := f.peers[peer], f.peers[target]
	if p != nil {
		p.bindings = nil // it serves no queue any more
	}
	f.mu.Unlock()
	s.publishRemote()
	if p == nil || p.fwd == nil {
		return 0, nil
	}
	if target == s.nodeID {
		_, epoch := s.ClusterMark(peer, wire.ForwardStream)
		moved := 0
		for ctx.Err() == nil {
			ms := s.TakeForward(peer, 500, 1<<20)
			if ms == nil {
				return moved, nil
			}
			if _, err := s.importMessages(ctx, clusterSource{node: peer, stream: wire.ForwardStream, epoch: epoch},
				&wire.ClusterMessages{Epoch: epoch, Messages: ms}); err != nil {
				s.ReturnForward(peer)
				return moved, fmt.Errorf("server: taking back messages for %s: %w", peer, err)
			}
			if err := s.AckForward(peer); err != nil {
				return moved, err
			}
			moved += len(ms)
		}
		return moved, ctx.Err()
	}
	if t == nil || t.fwd == nil {
		return 0, fmt.Errorf("server: %s scaled down into %s, which is not a peer of this broker: its messages wait in %s",
			peer, target, p.fwd.name)
	}
	return s.moveForwards(p, t)
}

// moveForwards moves everything in from's forwarding queue to to's, with
// the same routes, in one append.
func (s *Server) moveForwards(from, to *peer) (int, error) {
	f := s.fwd()
	src, dst := from.fwd, to.fwd
	a := dst.addr
	a.mu.Lock()
	f.mu.Lock()
	src.mu.Lock()
	var moving []*ref
	for src.msgs.len() > 0 {
		moving = append(moving, src.msgs.popFront())
	}
	src.mu.Unlock()
	refs := make([]ref, len(moving))
	rts := make([]fwdRoute, len(moving))
	for i, r := range moving {
		refs[i] = ref{msg: r.msg, q: dst}
		rts[i] = f.routes[src.id][r.msg.ID]
		f.setRouteLocked(dst.id, r.msg.ID, rts[i])
	}
	f.mu.Unlock()
	routed(qsOf(refs))
	s.storeMu.Lock()
	var entries []journal.Entry
	for i, r := range moving {
		if r.durable() {
			entries = append(entries,
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecAddRef, Data: dst.refData},
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecForwardRoute, Data: encodeRoute(dst.id, rts[i])},
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecAckRef, Data: src.refData})
		}
	}
	ch := make(chan error, 1)
	var err error
	if len(entries) > 0 {
		err = s.msgs.Append(entries, true, func(err error) { ch <- err })
	} else {
		ch <- nil
	}
	s.storeMu.Unlock()
	a.mu.Unlock()
	if err == nil {
		if err = <-ch; err != nil {
			err = s.halt(err)
		}
	} else {
		s.storageError(err)
	}
	if err != nil {
		unroute(refs)
		_ = s.putBack(src, moving)
		return 0, fmt.Errorf("server: moving %s to %s: %w", src.name, dst.name, err)
	}
	f.mu.Lock()
	for _, r := range moving {
		delete(f.routes[src.id], r.msg.ID)
	}
	f.mu.Unlock()
	src.acked.Add(uint64(len(moving)))
	for i := range refs {
		dst.push(&refs[i])
	}
	return len(moving), nil
}
