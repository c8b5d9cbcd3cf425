package lockfile

import "testing"

// BenchmarkVerify measures one lease verification of the live (lock query,
// two stats, a locked read of server.lock, a heartbeat write and fsync):
// the monitor's cost per check interval.
//
//	go test -run '^$' -bench Verify -benchtime 2s ./lockfile/
func BenchmarkVerify(b *testing.B) {
	m, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if ok, err := m.TryAcquirePrimary(); !ok || err != nil {
		b.Fatal(ok, err)
	}
	e, err := m.BumpEpoch(StateActive)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Verify(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBumpEpoch measures taking a new epoch (locked read, write,
// fsync of the file and of the directory).
func BenchmarkBumpEpoch(b *testing.B) {
	m, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if ok, err := m.TryAcquirePrimary(); !ok || err != nil {
		b.Fatal(ok, err)
	}
	for b.Loop() {
		if _, err := m.BumpEpoch(StateActive); err != nil {
			b.Fatal(err)
		}
	}
}
