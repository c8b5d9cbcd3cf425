package server

import (
	"context"
	"sync"

	"github.com/tandemmq/tandem/journal"
)

// discardJournal is the store of persistence-enabled=false: it loads
// nothing and keeps nothing (journal.Memory would keep every record ever
// appended), and completes appends in order on one goroutine, as the
// Journal contract says.
type discardJournal struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []func(error)
	closed  bool
	started bool
	exited  chan struct{}
	failed  chan struct{}
}

func newDiscardJournal() *discardJournal {
	j := &discardJournal{exited: make(chan struct{}), failed: make(chan struct{})}
	j.cond.L = &j.mu
	return j
}

// Load returns an empty store and starts the callback goroutine.
func (j *discardJournal) Load(ctx context.Context) (*journal.LoadResult, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, journal.ErrClosed
	}
	if !j.started {
		j.started = true
		go j.loop()
	}
	return &journal.LoadResult{}, nil
}

// Append drops the entries and queues done(nil).
func (j *discardJournal) Append(entries []journal.Entry, sync bool, done func(error)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closed:
		return journal.ErrClosed
	case !j.started:
		return journal.ErrNotLoaded
	}
	j.queue = append(j.queue, done)
	j.cond.Signal()
	return nil
}

func (j *discardJournal) loop() {
	defer close(j.exited)
	var batch []func(error)
	j.mu.Lock()
	for {
		for len(j.queue) == 0 && !j.closed {
			j.cond.Wait()
		}
		if len(j.queue) == 0 {
			j.mu.Unlock()
			return
		}
		batch, j.queue = j.queue, batch[:0]
		j.mu.Unlock()
		for i, f := range batch {
			if f != nil {
				f(nil)
			}
			batch[i] = nil
		}
		j.mu.Lock()
	}
}

// Failed is never closed: there is no storage to fail.
func (j *discardJournal) Failed() <-chan struct{} { return j.failed }

// Err is always nil.
func (j *discardJournal) Err() error { return nil }

// Close completes the queued callbacks and stops.
func (j *discardJournal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	started := j.started
	j.cond.Signal()
	j.mu.Unlock()
	if started {
		<-j.exited
	}
	return nil
}

var _ journal.Journal = (*discardJournal)(nil)
