package broker

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
)

// TestFencedStoreCompactionSettings: the shared store's fenced journals
// take journal-compact-min-files and journal-compact-percentage like
// server's file store (they ran with Artemis's defaults whatever the
// configuration said).
func TestFencedStoreCompactionSettings(t *testing.T) {
	cfg := config.Default()
	cfg.ApplyDataDir(filepath.Join(t.TempDir(), "data"))
	cfg.Journal.Type, cfg.Journal.Backend = "NIO", aio.NIO
	cfg.Journal.CompactMinFiles, cfg.Journal.CompactPercentage = 4, 55
	st, err := openFencedFileStore(cfg, server.StoreOptions{Logger: slog.New(slog.DiscardHandler)}, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer st.Messages.Close()
	defer st.Bindings.Close()
	for name, j := range map[string]journal.Journal{"messages": st.Messages, "bindings": st.Bindings} {
		o := j.(*journal.FileJournal).Options()
		if o.CompactMinFiles != 4 || o.CompactPercentage != 55 {
			t.Errorf("the %s journal runs with CompactMinFiles %d, CompactPercentage %d; want 4, 55", name, o.CompactMinFiles, o.CompactPercentage)
		}
	}
}
