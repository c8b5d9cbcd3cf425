package ha

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/lockfile"
)

// TestQuorumStateFile: a new lock directory gets a voter with a random ID,
// written before LoadQuorumState returns; a saved register loads back as
// it was; every damaged byte, a truncation and a wrong version are
// refused with the file and offset named (a voter never guesses what it
// promised).
func TestQuorumStateFile(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadQuorumState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Voter == 0 {
		t.Fatal("a new voter has ID 0")
	}
	again, err := LoadQuorumState(dir)
	if err != nil || again.Voter != s.Voter {
		t.Fatalf("reloaded voter %v (%v), want %v: the new voter was not persisted", again.Voter, err, s.Voter)
	}
	id := lockfile.NodeID{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	s.Register[id] = QEntry{Seq: 7, Owner: 42, From: 6, Leased: 7, LeasedOwner: 42}
	s.Members[9] = QMember{Voter: 9, URL: "tcp://h:1", NodeID: id.String(), Group: "g", Role: "backup"}
	if err := SaveQuorumState(dir, s); err != nil {
		t.Fatal(err)
	}
	got, err := LoadQuorumState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("loaded %+v, want %+v", got, s)
	}

	good, err := os.ReadFile(QuorumStatePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x40
		if _, err := DecodeQuorumState("state", b); err == nil || !strings.Contains(err.Error(), "state at offset") {
			t.Fatalf("byte %d flipped: %v, want an error naming the file and offset", i, err)
		}
	}
	for _, n := range []int{0, 4, 12, len(good) - 1} {
		if _, err := DecodeQuorumState("state", good[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	if err := os.WriteFile(QuorumStatePath(dir), good[:len(good)-2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadQuorumState(dir); err == nil || !strings.Contains(err.Error(), QuorumStatePath(dir)) {
		t.Fatalf("a damaged state file: %v, want a refusal naming %s", err, QuorumStatePath(dir))
	}
}
