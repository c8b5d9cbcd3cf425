package jdbcstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the version of the tables this code writes. A table whose
// meta row carries a larger version was written by a newer Tandem and is
// refused: this code cannot know what the new columns or rows mean.
const SchemaVersion = 1

// Table kinds recorded in the meta table.
const (
	kindJournal     = "journal"
	kindNodeManager = "node-manager"
)

// ErrSchemaTooNew is returned (wrapped in a *SchemaError) when a table was
// created by a newer version of Tandem.
var ErrSchemaTooNew = errors.New("schema is newer than this version of tandem supports")

// SchemaError names the table whose schema cannot be used.
type SchemaError struct {
	Table   string
	Found   int
	Want    int
	Problem error
}

func (e *SchemaError) Error() string {
	if errors.Is(e.Problem, ErrSchemaTooNew) {
		return fmt.Sprintf("jdbcstore: table %s has schema version %d, newer than %d that this tandem supports: upgrade tandem or use another table name", e.Table, e.Found, e.Want)
	}
	return fmt.Sprintf("jdbcstore: table %s: %v", e.Table, e.Problem)
}

func (e *SchemaError) Unwrap() error { return e.Problem }

// schemaLockKey serialises schema changes across processes (an advisory
// transaction lock: concurrent CREATE TABLE IF NOT EXISTS can fail).
const schemaLockKey = 0x74616e64656d3031 // "tandem01"

// metaDDL creates the meta table: per table its kind, schema version, and
// the largest ID and epoch it has held (rows that are deleted take theirs
// with them, and LoadResult.MaxID must not go backwards).
var metaDDL = `CREATE TABLE IF NOT EXISTS ` + ident(MetaTable) + ` (
	name text PRIMARY KEY,
	kind text NOT NULL,
	version integer NOT NULL,
	max_id bigint NOT NULL DEFAULT 0,
	max_epoch bigint NOT NULL DEFAULT 0)`

// metaInfo is a journal table's meta row.
type metaInfo struct {
	version  int
	maxID    uint64
	maxEpoch uint64
}

// ensureTable creates the meta table and the named table (with create, its
// DDL) when missing, and checks the schema version. A table that exists
// without a meta row is not ours and is refused.
func ensureTable(ctx context.Context, conn *pgx.Conn, table, kind string, create []string) (metaInfo, error) {
	var m metaInfo
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(schemaLockKey)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, metaDDL); err != nil {
			return err
		}
		var gotKind string
		var maxID, maxEpoch int64
		err := tx.QueryRow(ctx, "SELECT kind, version, max_id, max_epoch FROM "+ident(MetaTable)+" WHERE name = $1", table).
			Scan(&gotKind, &m.version, &maxID, &maxEpoch)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident(table)).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return &SchemaError{Table: table, Problem: fmt.Errorf("the table exists but has no row in %s: it was not created by tandem", MetaTable)}
			}
			for _, stmt := range create {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("create table %s: %w", table, err)
				}
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+ident(MetaTable)+" (name, kind, version) VALUES ($1, $2, $3)", table, kind, SchemaVersion); err != nil {
				return err
			}
			m.version = SchemaVersion
			return nil
		case err != nil:
			return err
		}
		m.maxID, m.maxEpoch = uint64(maxID), uint64(maxEpoch)
		if gotKind != kind {
			return &SchemaError{Table: table, Problem: fmt.Errorf("the table holds a %s, not a %s", gotKind, kind)}
		}
		if m.version > SchemaVersion {
			return &SchemaError{Table: table, Found: m.version, Want: SchemaVersion, Problem: ErrSchemaTooNew}
		}
		// Older versions would be migrated here; version 1 is the first.
		return nil
	})
	if err != nil {
		var se *SchemaError
		if errors.As(err, &se) {
			return m, err
		}
		return m, fmt.Errorf("jdbcstore: prepare table %s: %w", table, err)
	}
	return m, nil
}

// journalDDL is the DDL of a journal table. seq is the append order; crc is
// the CRC32C of the row's fields (see row.sum).
func journalDDL(table string) []string {
	return []string{`CREATE TABLE ` + ident(table) + ` (
		seq bigint PRIMARY KEY,
		kind smallint NOT NULL,
		id bigint NOT NULL,
		tx_id bigint NOT NULL,
		user_type smallint NOT NULL,
		data bytea,
		epoch bigint NOT NULL,
		crc bigint NOT NULL)`}
}

// dropTable removes a table and its meta row (perf-journal's own tables).
func dropTable(ctx context.Context, conn *pgx.Conn, table string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(schemaLockKey)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+ident(table)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, metaDDL); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM "+ident(MetaTable)+" WHERE name = $1", table)
		return err
	})
}
