package server

import (
	"fmt"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
)

// BindingsSegmentSize is the segment size of the bindings journal:
// bindings change rarely, so its segments are small.
const BindingsSegmentSize = 1 << 20

// FileJournalOptions returns the options of a file journal in dir on fs,
// with segments of size bytes, from the journal-* settings of cfg: both
// journals of a file store (OpenStore's and the shared store's fenced one)
// are opened with them. journal-compact-min-files or
// journal-compact-percentage 0 turns automatic compaction off, as in
// Artemis.
func FileJournalOptions(cfg *config.Config, so StoreOptions, fs aio.FS, dir string, size int64) journal.Options {
	j := &cfg.Journal
	o := journal.Options{Dir: dir, FS: fs, SegmentSize: size, MinFiles: j.MinFiles, PoolFiles: j.PoolFiles,
		BufferTimeout: j.BufferTimeout, CompactMinFiles: j.CompactMinFiles, CompactPercentage: j.CompactPercentage,
		Epoch: so.Epoch, Logger: so.Logger}
	if j.CompactMinFiles == 0 || j.CompactPercentage == 0 {
		o.CompactMinFiles = -1 // never compact automatically
	}
	return o
}

// openFileStore opens the file journals in the journal and bindings
// directories with the configured backend.
func openFileStore(cfg *config.Config, so StoreOptions) (*Store, error) {
	aopts := aio.DefaultOptions()
	aopts.Logger = so.Logger
	if cfg.Journal.MaxIO > 0 {
		aopts.MaxIO = cfg.Journal.MaxIO
	}
	aopts.Datasync = cfg.Journal.Datasync
	fs := aio.OS(cfg.Journal.Backend, aopts)
	open := func(dir string, size int64) (*journal.FileJournal, error) {
		return journal.Open(FileJournalOptions(cfg, so, fs, dir, size))
	}
	m, err := open(cfg.Dirs.Journal, cfg.Journal.FileSize)
	if err != nil {
		return nil, fmt.Errorf("server: open journal %s: %w", cfg.Dirs.Journal, err)
	}
	b, err := open(cfg.Dirs.Bindings, BindingsSegmentSize)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("server: open bindings journal %s: %w", cfg.Dirs.Bindings, err)
	}
	p, err := OpenPageLog(cfg, fs, so)
	if err != nil {
		m.Close()
		b.Close()
		return nil, err
	}
	l, err := OpenLargeLog(cfg, fs, so)
	if err != nil {
		m.Close()
		b.Close()
		p.Close()
		return nil, err
	}
	return &Store{Kind: "file", Messages: m, Bindings: b, Pages: p, Large: l,
		Where: fmt.Sprintf("journal %s, bindings %s, paging %s, large messages %s", cfg.Dirs.Journal, cfg.Dirs.Bindings, cfg.Dirs.Paging, cfg.Dirs.LargeMessages)}, nil
}

// OpenLargeLog opens the large-messages journal in
// large-messages-directory on fs: a log-mode journal of journal-file-size
// segments (a chunk of at most 1 MiB is one record).
func OpenLargeLog(cfg *config.Config, fs aio.FS, so StoreOptions) (*journal.FileJournal, error) {
	size := max(cfg.Journal.FileSize, 2<<20)
	l, err := journal.Open(journal.Options{Dir: cfg.Dirs.LargeMessages, FS: fs, Log: true, Prefix: journal.LargePrefix, Ext: journal.LargeExt,
		SegmentSize: size, MinFiles: 2, PoolFiles: cfg.Journal.PoolFiles, BufferTimeout: cfg.Journal.BufferTimeout,
		Epoch: so.Epoch, Logger: so.Logger, MaxPending: 8 << 20})
	if err != nil {
		return nil, fmt.Errorf("server: open large-messages journal %s: %w", cfg.Dirs.LargeMessages, err)
	}
	return l, nil
}

// OpenPageLog opens the paging journal in paging-directory on fs: a
// log-mode journal whose segments are page-size-bytes (the largest any
// address setting gives).
func OpenPageLog(cfg *config.Config, fs aio.FS, so StoreOptions) (*journal.FileJournal, error) {
	p, err := journal.Open(journal.Options{Dir: cfg.Dirs.Paging, FS: fs, Log: true, Prefix: journal.PagePrefix, Ext: journal.PageExt,
		SegmentSize: cfg.AddressSettings.PageSegmentSize(), MinFiles: 2, PoolFiles: cfg.Journal.PoolFiles,
		BufferTimeout: cfg.Journal.BufferTimeout, Epoch: so.Epoch, Logger: so.Logger, MaxPending: 16 << 20})
	if err != nil {
		return nil, fmt.Errorf("server: open paging journal %s: %w", cfg.Dirs.Paging, err)
	}
	return p, nil
}
