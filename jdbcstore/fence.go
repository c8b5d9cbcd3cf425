package jdbcstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrFenced means the group's epoch in the node-manager table is no longer
// the writer's: another node took the lease over. The batch that found it
// was not committed, and the journal has failed for good.
var ErrFenced = errors.New("jdbcstore: fenced: another node holds a newer epoch")

// fencedCode is the SQLSTATE the fence function raises.
const fencedCode = "TF001"

// fenceFunc is the name of the node-manager table's fence function.
func fenceFunc(table string) string { return ident(table + "_fence") }

// fenceSQL is the statement every fenced batch runs first. The function
// takes a FOR KEY SHARE lock on the group's primary row and raises TF001
// when the epoch is not the writer's; the rest of the batch is then
// skipped and nothing commits. A takeover locks the row FOR UPDATE before
// bumping the epoch, so it waits for batches in flight, and batches after
// it see the new epoch. Renewals only take the weaker NO KEY UPDATE lock,
// which KEY SHARE does not block: a slow batch never delays a renewal, and
// a stream of batches never starves one.
func fenceSQL(table string) string { return "SELECT " + fenceFunc(table) + "($1, $2)" }

// fenceError turns the fence function's error into ErrFenced.
func fenceError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == fencedCode {
		return fmt.Errorf("%w (%s)", ErrFenced, pe.Message)
	}
	return err
}

// checkFence runs the fence check alone (at load).
func checkFence(ctx context.Context, conn *pgx.Conn, f Fence) error {
	if f.Epoch == 0 {
		return nil
	}
	_, err := conn.Exec(ctx, fenceSQL(f.Table), f.Group, int64(f.Epoch))
	if err != nil {
		return fmt.Errorf("jdbcstore: fence check for group %q: %w", f.Group, fenceError(err))
	}
	return nil
}
