package main

import (
	"context"
	"time"

	"github.com/tandemmq/tandem/jdbcstore"
	"github.com/tandemmq/tandem/journal"
)

// perf-journal --store jdbc --url URL: the PostgreSQL journal on its own
// tables (perf_messages for the journal, perf_raw for the baselines, both
// recreated at start and dropped at the end), no lease. raw_sync is one
// single-row INSERT per transaction; raw_bw is COPY of rows of the same
// size. URL may be a postgres:// URL or the jdbc:postgresql:// form.
func init() { perfStores["jdbc"] = jdbcPerfStore{} }

type jdbcPerfStore struct{}

func (jdbcPerfStore) Kind() string { return "jdbc" }

func (jdbcPerfStore) Open(ctx context.Context, url string) (journal.Journal, func() error, error) {
	j, cleanup, err := jdbcstore.PerfOpen(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	return j, cleanup, nil
}

func (jdbcPerfStore) RawSync(ctx context.Context, url string, size int, d time.Duration) ([]time.Duration, error) {
	return jdbcstore.PerfRawSync(ctx, url, size, d)
}

func (jdbcPerfStore) RawBandwidth(ctx context.Context, url string, size int, d time.Duration) (float64, error) {
	return jdbcstore.PerfRawBandwidth(ctx, url, size, d)
}
