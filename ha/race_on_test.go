//go:build race

package ha

// raceEnabled: the race detector slows the explorations about sevenfold;
// only the smaller ones run under it.
const raceEnabled = true
