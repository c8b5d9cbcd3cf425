package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/selector"
)

// Version is the broker's version as /status reports it.
const Version = "0.1.0"

// DefaultIDCacheSize is Artemis's id-cache-size default.
const DefaultIDCacheSize = 20000

// ErrHalted is returned once a journal has failed: the broker confirms
// nothing more.
var ErrHalted = errors.New("server: halted on a storage error")

// ErrNotActive replaces a confirmation while the HA activation does not
// allow acknowledging (Options.CanAck returned false): the outcome is
// unknown to the client, which fails over and resends.
var ErrNotActive = errors.New("server: not active (HA lease not held): outcome unknown")

// ErrNoSuchQueue is returned when a queue does not exist and may not be
// auto-created.
var ErrNoSuchQueue = errors.New("server: no such queue")

// ErrLimit is returned when creating a queue or an address would exceed
// Options.MaxQueues or Options.MaxAddresses.
var ErrLimit = errors.New("server: limit reached")

// Options configure a Server.
type Options struct {
	// Name is the broker's name (config <name>).
	Name string
	// NodeID, when set, is used instead of the one stored in the bindings
	// journal (shared-store HA takes it from the lock file).
	NodeID string
	// Messages and Bindings are the two journals; the caller owns them
	// (opens them before Start and closes them after Close).
	Messages, Bindings journal.Journal
	// Store names the store kind for /status: "file", "jdbc" or "memory".
	Store string
	// IDCacheSize is the per-address duplicate ID cache size; 0 means
	// DefaultIDCacheSize and a negative value disables the cache.
	IDCacheSize int
	// NoPersistIDCache keeps duplicate IDs in memory only.
	NoPersistIDCache bool
	// NoAutoCreate refuses sends and consumers on unknown queues, whatever
	// AddressSettings say.
	NoAutoCreate bool
	// AddressSettings decide per address whether a client's send or
	// consumer may create a missing queue or address, and when
	// auto-created ones are deleted (config <address-settings>); nil means
	// Artemis's defaults for every address.
	AddressSettings config.AddressSettings
	// MaxQueues caps the number of queues of every kind (config
	// <max-queues>): 0 means config.DefaultMaxQueues, -1 no limit.
	MaxQueues int
	// MaxAddresses caps the number of addresses (config <max-addresses>):
	// 0 means MaxQueues, -1 no limit.
	MaxAddresses int
	// AddressQueueScanPeriod is how often queues and addresses waiting to
	// be auto-deleted are checked (config <address-queue-scan-period>): 0
	// means config.DefaultAddressQueueScanPeriod; negative never.
	AddressQueueScanPeriod time.Duration
	// MessageExpiryScanPeriod is how often queues are scanned for expired
	// messages (config <message-expiry-scan-period>): 0 means
	// config.DefaultMessageExpiryScanPeriod; negative never (a message
	// still expires when dispatch meets it).
	MessageExpiryScanPeriod time.Duration
	// Addresses are created at Start when missing, with their queues
	// (config <addresses>).
	Addresses []config.AddressDef
	// Pages is the paging journal (a journal.FileJournal opened in log
	// mode), loaded by Start and closed by the caller; nil: no paging (an
	// address-full-policy PAGE then holds sends as BLOCK does).
	Pages PageLog
	// Large is the large-messages journal (a journal.FileJournal opened in
	// log mode), loaded by Start and closed by the caller; nil: large
	// messages are refused.
	Large LargeLog
	// GlobalMaxSize bounds the memory all addresses' messages take
	// together (config <global-max-size>, resolved by the caller); 0 or
	// less: no global bound.
	GlobalMaxSize int64
	// Policy, Role and Epoch are reported by /status and in topology.
	Policy, Role string
	Epoch        uint64
	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger
	// NoSyncNonTransactional and NoSyncTransactional are Artemis's
	// journal-sync-non-transactional=false and journal-sync-transactional
	// =false: sends and acks (or commits) are confirmed once written, not
	// once fdatasynced. Unsafe: a power loss can lose confirmed work.
	NoSyncNonTransactional, NoSyncTransactional bool
	// CanAck, when set, is asked before every confirmation (stored send,
	// durable ack, commit, queue created or deleted): false turns the
	// confirmation into ErrNotActive. HA sets it to the activation's lease check, so a live
	// that lost its lease acknowledges nothing.
	CanAck func() bool
	// ClusterUser and ClusterPassword authenticate cluster connections
	// (other brokers moving messages here, cluster.go); "" refuses them.
	// ClusterGroup is the group name this broker announces to them.
	ClusterUser, ClusterPassword, ClusterGroup string
}

// Server is the broker core. Create it with New, then Start it.
type Server struct {
	replica atomic.Pointer[ReplicaHandler] // replica.go
	quorum  atomic.Pointer[ReplicaHandler] // replica.go: quorum vote connections
	opts    Options
	log     *slog.Logger
	msgs    journal.Journal
	binds   journal.Journal
	nodeID  string
	idCache int

	lastID atomic.Uint64
	epoch  uint64 // Options.Epoch, or the largest epoch the store holds

	mu        sync.RWMutex
	addresses map[string]*address
	queues    map[string]*Queue
	queueByID map[uint64]*Queue
	started   bool
	closed    bool

	// storeMu serialises the decision "is this the last reference" with
	// its Append, so an ack's update never follows the message's delete.
	storeMu sync.Mutex
	// ackEntries is the acks' journal entry buffer, reused under storeMu.
	ackEntries []journal.Entry

	halted atomic.Bool
	ctr    counters
	// inflight counts client requests awaiting a durable answer (conn).
	inflight atomic.Int64
	haltErr  atomic.Pointer[error]

	// reapMu guards reapQueues and reapAddrs: the auto-created queues and
	// addresses that are idle but could not be deleted yet (a delay, or
	// messages left), checked every AddressQueueScanPeriod.
	reapMu     sync.Mutex
	reapQueues map[*Queue]struct{}
	reapAddrs  map[*address]struct{}
	stopReap   chan struct{} // closed by Close
	reapDone   chan struct{} // closed when reaper returns

	protoMu   sync.Mutex
	protocols []ProtocolHandler // protocol.go

	accMu sync.Mutex
	accs  []*Acceptor // manage.go: for Connections and Users

	topoMu   sync.Mutex
	topology Topology
	topoSubs map[int]func(Topology)
	topoNext int

	stopWatch chan struct{} // closed by Close
	watchDone chan struct{} // closed when watchStore returns

	// Paging (paging.go): the paging journal (nil: none; PAGE then
	// blocks), the memory of messages held and its limit.
	pages      PageLog
	mem        atomic.Int64
	globalMax  int64
	pager      *pager
	pgAppendMu sync.Mutex
	pgInflight pageInflight
	pgTxMu     sync.Mutex
	pgTx       map[uint64]*pageTx
	// pageBoot is the paging journal's durable end at load: what is before
	// it was written by earlier runs. pageFloor is the floor last set.
	pageBoot  journal.Position
	pageFloor uint64
	// large is the large-messages journal (nil: none; large messages are
	// refused) and lg what holds its segments (large.go).
	large LargeLog
	lg    largeState
	// blocked counts addresses holding parked sends (blockedAddrs).
	blocked      atomic.Int64
	blockedMu    sync.Mutex
	blockedAddrs map[*address]struct{}

	stopExpiry chan struct{} // closed by Close
	expiryDone chan struct{} // closed when expiryScanner returns
	// bg counts the goroutines moving expired messages; bgMu and
	// bgStopped keep one from starting once Close waits for them.
	bgMu      sync.Mutex
	bgStopped bool
	bg        sync.WaitGroup

	gate       gate                       // freeze.go
	cluster    clusterState               // cluster.go
	backupHost atomic.Pointer[BackupHost] // cluster.go
	prepared   int                        // prepared transactions found at load
}

// watchStore halts the broker as soon as either journal fails, so nothing
// (not even a non-persistent send) is confirmed afterwards.
func (s *Server) watchStore() {
	defer close(s.watchDone)
	var pages, large <-chan struct{} // nil: never
	if s.pages != nil {
		pages = s.pages.Failed()
	}
	if s.large != nil {
		large = s.large.Failed()
	}
	select {
	case <-large:
		s.halt(fmt.Errorf("large-messages journal: %w", s.large.Err()))
	case <-s.msgs.Failed():
		s.halt(fmt.Errorf("messages journal: %w", s.msgs.Err()))
	case <-s.binds.Failed():
		s.halt(fmt.Errorf("bindings journal: %w", s.binds.Err()))
	case <-pages:
		s.halt(fmt.Errorf("paging journal: %w", s.pages.Err()))
	case <-s.stopWatch:
	}
}

// New returns a server over the given journals. It does not load them:
// Start does.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Role == "" {
		opts.Role = "primary"
	}
	if opts.Policy == "" {
		opts.Policy = "none"
	}
	if opts.Store == "" {
		opts.Store = "memory"
	}
	size := opts.IDCacheSize
	if size == 0 {
		size = DefaultIDCacheSize
	}
	if opts.MaxQueues == 0 {
		opts.MaxQueues = config.DefaultMaxQueues
	}
	if opts.MaxAddresses == 0 {
		opts.MaxAddresses = opts.MaxQueues
	}
	if opts.AddressQueueScanPeriod == 0 {
		opts.AddressQueueScanPeriod = config.DefaultAddressQueueScanPeriod
	}
	if opts.MessageExpiryScanPeriod == 0 {
		opts.MessageExpiryScanPeriod = config.DefaultMessageExpiryScanPeriod
	}
	s := &Server{
		opts: opts, log: opts.Logger, msgs: opts.Messages, binds: opts.Bindings,
		pages: opts.Pages, globalMax: opts.GlobalMaxSize, pgTx: map[uint64]*pageTx{}, large: opts.Large,
		lg:           largeState{holders: map[uint64]*largeHold{}, uploads: map[uint64]uint64{}},
		blockedAddrs: map[*address]struct{}{},
		idCache:      size,
		addresses:    make(map[string]*address), queues: make(map[string]*Queue),
		queueByID: make(map[uint64]*Queue), topoSubs: make(map[int]func(Topology)),
		reapQueues: make(map[*Queue]struct{}), reapAddrs: make(map[*address]struct{}),
	}
	s.pager = newPager(s)
	s.gate.init()
	s.cluster.init()
	return s
}

// nextID returns a new record ID, unique in both journals.
func (s *Server) nextID() uint64 { return s.lastID.Add(1) }

// Epoch returns the activation epoch: Options.Epoch, or when that is 0 the
// largest epoch found in the store (valid after Start).
func (s *Server) Epoch() uint64 { return s.epoch }

// NodeID returns the broker's node ID (valid after Start).
func (s *Server) NodeID() string { return s.nodeID }

// Options returns the options the server was created with.
func (s *Server) Options() Options { return s.opts }

// Start loads both journals, restores queues, messages, delivery counts and
// duplicate ID caches, and starts delivering.
func (s *Server) Start(ctx context.Context) error {
	if s.msgs == nil || s.binds == nil {
		return errors.New("server: Messages and Bindings journals are required")
	}
	if err := s.load(ctx); err != nil {
		return err
	}
	if err := s.predefine(asBroker(ctx)); err != nil { // the broker's own: no permission check
		return err
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	s.pager.start()
	s.pager.kick() // the first floor
	s.stopWatch = make(chan struct{})
	s.watchDone = make(chan struct{})
	go s.watchStore()
	if p := s.opts.AddressQueueScanPeriod; p > 0 {
		s.stopReap = make(chan struct{})
		s.reapDone = make(chan struct{})
		go s.reaper(p)
	}
	if p := s.opts.MessageExpiryScanPeriod; p > 0 {
		s.stopExpiry = make(chan struct{})
		s.expiryDone = make(chan struct{})
		go s.expiryScanner(p)
	}
	s.log = s.log.With("node_id", s.nodeID, "role", s.opts.Role)
	s.log.Info("broker started", "queues", len(s.queues), "epoch", s.epoch)
	return nil
}

// Halted is non-nil once the broker stopped confirming because a journal
// failed.
func (s *Server) Halted() error {
	if p := s.haltErr.Load(); p != nil {
		return *p
	}
	return nil
}

// halt stops confirming anything: called when a journal reports an error.
// It returns err wrapped in ErrHalted, which an operation whose append
// failed reports (CodeUnavailable: an unknown outcome to the client, which
// resends a send with its duplicate ID): a write whose sync failed may
// still have reached storage, where a backup taking over reads it.
func (s *Server) halt(err error) error {
	if s.halted.CompareAndSwap(false, true) {
		e := fmt.Errorf("%w: %w", ErrHalted, err)
		s.haltErr.Store(&e)
		s.log.Error("storage error: broker halted, nothing more is acknowledged", "err", err)
	}
	return fmt.Errorf("%w: %w", ErrHalted, err)
}

// guard wraps a confirmation callback with the CanAck check.
func (s *Server) guard(done func(error)) func(error) {
	can := s.opts.CanAck
	if can == nil {
		return done
	}
	return func(err error) {
		if err == nil && !can() {
			err = ErrNotActive
		}
		done(err)
	}
}

// confirmed is the CanAck check for an answer given without a callback
// (queue management): success becomes ErrNotActive while the HA
// activation does not allow acknowledging.
func (s *Server) confirmed(err error) error {
	if err == nil && s.opts.CanAck != nil && !s.opts.CanAck() {
		return ErrNotActive
	}
	return err
}

// checkUsable returns an error when the server cannot take work.
func (s *Server) checkUsable() error {
	if s.halted.Load() {
		return s.Halted()
	}
	return nil
}

// Close stops every queue's delivery. It does not close the journals.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.Frozen() {
		s.Release(ErrClosed) // what Freeze parked fails now
	}
	if s.stopWatch != nil {
		close(s.stopWatch)
		defer func() { <-s.watchDone }()
	}
	if s.stopReap != nil {
		close(s.stopReap)
		defer func() { <-s.reapDone }()
	}
	if s.stopExpiry != nil {
		close(s.stopExpiry)
		defer func() { <-s.expiryDone }()
	}
	s.mu.Unlock()
	s.pager.close()
	s.failParked(ErrClosed)
	s.mu.Lock()
	qs := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.Unlock()
	for _, q := range qs {
		q.shutdown()
	}
	s.bgMu.Lock()
	s.bgStopped = true
	s.bgMu.Unlock()
	s.bg.Wait()
	return nil
}

// Queues describes every queue, sorted by address and name.
func (s *Server) Queues() []QueueInfo {
	qs, _ := s.ListQueues(QueueQuery{All: true})
	return qs
}

// ListQueues describes the queues q selects, sorted by address and name,
// and returns how many match (before Offset and Limit). It sorts only the
// first Offset+Limit (a bounded heap), so a page costs little more than a
// pass over the queue names.
func (s *Server) ListQueues(q QueueQuery) (page []QueueInfo, total int) {
	s.mu.RLock()
	qs := make([]*Queue, 0, len(s.queues))
	for name, x := range s.queues {
		if strings.HasPrefix(name, q.Prefix) {
			qs = append(qs, x)
		}
	}
	s.mu.RUnlock()
	total = len(qs)
	limit := q.Limit
	if limit == 0 {
		limit = DefaultStatusQueues
	}
	if q.All {
		limit = total
	}
	if q.Offset >= total || limit < 0 {
		return []QueueInfo{}, total
	}
	qs = smallestQueues(qs, q.Offset+min(limit, total-q.Offset))[q.Offset:]
	page = make([]QueueInfo, len(qs))
	for i, x := range qs {
		page[i] = x.Info()
	}
	return page, total
}

// compareQueues orders queues by address, then name.
func compareQueues(a, b *Queue) int {
	if c := strings.Compare(a.addr.name, b.addr.name); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// smallestQueues returns the k first of qs in compareQueues order, sorted
// (reordering qs).
func smallestQueues(qs []*Queue, k int) []*Queue {
	if k >= len(qs)/2 {
		slices.SortFunc(qs, compareQueues)
		return qs[:k]
	}
	// A max-heap of the k smallest so far in qs[:k]; each later queue
	// smaller than its top replaces it.
	h := qs[:k]
	down := func(i int) {
		for {
			l, big := 2*i+1, i
			if l < k && compareQueues(h[l], h[big]) > 0 {
				big = l
			}
			if r := l + 1; r < k && compareQueues(h[r], h[big]) > 0 {
				big = r
			}
			if big == i {
				return
			}
			h[i], h[big] = h[big], h[i]
			i = big
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, x := range qs[k:] {
		if k > 0 && compareQueues(x, h[0]) < 0 {
			h[0] = x
			down(0)
		}
	}
	slices.SortFunc(h, compareQueues)
	return h
}

// Queue returns the named queue's description.
func (s *Server) Queue(name string) (QueueInfo, bool) {
	s.mu.RLock()
	q := s.queues[name]
	s.mu.RUnlock()
	if q == nil {
		return QueueInfo{}, false
	}
	return q.Info(), true
}

// lookupAddress returns an address or nil.
func (s *Server) lookupAddress(name string) *address {
	s.mu.RLock()
	a := s.addresses[name]
	s.mu.RUnlock()
	return a
}

// addressFor returns the address to send to with routing r, creating the
// address (and, for anycast, its queue of the same name) when auto-create
// allows. ctx bounds the wait for the bindings journal. The caller locks
// it and checks routableLocked: an auto-delete may come in between.
func (s *Server) addressFor(ctx context.Context, name string, r Routing) (*address, error) {
	if a := s.lookupAddress(name); a != nil && a.hasRouting(r) && (r == Multicast || a.hasAnycastQueue()) {
		return a, nil
	}
	if r == Anycast {
		q, err := s.ensureQueue(ctx, name, name, Anycast, true, false)
		if err != nil {
			return nil, err
		}
		return q.addr, nil
	}
	return s.ensureAddress(ctx, name, Multicast)
}

// maxRouteAttempts bounds how often a send or consumer looks an address or
// queue up again after an auto-delete removed it under its feet.
const maxRouteAttempts = 10

// lockedAddressFor is addressFor returning the address locked and
// routable with r, looking it up again when an auto-delete removed it or
// its queue meanwhile.
func (s *Server) lockedAddressFor(ctx context.Context, name string, r Routing) (*address, error) {
	for attempt := 1; ; attempt++ {
		a, err := s.addressFor(ctx, name, r)
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		if a.routableLocked(r) {
			return a, nil
		}
		a.mu.Unlock()
		if attempt == maxRouteAttempts {
			return nil, fmt.Errorf("%w: %q was deleted %d times while sending to it", ErrNoSuchQueue, name, attempt)
		}
	}
}

func (a *address) hasAnycastQueue() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hasAnycastQueueLocked()
}

// ensureAddress returns the address, creating or extending it with
// routing r for a client (auto-create). Caller must not hold s.mu.
func (s *Server) ensureAddress(ctx context.Context, name string, r Routing) (*address, error) {
	s.mu.Lock()
	a, created, err := s.ensureAddressLocked(ctx, name, r, true)
	s.mu.Unlock()
	if created {
		s.addressIdle(a, false) // a send to an address without queues
	}
	return a, err
}

// ensureAddressLocked returns the address, creating or extending it with
// routing r: for a client (auto) as its address settings allow, for
// management always; both within MaxAddresses. created reports a new
// address. Caller holds s.mu.
func (s *Server) ensureAddressLocked(ctx context.Context, name string, r Routing, auto bool) (a *address, created bool, err error) {
	if s.closed {
		return nil, false, ErrClosed
	}
	a = s.addresses[name]
	if a != nil && a.hasRouting(r) {
		return a, false, nil
	}
	if s.opts.NoAutoCreate && auto {
		return nil, false, fmt.Errorf("%w: address %q with %s routing (auto-create is off)", ErrNoSuchQueue, name, r)
	}
	if err := authorize(ctx, auth.CreateAddress, name); err != nil {
		return nil, false, err
	}
	var pol config.AddressPolicy
	if auto || a == nil {
		pol = s.opts.AddressSettings.For(name)
	}
	if auto && !pol.AutoCreateAddresses {
		if a == nil {
			return nil, false, fmt.Errorf("%w: address %q does not exist (auto-create-addresses is false for it)", ErrNoSuchQueue, name)
		}
		return nil, false, fmt.Errorf("%w: address %q has no %s routing (auto-create-addresses is false for it)", ErrNoSuchQueue, name, r)
	}
	if a == nil && s.opts.MaxAddresses > 0 && len(s.addresses) >= s.opts.MaxAddresses {
		return nil, false, fmt.Errorf("%w: %d addresses (max-addresses); address %q not created", ErrLimit, len(s.addresses), name)
	}
	rec := addressRecord{Name: name, Anycast: r == Anycast, Multicast: r == Multicast, AutoCreated: auto}
	if a != nil {
		rec.Anycast = rec.Anycast || a.anycast
		rec.Multicast = rec.Multicast || a.multicast
		rec.AutoCreated = a.autoCreated
	}
	// Address records are rewritten whole: a new add replaces the old.
	id := s.nextID()
	entries := []journal.Entry{{Kind: journal.KindAdd, ID: id, Type: RecAddress, Data: encodeAddress(rec)}}
	if a != nil && a.recID != 0 {
		entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: a.recID})
	}
	if err := journal.AppendSync(ctx, s.binds, entries...); err != nil {
		s.storageError(err)
		return nil, false, fmt.Errorf("server: persist address %q: %w", name, err)
	}
	if a == nil {
		a = s.newAddressLocked(name, auto, pol)
		a.emptySince = time.Now()
		created = true
	}
	a.recID = id
	a.anycast, a.multicast = rec.Anycast, rec.Multicast
	return a, created, nil
}

// newAddressLocked registers a new address in memory. Caller holds s.mu.
func (s *Server) newAddressLocked(name string, auto bool, pol config.AddressPolicy) *address {
	a := &address{name: name, dup: newDupCache(s.idCache), autoCreated: auto, policy: pol}
	if auto && pol.AutoDeleteAddresses {
		a.autoDelete, a.deleteDelay = true, pol.AutoDeleteAddressesDelay
	}
	s.addresses[name] = a
	return a
}

// ensureQueue returns the named queue, creating it (and its address) for
// a client when needed: an anycast queue as its address settings allow
// (auto-create-queues), a subscription queue on a topic always. Durable
// queues are persisted in the bindings journal first.
func (s *Server) ensureQueue(ctx context.Context, addrName, name string, r Routing, durable, temporary bool) (*Queue, error) {
	s.mu.RLock()
	q := s.queues[name]
	s.mu.RUnlock()
	if q != nil {
		return q, nil
	}
	if s.opts.NoAutoCreate && !temporary {
		return nil, fmt.Errorf("%w: %q (auto-create is off)", ErrNoSuchQueue, name)
	}
	if r == Anycast && !s.opts.AddressSettings.For(addrName).AutoCreateQueues {
		return nil, fmt.Errorf("%w: %q (auto-create-queues is false for address %q)", ErrNoSuchQueue, name, addrName)
	}
	if err := authorize(ctx, queuePermission(durable, true), addrName); err != nil {
		return nil, err
	}
	return s.createQueue(ctx, addrName, name, r, durable, temporary, true, nil)
}

// createQueue creates a queue unless one of that name exists, which it
// returns; auto tells a client's (auto-created) queue from management's.
// filter, when not nil, is the queue's filter (persisted with it).
func (s *Server) createQueue(ctx context.Context, addrName, name string, r Routing, durable, temporary, auto bool, filter *selector.Selector) (*Queue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[name]; q != nil {
		return q, nil
	}
	if s.opts.MaxQueues > 0 && len(s.queues) >= s.opts.MaxQueues {
		if s.closed {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: %d queues (max-queues); queue %q not created", ErrLimit, len(s.queues), name)
	}
	a, _, err := s.ensureAddressLocked(ctx, addrName, r, auto)
	if err != nil {
		return nil, err
	}
	id := s.nextID()
	if durable {
		rec := queueRecord{Name: name, Address: addrName, Routing: r, Durable: true, AutoCreated: auto}
		if filter != nil {
			rec.Filter = filter.Text()
		}
		err := journal.AppendSync(ctx, s.binds, journal.Entry{Kind: journal.KindAdd, ID: id, Type: RecQueue, Data: encodeQueue(rec)})
		if err != nil {
			s.storageError(err)
			return nil, fmt.Errorf("server: persist queue %q: %w", name, err)
		}
	}
	q := newQueue(id, name, a, r, durable, temporary, auto)
	q.filter = filter
	s.setQueuePolicy(q)
	s.addQueueLocked(q)
	s.log.Debug("queue created", "queue", name, "address", addrName, "routing", r, "durable", durable)
	return q, nil
}

// addQueueLocked registers q. Caller holds s.mu.
func (s *Server) addQueueLocked(q *Queue) {
	q.srv = s
	s.queues[q.name] = q
	s.queueByID[q.id] = q
	q.addr.mu.Lock()
	q.addr.queues = append(q.addr.queues, q)
	q.addr.mu.Unlock()
}

// deleteQueue removes a temporary (never durable) queue from memory: a
// subscription whose last consumer left, or one its connection created
// and closed with. Nothing of it is in the journal, and what a send still
// in flight pushes to it is dropped (not durable either). Its address goes
// too when auto-delete allows.
func (s *Server) deleteQueue(q *Queue) {
	s.mu.Lock()
	a, empty := s.unbindQueueLocked(q)
	s.mu.Unlock()
	q.shutdown()
	q.mu.Lock()
	var refs []*ref
	for q.msgs.len() > 0 {
		refs = append(refs, q.msgs.popFront())
	}
	q.mu.Unlock()
	s.releaseAll(refs)
	s.dropPageState(q)
	if empty {
		s.addressIdle(a, true)
	}
}

// unbindQueueLocked takes q out of the server's and its address's queues:
// once it returns no send or commit routes to q (they route under the
// address mutex and append before releasing it). It returns q's address
// and whether no queue is bound to it any more. Caller holds s.mu.
func (s *Server) unbindQueueLocked(q *Queue) (a *address, empty bool) {
	if s.queues[q.name] == q {
		delete(s.queues, q.name)
		delete(s.queueByID, q.id)
	}
	a = q.addr
	a.mu.Lock()
	for i, x := range a.queues {
		if x == q {
			a.queues = append(a.queues[:i:i], a.queues[i+1:]...)
			break
		}
	}
	empty = len(a.queues) == 0
	if empty {
		a.emptySince = time.Now()
	}
	a.mu.Unlock()
	return a, empty
}

// storageError halts the broker when err comes from a failed journal.
func (s *Server) storageError(err error) {
	if err == nil {
		return
	}
	if s.msgs.Err() != nil || s.binds.Err() != nil || s.pages != nil && s.pages.Err() != nil || s.large != nil && s.large.Err() != nil {
		s.halt(err)
	}
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
