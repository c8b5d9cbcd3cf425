package jdbcstore

import (
	"testing"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/journal/journaltest"
)

// TestConformance runs the journal conformance suite, unchanged, against
// tables in the test database. Every subtest gets fresh tables.
func TestConformance(t *testing.T) {
	url := pgURL(t)
	tables := map[*testing.T]string{}
	journaltest.Run(t, func(t *testing.T, reopen bool) journal.Journal {
		table, ok := tables[t]
		if !reopen || !ok {
			table = uniqueName("conf")
			tables[t] = table
			dropAtCleanup(t, url, table)
		}
		return openTable(t, url, table, nil)
	})
}
