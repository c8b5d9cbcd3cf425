package journal

import (
	"context"
	"fmt"
	"sync"
)

// MemoryStore is the "disk" of a memory journal: the state its appends
// left (live records, open transactions), kept by the replay state
// machine itself, so it holds what is live rather than every record ever
// appended. Open several journals on one store in turn to simulate
// restarts (a store has no crash model: everything appended is kept).
type MemoryStore struct {
	mu    sync.Mutex
	l     *loader
	epoch uint64
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{l: newLoader()} }

// SetEpoch sets the epoch that Load reports.
func (s *MemoryStore) SetEpoch(epoch uint64) {
	s.mu.Lock()
	s.epoch = max(s.epoch, epoch)
	s.mu.Unlock()
}

// Open returns a new journal on the store. Only one journal may be open on
// a store at a time; Close the previous one first.
func (s *MemoryStore) Open() *Memory {
	return &Memory{store: s, failed: make(chan struct{})}
}

func (s *MemoryStore) append(entries []Entry) {
	cp := make([]Entry, len(entries))
	n := 0
	for i := range entries {
		n += len(entries[i].Data)
	}
	buf := make([]byte, 0, n)
	for i, e := range entries {
		cp[i] = e
		if e.Data != nil {
			start := len(buf)
			buf = append(buf, e.Data...)
			cp[i].Data = buf[start:len(buf):len(buf)]
		}
	}
	s.mu.Lock()
	for i := range cp {
		s.l.apply(&cp[i], 0)
	}
	s.l.compactDead()
	s.mu.Unlock()
}

// Memory is a Journal that keeps its records in memory: the broker uses it
// when persistence is disabled, and tests use it as the reference
// implementation. It has exactly the semantics of the file journal,
// including validation, ordering of callbacks and rollback of unfinished
// transactions at load; what it "writes" lasts as long as its MemoryStore.
type Memory struct {
	store *MemoryStore

	mu     sync.Mutex
	loaded bool
	closed bool
	err    error
	failed chan struct{}
	v      *validator
	cq     *completer
}

// NewMemory returns a memory journal on a new, empty store.
func NewMemory() *Memory { return NewMemoryStore().Open() }

// Store returns the journal's store, to open it again after Close.
func (m *Memory) Store() *MemoryStore { return m.store }

// Load replays the store.
func (m *Memory) Load(ctx context.Context) (*LoadResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if m.loaded {
		return nil, errLoadTwice
	}
	s := m.store
	s.mu.Lock()
	res, v, unfinished := s.l.snapshot()
	epoch := s.epoch
	s.mu.Unlock()
	res.Epoch = epoch
	if len(unfinished) > 0 {
		rb := make([]Entry, len(unfinished))
		for i, id := range unfinished {
			rb[i] = Entry{Kind: KindRollback, TxID: id}
		}
		if err := v.apply(rb, 0); err != nil {
			return nil, fmt.Errorf("journal: roll back unfinished transactions: %w", err)
		}
		s.append(rb)
	}
	m.v = v
	m.cq = newCompleter()
	m.loaded = true
	return res, nil
}

// Append validates and stores entries, then calls done(nil) from the
// journal's callback goroutine.
func (m *Memory) Append(entries []Entry, sync bool, done func(error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return ErrClosed
	case m.err != nil:
		return m.err
	case !m.loaded:
		return ErrNotLoaded
	}
	if err := m.v.apply(entries, 0); err != nil {
		return err
	}
	m.store.append(entries)
	m.cq.push(completion{done: done})
	return nil
}

// Fail makes err the journal's sticky fatal error, as a storage failure
// would: Failed is closed and later appends fail. Tests of the layers above
// use it.
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil && err != nil {
		m.err = err
		close(m.failed)
	}
}

// Failed is closed once Fail was called.
func (m *Memory) Failed() <-chan struct{} { return m.failed }

// Err returns the error given to Fail, or nil.
func (m *Memory) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close runs the pending callbacks and closes the journal. Later calls
// return nil.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	cq := m.cq
	m.mu.Unlock()
	if cq != nil {
		cq.stop()
	}
	return nil
}

var _ Journal = (*Memory)(nil)
