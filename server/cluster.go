package server

// The target side of cluster connections (issue 19): another live broker
// of the cluster moves messages here (scale-down). A Hello with
// wire.ClusterClientID and the cluster credentials (Options.ClusterUser)
// makes the connection a cluster connection; its ClusterMessages are
// stored as a client's sends would be, but into the queues the source
// names, with their delivery counts and duplicate IDs, and with the
// source's watermark in the same journal append: a resend of what is
// stored is dropped (see wire/cluster.go).
//
// Records (messages journal, part of the on-disk format):
//
//	RecClusterMark       Add: format u8 (1), source node ID str, stream
//	                     str, epoch u64, watermark u64 (strings uvarint-
//	                     prefixed, integers little-endian). One live per
//	                     source and stream: an update adds the new one and
//	                     deletes the old one in one append.
//	RecScaleDownPending  Add (scaledown.go): format u8 (1), target node
//	                     ID str, high u64.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// Record types of cluster state in the messages journal (values are part
// of the on-disk format).
const (
	// RecClusterMark is a source's watermark (Add).
	RecClusterMark uint8 = 6
	// RecScaleDownPending names the target of a scale-down in progress
	// and the highest message ID it may hold (Add).
	RecScaleDownPending uint8 = 7
)

const clusterRecordFormat = 1

// clusterMark is the highest source message ID stored from one source
// node and stream, and the largest epoch seen from it.
type clusterMark struct {
	recID     uint64
	epoch     uint64
	watermark uint64
}

type markKey struct{ node, stream string }

// clusterState is the server's cluster bookkeeping, guarded by mu, which
// also serialises imports (one batch at a time).
type clusterState struct {
	mu       sync.Mutex
	marks    map[markKey]*clusterMark
	pending  *pendingScaleDown // scaledown.go
	exported map[uint64][]*ref // scaledown.go: by message ID, not acked yet
	fwd      forwarding        // forward.go: load balancing and redistribution
}

func (c *clusterState) init() {
	c.marks = map[markKey]*clusterMark{}
	c.fwd.init()
}

func encodeClusterMark(node, stream string, epoch, w uint64) []byte {
	b := make([]byte, 0, 20+len(node)+len(stream))
	b = append(b, clusterRecordFormat)
	b = appendString(b, node)
	b = appendString(b, stream)
	b = binary.LittleEndian.AppendUint64(b, epoch)
	return binary.LittleEndian.AppendUint64(b, w)
}

func decodeClusterMark(b []byte) (node, stream string, epoch, w uint64, err error) {
	d := decoder{b: b}
	if f := d.byte(); f != clusterRecordFormat && d.err == nil {
		return "", "", 0, 0, fmt.Errorf("cluster mark record: unknown format %d", f)
	}
	node = d.string()
	stream = d.string()
	epoch = d.uint64()
	w = d.uint64()
	if d.err == nil && d.off != len(b) {
		return "", "", 0, 0, fmt.Errorf("cluster mark record: offset %d: trailing bytes", d.off)
	}
	if d.err != nil {
		return "", "", 0, 0, fmt.Errorf("cluster mark record: %w", d.err)
	}
	return node, stream, epoch, w, nil
}

// loadClusterMark restores a watermark at load; it returns the record
// IDs to delete (an older duplicate).
func (s *Server) loadClusterMark(rec *journal.Record) ([]journal.Entry, error) {
	node, stream, epoch, w, err := decodeClusterMark(rec.Data)
	if err != nil {
		return nil, err
	}
	k := markKey{node, stream}
	old := s.cluster.marks[k]
	if old == nil {
		s.cluster.marks[k] = &clusterMark{recID: rec.ID, epoch: epoch, watermark: w}
		return nil, nil
	}
	// Two live marks (never written so; kept safe): keep the higher.
	drop := rec.ID
	if w > old.watermark || (w == old.watermark && epoch > old.epoch) {
		drop = old.recID
		*old = clusterMark{recID: rec.ID, epoch: max(epoch, old.epoch), watermark: w}
	}
	return []journal.Entry{{Kind: journal.KindDelete, ID: drop}}, nil
}

// ClusterMark returns the watermark and epoch stored for a source node
// and stream (zero when none), for tests and /status.
func (s *Server) ClusterMark(node, stream string) (watermark, epoch uint64) {
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	if m := s.cluster.marks[markKey{node, stream}]; m != nil {
		return m.watermark, m.epoch
	}
	return 0, 0
}

// errStaleSource refuses a frame from a source whose epoch is older than
// one seen from the same node (a zombie of a restarted broker).
var errStaleSource = errors.New("server: cluster source epoch is older than one already seen from that node")

// clusterSource is what a cluster connection's ClusterJoin said.
type clusterSource struct {
	node, name, stream string
	epoch              uint64
	logged             bool // its first batch was logged
}

// importResult is what an import stored: messages (or duplicate IDs),
// and what it dropped as held already.
type importResult struct {
	watermark       uint64
	stored, dropped int
}

// importQueue returns the queue a moved message goes to, creating it (as
// management does: it is never auto-deleted) when missing.
func (s *Server) importQueue(ctx context.Context, cq *wire.ClusterQueue) (*Queue, error) {
	r := routingOf(cq.Routing, Anycast)
	s.mu.RLock()
	q := s.queues[cq.Name]
	s.mu.RUnlock()
	if q != nil {
		if q.routing != r || q.addr.name != cq.Address {
			return nil, fmt.Errorf("%w: moved messages name queue %q on %q (%s); here it is bound to %q (%s)",
				ErrQueueExists, cq.Name, cq.Address, r, q.addr.name, q.routing)
		}
		return q, nil
	}
	return s.createQueue(ctx, cq.Address, cq.Name, r, cq.Flags&wire.ClusterDurable != 0, false, false, nil)
}

// importAddress returns the named address with routing r, creating or
// extending it as management does.
func (s *Server) importAddress(ctx context.Context, name string, r Routing) (*address, error) {
	s.mu.Lock()
	a, _, err := s.ensureAddressLocked(ctx, name, r, false)
	s.mu.Unlock()
	return a, err
}

// importMessages stores a batch of moved messages in one synced append
// with the source's new watermark. Messages at or below the watermark, or
// whose duplicate ID this broker holds, are dropped (already here).
func (s *Server) importMessages(ctx context.Context, src clusterSource, f *wire.ClusterMessages) (importResult, error) {
	c := &s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	var res importResult
	if err := s.checkUsable(); err != nil {
		return res, err
	}
	// An import is an operation like a client's: a freeze of this
	// broker (its own scale-down) waits for it, so what it stores is in
	// the queues that freeze exports; later ones are refused.
	if !s.tryEnter() {
		return res, fmt.Errorf("%w: this broker is scaling down itself", ErrFrozen)
	}
	defer s.exit()
	k := markKey{src.node, src.stream}
	mk := c.marks[k]
	var w, epoch uint64
	if mk != nil {
		w, epoch = mk.watermark, mk.epoch
	}
	if f.Epoch < epoch {
		return res, fmt.Errorf("%w: epoch %d from %s, %d seen before", errStaleSource, f.Epoch, src.node, epoch)
	}
	type item struct {
		wm     *wire.ClusterMessage
		m      *Message
		qs     []*Queue
		da     *address // the duplicate ID's address; nil without one
		key    string   // the duplicate ID checked and kept ("": none)
		key2   string   // a second one (a forward's client duplicate ID)
		origin string   // the broker a client sent it to
	}
	var items []item
	// A forward stream (load balancing, redistribution: forward.go) is
	// not in ascending ID order across batches: each message carries a
	// duplicate ID instead, which this broker's cache checks; its mark
	// keeps only the epoch.
	forward := src.stream == wire.ForwardStream
	last := w
	maxID := w
	for i := range f.Messages {
		wm := &f.Messages[i]
		if i > 0 && wm.ID <= f.Messages[i-1].ID {
			return res, fmt.Errorf("%w: moved message IDs not ascending (%d after %d)", ErrInvalid, wm.ID, f.Messages[i-1].ID)
		}
		if !forward {
			maxID = max(maxID, wm.ID)
		}
		if wm.ID <= last && !forward {
			res.dropped++
			continue
		}
		if len(wm.Queues) == 0 {
			return res, fmt.Errorf("%w: moved message %d names no queue", ErrInvalid, wm.ID)
		}

		m := &Message{Address: wm.Message.Address, Routing: routingOf(wm.Message.Routing, Anycast), Durable: wm.Message.Durable,
			DuplicateID: wm.Message.DuplicateID, Timestamp: wm.Message.Timestamp, Expiration: wm.Message.Expiration,
			Body: bytes.Clone(wm.Message.Body)}
		if len(wm.Message.Properties) > 0 {
			m.Properties = slices.Clone(wm.Message.Properties)
			for i := range m.Properties {
				if b := m.Properties[i].Bytes; b != nil {
					m.Properties[i].Bytes = bytes.Clone(b)
				}
			}
		}
		// The duplicate ID this broker's cache checks: the message's own,
		// or on a forward stream the one it carries (forward.go).
		// Where a client sent it (forward.go): a message this broker
		// forwarded, given back (a scale-down, a reclaim), is not a
		// client's resend of its duplicate ID.
		origin := ""
		if origin, m.Properties = takeProp(m.Properties, wire.OriginProperty); origin == "" {
			origin = src.node
		}
		key, key2 := m.DuplicateID, ""
		if forward {
			// A load-balanced message: its forward ID, and the client's
			// duplicate ID too (a client's resend here); a redistributed
			// one: its redistribution ID only.
			var fid, rid string
			fid, m.Properties = takeProp(m.Properties, wire.ForwardIDProperty)
			rid, m.Properties = takeProp(m.Properties, wire.RedistIDProperty)
			switch {
			case fid != "":
				key = fid
				if m.DuplicateID != "" && origin != s.nodeID {
					key2 = m.DuplicateID
				}
			case rid != "":
				key = rid
			default:
				return res, fmt.Errorf("%w: forwarded message %d carries neither %s nor %s", ErrInvalid, wm.ID,
					wire.ForwardIDProperty, wire.RedistIDProperty)
			}
		} else if origin == s.nodeID {
			key = ""
		}
		if err := m.check(); err != nil {
			return res, fmt.Errorf("moved message %d: %w", wm.ID, err)
		}
		it := item{wm: wm, m: m, key: key, key2: key2, origin: origin}
		for j := range wm.Queues {
			q, err := s.importQueue(ctx, &wm.Queues[j])
			if err != nil {
				return res, err
			}
			it.qs = append(it.qs, q)
		}
		if key != "" && s.idCache > 0 {
			a, err := s.importAddress(ctx, wm.Message.Address, routingOf(wm.Message.Routing, Anycast))
			if err != nil {
				return res, err
			}
			it.da = a
		}
		items = append(items, it)
	}
	// Lock every address involved, in name order (as a commit does).
	var locked []*address
	for _, it := range items {
		for _, q := range it.qs {
			if !containsAddr(locked, q.addr) {
				locked = append(locked, q.addr)
			}
		}
		if it.da != nil && !containsAddr(locked, it.da) {
			locked = append(locked, it.da)
		}
	}
	sort.Slice(locked, func(i, j int) bool { return locked[i].name < locked[j].name })
	for _, a := range locked {
		a.mu.Lock()
	}
	unlock := func() {
		for _, a := range locked {
			a.mu.Unlock()
		}
	}
	for _, a := range locked {
		if a.deleted {
			unlock()
			return res, fmt.Errorf("%w: address %q was deleted while moving messages to it", ErrNoSuchQueue, a.name)
		}
	}
	for _, it := range items {
		for _, q := range it.qs {
			q.mu.Lock()
			gone := q.deleted || q.deleting
			q.mu.Unlock()
			if gone {
				unlock()
				return res, fmt.Errorf("%w: queue %q was deleted while moving messages to it", ErrNoSuchQueue, q.name)
			}
		}
	}
	type dupDone struct {
		a    *address
		e    *dupEntry
		undo dupUndo
	}
	var (
		entries []journal.Entry
		dups    []dupDone
		refs    []ref
		stored  []item // charged against memory once stored
	)
	for _, it := range items {
		m := it.m
		if it.da != nil && (it.da.dup.lookup(it.key) != nil || (it.key2 != "" && it.da.dup.lookup(it.key2) != nil)) {
			res.dropped++ // sent here too (a client's resend, a forward's): one copy
			s.ctr.dups.Add(1)
			continue
		}
		m.ID = s.nextID()
		routed(it.qs)
		var de *dupEntry
		var undo dupUndo
		entries = s.msgEntriesLocked(m, it.qs, entries)
		entries, _ = s.setOrigin(m, it.origin, entries)
		if it.da != nil {
			own := m.DuplicateID
			m.DuplicateID = it.key
			entries, de, undo = s.dupEntriesLocked(it.da, m, entries)
			if it.key2 != "" {
				if de != nil {
					dups = append(dups, dupDone{it.da, de, undo})
				}
				m.DuplicateID = it.key2
				entries, de, undo = s.dupEntriesLocked(it.da, m, entries)
			}
			m.DuplicateID = own
		}
		if de != nil {
			dups = append(dups, dupDone{it.da, de, undo})
		}
		for j, q := range it.qs {
			n := it.wm.Queues[j].Deliveries
			if n > 0 && m.Durable && q.durable {
				entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: m.ID, Type: RecDeliveryCount,
					Data: encodeDeliveryCount(q.id, n)})
			}
			refs = append(refs, ref{msg: m, q: q, deliveries: n})
		}
		stored = append(stored, it)
		res.stored++
	}
	newMark := clusterMark{epoch: max(epoch, f.Epoch), watermark: maxID}
	if mk == nil || newMark.watermark != w || newMark.epoch != epoch {
		newMark.recID = s.nextID()
		entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: newMark.recID, Type: RecClusterMark,
			Data: encodeClusterMark(src.node, src.stream, newMark.epoch, newMark.watermark)})
		if mk != nil {
			entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: mk.recID})
		}
	} else {
		newMark.recID = mk.recID
	}
	ch := make(chan error, 1)
	var err error
	if len(entries) > 0 {
		err = s.msgs.Append(entries, true, func(err error) {
			if err != nil {
				err = s.halt(err)
			}
			for _, d := range dups {
				d.a.dup.complete(d.e, err)
			}
			ch <- err
		})
	} else {
		ch <- nil
	}
	if err != nil {
		for i := len(dups) - 1; i >= 0; i-- {
			dups[i].a.dup.undo(dups[i].undo)
		}
	}
	unlock()
	if err != nil {
		unroute(refs)
		s.storageError(err)
		for _, d := range dups {
			d.a.dup.complete(d.e, err)
		}
		return res, fmt.Errorf("server: storing moved messages: %w", err)
	}
	if err := <-ch; err != nil { // no ctx: the references must land whatever happens
		unroute(refs)
		return res, fmt.Errorf("server: storing moved messages: %w", err)
	}
	mcopy := newMark
	c.marks[k] = &mcopy
	s.ctr.in.Add(uint64(res.stored))
	// Moved messages go to memory like sent ones (counted against
	// max-size-bytes and global-max-size; an address that is full pages
	// the sends that follow, not these).
	for _, it := range stored {
		s.charge(it.qs[0].addr, it.m, len(it.qs))
	}
	enqueueRefs(refs, func(error) {})
	res.watermark = newMark.watermark
	if err := s.confirmed(nil); err != nil {
		return res, err
	}
	return res, nil
}

// importDupIDs adds a source's duplicate-ID caches to this broker's
// (after its messages: an ID a moved message carries is in the cache
// already). IDs held already are skipped.
func (s *Server) importDupIDs(ctx context.Context, f *wire.ClusterDupIDs) (importResult, error) {
	c := &s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	var res importResult
	if err := s.checkUsable(); err != nil {
		return res, err
	}
	if !s.tryEnter() {
		return res, fmt.Errorf("%w: this broker is scaling down itself", ErrFrozen)
	}
	defer s.exit()
	if s.idCache <= 0 {
		for _, ca := range f.Addresses {
			res.dropped += len(ca.IDs)
		}
		return res, nil
	}
	for i := range f.Addresses {
		ca := &f.Addresses[i]
		var a *address
		var err error
		for _, r := range []struct {
			flag uint8
			r    Routing
		}{{wire.ClusterAnycast, Anycast}, {wire.ClusterMulticast, Multicast}} {
			if ca.Flags&r.flag != 0 {
				if a, err = s.importAddress(ctx, ca.Name, r.r); err != nil {
					return res, err
				}
			}
		}
		if a == nil {
			if a, err = s.importAddress(ctx, ca.Name, Anycast); err != nil {
				return res, err
			}
		}
		a.mu.Lock()
		if a.deleted {
			a.mu.Unlock()
			return res, fmt.Errorf("%w: address %q was deleted while moving its duplicate IDs", ErrNoSuchQueue, a.name)
		}
		var entries []journal.Entry
		var undos []dupUndo
		for _, id := range ca.IDs {
			if id == "" || a.dup.lookup(id) != nil {
				res.dropped++
				continue
			}
			e := &dupEntry{}
			if !s.opts.NoPersistIDCache {
				e.recID = s.nextID()
				entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: e.recID, Type: RecDuplicateID, Data: encodeDuplicateID(a.name, id)})
			}
			ev, u := a.dup.add(id, e)
			undos = append(undos, u)
			if ev != 0 {
				entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: ev})
			}
			res.stored++
		}
		ch := make(chan error, 1)
		if len(entries) > 0 {
			err = s.msgs.Append(entries, true, func(err error) { ch <- err })
		} else {
			ch <- nil
		}
		if err != nil {
			for j := len(undos) - 1; j >= 0; j-- {
				a.dup.undo(undos[j])
			}
		}
		a.mu.Unlock()
		if err != nil {
			s.storageError(err)
			return res, fmt.Errorf("server: storing moved duplicate IDs: %w", err)
		}
		if err := <-ch; err != nil {
			return res, fmt.Errorf("server: storing moved duplicate IDs: %w", s.halt(err))
		}
	}
	return res, s.confirmed(nil)
}

// BackupHost answers a colocated backup request (broker/colocated.go);
// the request's Config is the handler's own copy.
type BackupHost func(ctx context.Context, req *wire.BackupRequest) *wire.BackupAnswer

// SetBackupHost installs h (nil: backup requests are refused with
// CodeUnavailable).
func (s *Server) SetBackupHost(h BackupHost) {
	if h == nil {
		s.backupHost.Store(nil)
		return
	}
	s.backupHost.Store(&h)
}

// handleCluster runs one cluster frame on a cluster connection (the
// reader's goroutine: a batch is stored before the next frame is read).
func (c *conn) handleCluster(corr uint64, fr wire.Frame) error {
	if !c.clusterConn {
		return c.protocolError(fmt.Errorf("%v frame on a client connection (not a cluster connection)", fr.Type()))
	}
	switch f := fr.(type) {
	case *wire.ClusterJoin:
		if f.NodeID == "" {
			c.out.frame(corr, &wire.ClusterJoined{Code: wire.CodeInvalid, Message: "ClusterJoin without a node ID"})
			return nil
		}
		if f.NodeID == c.s.nodeID {
			c.out.frame(corr, &wire.ClusterJoined{Code: wire.CodeInvalid, Message: "a broker cannot move messages to itself"})
			return nil
		}
		if c.clusterSrc != nil && c.clusterSrc.stream == wire.BindingsStream {
			return c.protocolError(errors.New("ClusterJoin again on a bindings connection"))
		}
		c.clusterSrc = &clusterSource{node: f.NodeID, name: f.Name, stream: f.Stream, epoch: f.Epoch}
		w, e := c.s.ClusterMark(f.NodeID, f.Stream)
		j := &wire.ClusterJoined{Code: wire.CodeOK, NodeID: c.s.nodeID, Name: c.s.opts.Name, Group: c.s.opts.ClusterGroup,
			Epoch: c.s.epoch, Watermark: w}
		switch {
		case f.Epoch < e:
			j.Code, j.Message = wire.CodeUnavailable, fmt.Sprintf("epoch %d of %s is older than %d seen before", f.Epoch, f.NodeID, e)
		case c.s.Frozen():
			j.Code, j.Message = wire.CodeUnavailable, "this broker is scaling down itself"
		case c.s.checkUsable() != nil:
			j.Code, j.Message = wire.CodeUnavailable, c.s.checkUsable().Error()
		}
		c.log.Debug("cluster connection joined", "source_node", f.NodeID, "source_name", clip(f.Name), "stream", clip(f.Stream),
			"source_epoch", f.Epoch, "watermark", w)
		c.out.frame(corr, j)
		if f.Stream == wire.BindingsStream && j.Code == wire.CodeOK && !c.clusterSrc.logged {
			// Pushed for as long as the connection lasts (its ctx).
			c.clusterSrc.logged = true
			go c.s.serveBindings(c.ctx, func(b *wire.ClusterBindings) { c.out.frame(0, b) })
		}
	case *wire.ClusterMessages:
		if c.clusterSrc == nil {
			return c.protocolError(errors.New("ClusterMessages before ClusterJoin"))
		}
		if !c.clusterSrc.logged {
			c.clusterSrc.logged = true
			c.log.Info("a broker moves messages here", "source_node", c.clusterSrc.node, "source_name", clip(c.clusterSrc.name),
				"stream", clip(c.clusterSrc.stream), "source_epoch", c.clusterSrc.epoch)
		}
		res, err := c.s.importMessages(c.ctx, *c.clusterSrc, f)
		c.out.frame(corr, clusterAck(res, err))
	case *wire.BackupRequest:
		hp := c.s.backupHost.Load()
		if hp == nil {
			c.out.frame(corr, &wire.BackupAnswer{Code: wire.CodeUnavailable, Message: "this broker does not host colocated backups now"})
			return nil
		}
		req := *f
		req.Config = bytes.Clone(f.Config)
		c.log.Info("colocated backup requested", "requester_node", clip(f.NodeID), "requester_name", clip(f.Name), "store", clip(f.Store))
		c.out.frame(corr, (*hp)(c.ctx, &req))
	case *wire.ClusterDupIDs:
		if c.clusterSrc == nil {
			return c.protocolError(errors.New("ClusterDupIDs before ClusterJoin"))
		}
		res, err := c.s.importDupIDs(c.ctx, f)
		c.out.frame(corr, clusterAck(res, err))
	}
	return nil
}

func clusterAck(res importResult, err error) *wire.ClusterAck {
	a := &wire.ClusterAck{Code: codeOf(err), Message: errText(err), Watermark: res.watermark,
		Stored: uint32(res.stored), Dropped: uint32(res.dropped)}
	if errors.Is(err, errStaleSource) {
		a.Code = wire.CodeUnavailable
	}
	if err != nil {
		a.Stored, a.Dropped = 0, 0
	}
	return a
}
