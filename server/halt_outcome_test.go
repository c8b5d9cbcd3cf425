package server

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// syncFailJournal stores every append (the write reached storage) but,
// once armed, reports an error to its callback: a failed fdatasync after a
// successful write, whose record a backup taking over the shared store
// then reads.
type syncFailJournal struct {
	*journal.Memory
	armed atomic.Bool
}

var errSyncEIO = errors.New("fdatasync: input/output error (injected)")

func (j *syncFailJournal) Append(entries []journal.Entry, sync bool, done func(error)) error {
	if !j.armed.Load() {
		return j.Memory.Append(entries, sync, done)
	}
	return j.Memory.Append(entries, sync, func(error) { done(errSyncEIO) })
}

// TestStorageFailureOutcomeUnknown: a send, an ack and a commit whose
// journal write landed but whose sync failed are reported as ErrHalted
// (CodeUnavailable: unknown outcome, the client resends a send with its
// duplicate ID and reports an ack as ErrUnknownOutcome), not as a definite
// failure. Reported as CodeInternal, a consumer took a failed ack for "not
// acknowledged, it comes again" while the backup replayed the ack
// (TestHAStorageFaults/journal-eio: one message lost).
func TestStorageFailureOutcomeUnknown(t *testing.T) {
	for _, op := range []string{"send", "ack", "commit"} {
		t.Run(op, func(t *testing.T) {
			ms, bs := journal.NewMemoryStore(), journal.NewMemoryStore()
			mj := &syncFailJournal{Memory: ms.Open()}
			bj := bs.Open()
			s := New(Options{Messages: mj, Bindings: bj, Logger: slog.New(slog.DiscardHandler)})
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(); mj.Close(); bj.Close() })
			ss := s.NewSession(op == "commit")
			col := newCollector()
			if op == "ack" {
				mustSend(t, ss, queueDest("q"), msg("m", true))
				ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
			}
			var d Delivery
			if op == "ack" {
				d = col.wait(t, 1)[0]
			}
			mj.armed.Store(true)
			var err error
			switch op {
			case "send":
				err = sendSync(t, ss, queueDest("q"), msg("m", true))
			case "ack":
				err = ackSync(t, ss, d)
			case "commit":
				if err := sendSync(t, ss, queueDest("q"), msg("m", true)); err != nil {
					t.Fatalf("send in the transaction: %v", err)
				}
				err = commitSync(t, ss)
			}
			if !errors.Is(err, ErrHalted) || !errors.Is(err, errSyncEIO) {
				t.Fatalf("%s whose sync failed: %v, want ErrHalted wrapping the storage error", op, err)
			}
			if c := codeOf(err); c != wire.CodeUnavailable {
				t.Fatalf("%s whose sync failed answers code %v, want CodeUnavailable", op, c)
			}
			if !errors.Is(s.Halted(), ErrHalted) {
				t.Fatalf("Halted() = %v", s.Halted())
			}
		})
	}
}
