package jdbcstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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

// connect opens one dedicated connection, with synchronous_commit on and
// checked (checkDurability). log, when not nil, is told when the database
// runs with fsync off.
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
	// A startup parameter outranks the server's, the database's and the
	// role's defaults and comes after the URL's options (-c ...): the
	// session gets on whatever they say.
	cfg.RuntimeParams["synchronous_commit"] = "on"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		if strings.Contains(err.Error(), "synchronous_commit") {
			return nil, fmt.Errorf("jdbcstore: connect to %s: the store sets synchronous_commit=on on its connections and cannot run where it cannot be set: %w", redact(url), err)
		}
		return nil, fmt.Errorf("jdbcstore: connect to %s: %w", redact(url), err)
	}
	fsyncOn, err := checkDurability(ctx, conn)
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("jdbcstore: %s: %w", redact(url), err)
	}
	if !fsyncOn && log != nil {
		log.Error("jdbcstore: the database runs with fsync off: its commits are not durable, so acknowledged messages can be lost when the database server crashes or loses power; set fsync = on in postgresql.conf",
			"url", redact(url))
	}
	return conn, nil
}

// checkDurability refuses a session whose synchronous_commit is not on (a
// commit would return before its WAL is flushed: confirmed messages lost
// with a database crash) and reports whether the server runs with fsync
// on, which no session can change.
func checkDurability(ctx context.Context, conn *pgx.Conn) (fsyncOn bool, err error) {
	var sc, fs string
	if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), current_setting('fsync')").Scan(&sc, &fs); err != nil {
		return false, fmt.Errorf("jdbcstore: read synchronous_commit and fsync: %w", err)
	}
	if sc != "on" {
		return false, fmt.Errorf("jdbcstore: synchronous_commit is %q on the store's connection, although the store sets it to on: the database would confirm commits before their WAL is flushed; refusing to use it (is a connection pooler dropping startup parameters?)", sc)
	}
	return fs == "on", nil
}
