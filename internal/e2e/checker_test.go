package e2e

import (
	"errors"
	"testing"
)

func TestLedgerClassification(t *testing.T) {
	l := NewLedger()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		l.Sent(id)
	}
	l.SendDone("a", nil)
	l.SendDone("b", nil)
	l.SendDone("c", errors.New("connection lost"))
	l.SendDone("d", errors.New("connection lost"))
	l.SendDone("e", nil)
	l.Consumed("a")
	l.Consumed("c") // recovered
	l.Consumed("e")
	l.Consumed("e")     // duplicated
	l.Consumed("ghost") // unexpected
	r := l.Check()
	want := Report{Sent: 5, Acked: 3, Consumed: 4, Lost: []string{"b"}, Unexpected: []string{"ghost"},
		Duplicated: []string{"e"}, Recovered: []string{"c"}}
	if r.String() != want.String() || r.OK() {
		t.Fatalf("got %v\nwant %v", r, want)
	}
	if u := l.Unknown(); len(u) != 2 || u[0] != "c" || u[1] != "d" {
		t.Fatalf("unknown %v", u)
	}
}
