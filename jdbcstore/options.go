package jdbcstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure a journal on a table.
type Options struct {
	// URL is the database: a postgres:// URL, a libpq key=value string or
	// the jdbc:postgresql:// form of <database-store>'s jdbc-connection-url.
	URL string
	// Table is the journal table (message-table-name or
	// bindings-table-name); created when missing.
	Table string
	// Fence makes every batch commit only while the group's epoch is still
	// Fence.Epoch. The zero value turns fencing off (perf-journal, tests
	// without a lease).
	Fence Fence
	// Lease, when set, is watched: once it is lost the journal fails with
	// ErrLeaseLost (and acknowledges nothing more, even a batch that
	// committed), so a broker that halts on a failed journal stops before
	// the lease can have expired. Fencing (Fence) protects the table either
	// way; this stops the acknowledgements early.
	Lease *Lease
	// StatementTimeout bounds every statement on the database (the
	// server's statement_timeout); 0 means 30 s, negative means none.
	StatementTimeout time.Duration
	// BatchTimeout bounds one batch transaction from send to commit on the
	// client side (a dead network, a commit that hangs); 0 means 60 s.
	BatchTimeout time.Duration
	// MaxAppendBytes is the largest one Append may be (ErrTooLarge above);
	// 0 means 64 MiB.
	MaxAppendBytes int
	// MaxBatchBytes caps the data one batch transaction carries (a single
	// larger append still goes alone); 0 means 8 MiB.
	MaxBatchBytes int
	// CopyThreshold is the smallest batch (in rows) written with one
	// binary COPY instead of an INSERT; 0 means 8, negative means never.
	CopyThreshold int
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Fence names the node-manager row whose epoch guards a journal's writes.
type Fence struct {
	// Table is the node-manager table (node-manager-store-table-name).
	Table string
	// Group is the shared-store group (one primary at a time).
	Group string
	// Epoch is the epoch this writer's lease acquisition produced; 0 turns
	// fencing off.
	Epoch uint64
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.StatementTimeout == 0 {
		c.StatementTimeout = 30 * time.Second
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 60 * time.Second
	}
	if c.MaxAppendBytes == 0 {
		c.MaxAppendBytes = 64 << 20
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 8 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// connect opens one dedicated connection.
func connect(ctx context.Context, url string, statementTimeout time.Duration, log *slog.Logger) (*pgx.Conn, error) {
	cs, dropped, err := ConnString(url)
	if err != nil {
		return nil, err
	}
	if len(dropped) > 0 && log != nil {
		log.Warn("jdbcstore: connection properties without a PostgreSQL equivalent ignored", "properties", dropped)
	}
	cfg, err := pgx.ParseConfig(cs)
	if err != nil {
		return nil, fmt.Errorf("jdbcstore: connection URL %q: %w", redact(url), err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "tandem"
	}
	if statementTimeout > 0 {
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(statementTimeout.Milliseconds(), 10)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("jdbcstore: connect to %s: %w", redact(url), err)
	}
	return conn, nil
}
