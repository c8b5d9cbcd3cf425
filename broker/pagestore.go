package broker

// The paging journal in the broker's store (issue 18): opened with the
// two others (fenced like them on a shared store), replicated as the
// third journal, and the global-max-size a broker resolves at start.

import (
	"bufio"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/replication"
)

// replicaJournals are the journal directories a replica copies, in
// replication's journal-ID order: bindings, messages, paging, large
// messages (the live's server.Store.Journals order).
func replicaJournals(cfg *config.Config) []replication.JournalDir {
	nm := journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}
	return []replication.JournalDir{{Dir: cfg.Dirs.Bindings, Naming: nm}, {Dir: cfg.Dirs.Journal, Naming: nm},
		{Dir: cfg.Dirs.Paging, Naming: journal.Naming{Prefix: journal.PagePrefix, Ext: journal.PageExt}},
		{Dir: cfg.Dirs.LargeMessages, Naming: journal.Naming{Prefix: journal.LargePrefix, Ext: journal.LargeExt}}}
}

// globalMaxSize resolves <global-max-size>: -1 (the default) is half of
// the memory the process may use, as Artemis's is half of the JVM's
// maximum heap: the smallest of the Go memory limit (GOMEMLIMIT), the
// cgroup's memory.max and the machine's memory.
func globalMaxSize(cfg *config.Config) int64 {
	if cfg.GlobalMaxSize > 0 {
		return cfg.GlobalMaxSize
	}
	return memoryLimit() / 2
}

// memoryLimit is the memory the process may use (see globalMaxSize).
func memoryLimit() int64 {
	limit := int64(math.MaxInt64)
	if l := debug.SetMemoryLimit(-1); l > 0 {
		limit = min(limit, l)
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			limit = min(limit, v)
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				fields := strings.Fields(rest)
				if len(fields) > 0 {
					if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil && kb > 0 {
						limit = min(limit, kb<<10)
					}
				}
				break
			}
		}
		f.Close()
	}
	if limit == math.MaxInt64 {
		return 2 << 30 // unknown: assume 2 GiB
	}
	return limit
}
