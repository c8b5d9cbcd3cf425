package jdbcstore

import (
	"testing"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/journal/journaltest"
)

// TestConformance runs the journal conformance suite, unchanged, against
// tables in the test database: once with the default write paths (INSERT
// for small batches, COPY for larger ones), once with every batch written
// by COPY, once with none. Every subtest gets fresh tables.
func TestConformance(t *testing.T) {
	url := pgURL(t)
	for _, tc := range []struct {
		name      string
		threshold int
	}{{"default", 0}, {"copy", 1}, {"insert", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			tables := map[*testing.T]string{}
			journaltest.Run(t, func(t *testing.T, reopen bool) journal.Journal {
				table, ok := tables[t]
				if !reopen || !ok {
					table = uniqueName("conf")
					tables[t] = table
					dropAtCleanup(t, url, table)
				}
				return openTable(t, url, table, func(o *Options) { o.CopyThreshold = tc.threshold })
			})
		})
	}
}
