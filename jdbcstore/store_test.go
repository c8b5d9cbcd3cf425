package jdbcstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func add(id uint64, data string) journal.Entry {
	return journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: []byte(data)}
}

func mustLoad(t testing.TB, j *Journal) *journal.LoadResult {
	t.Helper()
	res, err := j.Load(ctxT(t))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return res
}

func mustAppend(t testing.TB, j *Journal, es ...journal.Entry) {
	t.Helper()
	if err := journal.AppendSync(ctxT(t), j, es...); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func countRows(t testing.TB, url, table string) int {
	t.Helper()
	var n int
	if err := adminConn(t, url).QueryRow(ctxT(t), "SELECT count(*) FROM "+ident(table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCorruptionDetected tampers with rows through SQL; Load must refuse
// with a CorruptionError naming the table and the row's seq.
func TestCorruptionDetected(t *testing.T) {
	url := pgURL(t)
	tests := []struct {
		name   string
		tamper string // $1 is the seq of the second row
	}{
		{"data", "UPDATE %s SET data = 'tampered' WHERE seq = $1"},
		{"crc", "UPDATE %s SET crc = crc # 1 WHERE seq = $1"},
		{"id", "UPDATE %s SET id = id + 1 WHERE seq = $1"},
		{"user type", "UPDATE %s SET user_type = 7 WHERE seq = $1"},
		{"epoch", "UPDATE %s SET epoch = 99 WHERE seq = $1"},
		{"kind", "UPDATE %s SET kind = 77 WHERE seq = $1"},
		{"null data", "UPDATE %s SET data = NULL WHERE seq = $1"},
		{"moved", "UPDATE %s SET seq = seq + 1000 WHERE seq = $1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table := uniqueName("corrupt")
			dropAtCleanup(t, url, table)
			j := openTable(t, url, table, nil)
			mustLoad(t, j)
			mustAppend(t, j, add(1, "one"))
			mustAppend(t, j, add(2, "two"))
			mustAppend(t, j, add(3, "three"))
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			admin := adminConn(t, url)
			var seq int64
			if err := admin.QueryRow(ctxT(t), "SELECT seq FROM "+ident(table)+" WHERE id = 2").Scan(&seq); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Exec(ctxT(t), sprintf(tc.tamper, ident(table)), seq); err != nil {
				t.Fatal(err)
			}
			j = openTable(t, url, table, nil)
			_, err := j.Load(ctxT(t))
			var ce *journal.CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("Load after tampering: got %v, want a CorruptionError", err)
			}
			wantSeq := seq
			if tc.name == "moved" {
				wantSeq = seq + 1000
			}
			if ce.File != table || ce.Offset != wantSeq {
				t.Fatalf("CorruptionError names %s:%d, want %s:%d (%v)", ce.File, ce.Offset, table, wantSeq, err)
			}
			if err := j.Append([]journal.Entry{add(9, "x")}, true, func(error) {}); !errors.Is(err, journal.ErrNotLoaded) {
				t.Fatalf("append after a refused load: %v, want ErrNotLoaded", err)
			}
		})
	}
}

// TestSchemaVersionRefused: a table whose meta row says a newer schema is
// refused with a clear error, and so is a table tandem did not create.
func TestSchemaVersionRefused(t *testing.T) {
	url := pgURL(t)
	admin := adminConn(t, url)
	table := uniqueName("schema")
	dropAtCleanup(t, url, table)
	j := openTable(t, url, table, nil)
	_ = j.Close()
	if _, err := admin.Exec(ctxT(t), "UPDATE "+ident(MetaTable)+" SET version = $2 WHERE name = $1", table, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctxT(t), Options{URL: url, Table: table})
	var se *SchemaError
	if !errors.Is(err, ErrSchemaTooNew) || !errors.As(err, &se) || se.Table != table || se.Found != SchemaVersion+1 {
		t.Fatalf("Open of a newer schema: got %v, want ErrSchemaTooNew naming %s", err, table)
	}
	t.Logf("message: %v", err)

	foreign := uniqueName("foreign")
	dropAtCleanup(t, url, foreign)
	if _, err := admin.Exec(ctxT(t), "CREATE TABLE "+ident(foreign)+" (x int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctxT(t), Options{URL: url, Table: foreign}); !errors.As(err, &se) || se.Table != foreign {
		t.Fatalf("Open of a table tandem did not create: got %v, want a SchemaError", err)
	}
	if _, err := Open(ctxT(t), Options{URL: url, Table: "bad-name"}); err == nil {
		t.Fatal("Open accepted the table name bad-name")
	}
}

// TestRowsRemoved: deletes, commits and rollbacks remove rows, so the table
// holds only what replay needs.
func TestRowsRemoved(t *testing.T) {
	url := pgURL(t)
	table := uniqueName("rows")
	dropAtCleanup(t, url, table)
	j := openTable(t, url, table, nil)
	mustLoad(t, j)
	for i := uint64(1); i <= 50; i++ {
		mustAppend(t, j, add(i, "r"))
		mustAppend(t, j, journal.Entry{Kind: journal.KindUpdate, ID: i, Type: 2, Data: []byte("u")})
	}
	if n := countRows(t, url, table); n != 100 {
		t.Fatalf("%d rows after 50 adds and 50 updates, want 100", n)
	}
	for i := uint64(1); i <= 50; i++ {
		mustAppend(t, j, journal.Entry{Kind: journal.KindDelete, ID: i})
	}
	if n := countRows(t, url, table); n != 0 {
		t.Fatalf("%d rows after deleting every record, want 0", n)
	}
	// A committed transaction: its rows stay (with the commit row) while
	// its record lives, and all go with the record.
	mustAppend(t, j, journal.Entry{Kind: journal.KindAddTx, TxID: 100, ID: 200, Data: []byte("t")},
		journal.Entry{Kind: journal.KindCommit, TxID: 100})
	if n := countRows(t, url, table); n != 2 {
		t.Fatalf("%d rows after a committed add, want 2 (add-tx and commit)", n)
	}
	mustAppend(t, j, journal.Entry{Kind: journal.KindDeleteTx, TxID: 101, ID: 200},
		journal.Entry{Kind: journal.KindPrepare, TxID: 101, Data: []byte("xid")})
	mustAppend(t, j, journal.Entry{Kind: journal.KindCommit, TxID: 101})
	if n := countRows(t, url, table); n != 0 {
		t.Fatalf("%d rows after the record's delete committed, want 0", n)
	}
	mustAppend(t, j, journal.Entry{Kind: journal.KindAddTx, TxID: 102, ID: 300, Data: []byte("t")})
	mustAppend(t, j, journal.Entry{Kind: journal.KindRollback, TxID: 102})
	if n := countRows(t, url, table); n != 0 {
		t.Fatalf("%d rows after a rollback, want 0", n)
	}
	_ = j.Close()
	j = openTable(t, url, table, nil)
	res := mustLoad(t, j)
	if len(res.Records) != 0 || res.MaxID != 300 {
		t.Fatalf("reload: %d records, MaxID %d; want 0, 300", len(res.Records), res.MaxID)
	}
}

// TestTooLarge: an append over MaxAppendBytes is refused.
func TestTooLarge(t *testing.T) {
	url := pgURL(t)
	table := uniqueName("large")
	dropAtCleanup(t, url, table)
	j := openTable(t, url, table, func(o *Options) { o.MaxAppendBytes = 1000 })
	mustLoad(t, j)
	err := j.Append([]journal.Entry{add(1, string(make([]byte, 2000)))}, true, func(error) { t.Error("done called") })
	if !errors.Is(err, journal.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}
