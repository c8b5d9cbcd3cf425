package journal_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/journal/journaltest"
)

func TestMemoryConformance(t *testing.T) {
	stores := map[*testing.T]*journal.MemoryStore{}
	journaltest.Run(t, func(t *testing.T, reopen bool) journal.Journal {
		s := stores[t]
		if !reopen || s == nil {
			s = journal.NewMemoryStore()
			stores[t] = s
		}
		return s.Open()
	})
}

func TestMemoryFail(t *testing.T) {
	j := journal.NewMemory()
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	j.Fail(boom)
	select {
	case <-j.Failed():
	default:
		t.Fatal("Failed not closed after Fail")
	}
	if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 1}}, true, func(error) { t.Error("done called") }); !errors.Is(err, boom) {
		t.Fatalf("append after Fail: %v", err)
	}
	if !errors.Is(j.Err(), boom) {
		t.Fatalf("Err: %v", j.Err())
	}
	_ = j.Close()
}
