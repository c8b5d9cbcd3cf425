package aio

import (
	"fmt"
	"os"
	"strings"
)

// SyncSubmitter is implemented by the OS backends' Files (use a type
// assertion; test file systems need not implement it). SubmitSync waits
// until every request submitted earlier on the File has been delivered,
// then writes p at off on the calling goroutine (pwrite, then fdatasync when
// sync is true) and calls done before returning. Ordering and stickiness are
// those of Submit.
//
// For io_uring this is the cheap path at queue depth 1, where a round trip
// through the ring costs more than pwrite + fdatasync: a flusher with a
// single batch pending and nothing in flight may use it, and use Submit when
// it wants the next batch in flight while one is syncing. For the
// synchronous backends it is Submit.
type SyncSubmitter interface {
	SubmitSync(p []byte, off int64, sync bool, done func(error))
}

// Kinds lists every backend, for tests and benchmarks that run on each.
func Kinds() []Kind { return []Kind{NIO, Direct, IOUring} }

// KindsFromEnv returns the backends a test suite should run on: every one, or
// those listed in the environment variable TANDEM_TEST_JOURNAL_TYPES
// (journal-type names separated by commas, e.g. "DIRECT" or "NIO,ASYNCIO"),
// so a CI lane can run a whole suite through one backend.
func KindsFromEnv() ([]Kind, error) {
	v := strings.TrimSpace(os.Getenv("TANDEM_TEST_JOURNAL_TYPES"))
	if v == "" {
		return Kinds(), nil
	}
	var kinds []Kind
	for _, name := range strings.Split(v, ",") {
		k, _, err := ParseJournalType(name)
		if err != nil {
			return nil, fmt.Errorf("TANDEM_TEST_JOURNAL_TYPES: %w", err)
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}
