package testenv

import (
	"testing"
	"time"
)

// TestEnsembleKillRestart: a private ensemble serves, loses its quorum when
// two of three nodes die, and serves again when they return.
func TestEnsembleKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three JVMs")
	}
	e := StartEnsemble(t, 3)
	e.Kill(0)
	e.Kill(1)
	deadline := time.Now().Add(30 * time.Second)
	for e.Mode(2) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("the last node still serves (%s) without a quorum", e.Mode(2))
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.Start(0)
	e.Start(1)
	e.WaitQuorum(60 * time.Second)
	if e.Connect() == "" {
		t.Fatal("no connect string")
	}
}
