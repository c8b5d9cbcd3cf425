package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
)

// TestFileStoreCompactionSettings: journal-compact-min-files and
// journal-compact-percentage reach both file journals of the store (they
// were parsed and then dropped: every broker compacted with Artemis's
// defaults, 10 and 30), and 0 in either turns automatic compaction off as
// in Artemis.
func TestFileStoreCompactionSettings(t *testing.T) {
	for _, tc := range []struct {
		minFiles, pct  int
		wantMin, wantP int
	}{
		{minFiles: 4, pct: 55, wantMin: 4, wantP: 55},
		{minFiles: 10, pct: 30, wantMin: 10, wantP: 30}, // the defaults
		{minFiles: 0, pct: 30, wantMin: -1, wantP: 30},  // 0: never compact
		{minFiles: 4, pct: 0, wantMin: -1, wantP: journal.DefaultCompactPercentage},
	} {
		cfg := config.Default()
		cfg.ApplyDataDir(filepath.Join(t.TempDir(), "data"))
		cfg.Journal.Type, cfg.Journal.Backend = "NIO", aio.NIO
		cfg.Journal.CompactMinFiles, cfg.Journal.CompactPercentage = tc.minFiles, tc.pct
		st, err := OpenStore(context.Background(), cfg, StoreOptions{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		for name, j := range map[string]journal.Journal{"messages": st.Messages, "bindings": st.Bindings} {
			o := j.(*journal.FileJournal).Options()
			if o.CompactMinFiles != tc.wantMin || o.CompactPercentage != tc.wantP {
				t.Errorf("journal-compact-min-files %d, journal-compact-percentage %d: the %s journal runs with CompactMinFiles %d, CompactPercentage %d; want %d, %d",
					tc.minFiles, tc.pct, name, o.CompactMinFiles, o.CompactPercentage, tc.wantMin, tc.wantP)
			}
		}
		st.Messages.Close()
		st.Bindings.Close()
	}
}
