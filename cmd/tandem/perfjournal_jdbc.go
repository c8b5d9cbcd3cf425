package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tandemmq/tandem/jdbcstore"
	"github.com/tandemmq/tandem/journal"
)

// perf-journal --store jdbc --url URL: the PostgreSQL journal on its own
// tables (perf_messages for the journal, perf_raw for the baselines, both
// recreated at start and dropped at the end), no lease. raw_sync is one
// single-row INSERT per transaction; raw_bw is COPY of rows of the same
// size. URL may be a postgres:// URL or the jdbc:postgresql:// form.
//
// The whole run (baselines, journal, cleanup) holds the database's perf
// lock (jdbcstore.PerfLock), taken by the first hook called: runs on one
// database take turns instead of dropping each other's tables and
// measuring each other's load.
func init() { perfStores["jdbc"] = &jdbcPerfStore{} }

type jdbcPerfStore struct {
	mu      sync.Mutex
	release func()
}

func (*jdbcPerfStore) Kind() string { return "jdbc" }

// lock takes the perf lock unless this process holds it already. It is
// released by the cleanup Open returns, or when the process exits.
func (s *jdbcPerfStore) lock(ctx context.Context, url string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release != nil {
		return nil
	}
	release, err := jdbcstore.PerfLock(ctx, url, slog.Default())
	if err != nil {
		return err
	}
	s.release = release
	return nil
}

func (s *jdbcPerfStore) unlock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

func (s *jdbcPerfStore) Open(ctx context.Context, url string) (journal.Journal, func() error, error) {
	if err := s.lock(ctx, url); err != nil {
		return nil, nil, err
	}
	j, cleanup, err := jdbcstore.PerfOpen(ctx, url)
	if err != nil {
		s.unlock()
		return nil, nil, err
	}
	return j, func() error {
		defer s.unlock()
		return cleanup()
	}, nil
}

func (s *jdbcPerfStore) RawSync(ctx context.Context, url string, size int, d time.Duration) ([]time.Duration, error) {
	if err := s.lock(ctx, url); err != nil {
		return nil, err
	}
	return jdbcstore.PerfRawSync(ctx, url, size, d)
}

func (s *jdbcPerfStore) RawBandwidth(ctx context.Context, url string, size int, d time.Duration) (float64, error) {
	if err := s.lock(ctx, url); err != nil {
		return 0, err
	}
	return jdbcstore.PerfRawBandwidth(ctx, url, size, d)
}
