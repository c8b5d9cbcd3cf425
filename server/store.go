package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/jdbcstore"
	"github.com/tandemmq/tandem/journal"
)

// Store is a broker's journals and what kind of store holds them.
type Store struct {
	// Kind is "file", "jdbc" or "memory".
	Kind string
	// Messages and Bindings are the two journals (not loaded yet).
	Messages, Bindings journal.Journal
	// Pages is the paging journal (a file store's, in paging-directory);
	// nil for the other stores.
	Pages *journal.FileJournal
	// Large is the large-messages journal (a file store's, in
	// large-messages-directory); nil for the other stores.
	Large *journal.FileJournal
	// Where describes the location for the banner (directories or tables).
	Where string
}

// StoreOptions adjust OpenStore.
type StoreOptions struct {
	// Epoch is written into new journal segments (HA activation).
	Epoch uint64
	// Logger receives the journals' warnings.
	Logger *slog.Logger
}

// OpenStore opens the journals the configuration selects: memory when
// persistence is disabled, PostgreSQL when a database store is configured,
// else the file journal in the journal and bindings directories.
func OpenStore(ctx context.Context, cfg *config.Config, so StoreOptions) (*Store, error) {
	if so.Logger == nil {
		so.Logger = slog.Default()
	}
	switch {
	case !cfg.PersistenceEnabled:
		return &Store{Kind: "memory", Messages: newDiscardJournal(), Bindings: newDiscardJournal(),
			Where: "persistence-enabled=false: nothing survives a restart"}, nil
	case cfg.Store != nil:
		db := cfg.Store
		open := func(table string) (*jdbcstore.Journal, error) {
			url := db.URL
			if u, err := db.PgxURL(); err == nil && u != "" {
				url = u
			}
			return jdbcstore.Open(ctx, jdbcstore.Options{URL: url, Table: table, Logger: so.Logger})
		}
		m, err := open(db.MessageTable)
		if err != nil {
			return nil, fmt.Errorf("server: open message table %s: %w", db.MessageTable, err)
		}
		b, err := open(db.BindingsTable)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("server: open bindings table %s: %w", db.BindingsTable, err)
		}
		return &Store{Kind: "jdbc", Messages: m, Bindings: b,
			Where: fmt.Sprintf("tables %s and %s", db.MessageTable, db.BindingsTable)}, nil
	default:
		return openFileStore(cfg, so)
	}
}

// Failed is closed when a journal has failed.
func (st *Store) Failed(ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	var pages, large <-chan struct{} // nil: never
	if st.Pages != nil {
		pages = st.Pages.Failed()
	}
	if st.Large != nil {
		large = st.Large.Failed()
	}
	go func() {
		select {
		case <-st.Messages.Failed():
			ch <- fmt.Errorf("messages journal: %w", st.Messages.Err())
		case <-st.Bindings.Failed():
			ch <- fmt.Errorf("bindings journal: %w", st.Bindings.Err())
		case <-pages:
			ch <- fmt.Errorf("paging journal: %w", st.Pages.Err())
		case <-large:
			ch <- fmt.Errorf("large-messages journal: %w", st.Large.Err())
		case <-ctx.Done():
		}
	}()
	return ch
}

// PageLog returns the paging journal for server.Options.Pages (nil when
// the store has none).
func (st *Store) PageLog() PageLog {
	if st.Pages == nil {
		return nil
	}
	return st.Pages
}

// LargeLog returns the large-messages journal for server.Options.Large
// (nil when the store has none).
func (st *Store) LargeLog() LargeLog {
	if st.Large == nil {
		return nil
	}
	return st.Large
}

// Journals returns the store's file journals in replication's journal-ID
// order: bindings, messages, then paging and large messages when it has
// them (nil when the store is not a file store).
func (st *Store) Journals() []*journal.FileJournal {
	b, ok1 := st.Bindings.(*journal.FileJournal)
	m, ok2 := st.Messages.(*journal.FileJournal)
	if !ok1 || !ok2 {
		return nil
	}
	js := []*journal.FileJournal{b, m}
	if st.Pages != nil {
		js = append(js, st.Pages)
		if st.Large != nil {
			js = append(js, st.Large)
		}
	}
	return js
}

// Close closes the journals.
func (st *Store) Close() error {
	err := errors.Join(st.Messages.Close(), st.Bindings.Close())
	if st.Pages != nil {
		err = errors.Join(err, st.Pages.Close())
	}
	if st.Large != nil {
		err = errors.Join(err, st.Large.Close())
	}
	return err
}
