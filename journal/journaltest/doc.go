// Package journaltest is the conformance suite of the journal.Journal
// interface. Every implementation (the memory journal, the file journal,
// the PostgreSQL store) runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		journaltest.Run(t, func(t *testing.T, reopen bool) journal.Journal { ... })
//	}
//
// It owns the written-down meaning of the interface. It must never depend
// on one implementation's details (file names, tables, timing), and never
// time anything: numbers belong in benchmarks.
package journaltest
