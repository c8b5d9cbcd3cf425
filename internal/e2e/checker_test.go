package e2e

import (
	"errors"
	"testing"
)

func TestLedgerClassification(t *testing.T) {
	l := NewLedger()
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		l.Sent(id)
	}
	for _, id := range []string{"a", "b", "e", "f"} {
		l.SendDone(id, nil)
	}
	l.SendDone("c", errors.New("connection lost"))
	l.SendDone("d", errors.New("connection lost"))
	// c: outcome unknown, then delivered (recovered); e: delivered again
	// after its ack was confirmed (duplicated); ghost: never sent
	// (unexpected); f: delivered, ack outcome unknown (not lost); b: lost.
	for _, id := range []string{"a", "c", "e", "e", "ghost", "f"} {
		l.Received(id)
		if id != "f" {
			l.Consumed(id)
		}
	}
	r := l.Check()
	want := Report{Sent: 6, Acked: 4, Received: 5, Consumed: 4, Lost: []string{"b"}, Unexpected: []string{"ghost"},
		Duplicated: []string{"e"}, Recovered: []string{"c"}}
	if r.String() != want.String() || r.OK() {
		t.Fatalf("got %v\nwant %v", r, want)
	}
	if u := l.Unknown(); len(u) != 2 || u[0] != "c" || u[1] != "d" {
		t.Fatalf("unknown %v", u)
	}
}
