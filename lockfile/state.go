package lockfile

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"time"
)

// State is the activation state letter in server.lock.
type State byte

// The state letters, as Artemis writes them.
const (
	// StateActive ('L') means a live broker serves from the store, or did
	// when it died: a backup that gets the primary lock activates.
	StateActive State = 'L'
	// StateFailingBack ('F') means a primary is starting and wants the
	// store back: an active backup with allow-failback hands over.
	StateFailingBack State = 'F'
	// StatePaused ('P') means the live stopped cleanly without failover:
	// the backup stays passive.
	StatePaused State = 'P'
	// StateNotStarted ('N') means no broker has served yet.
	StateNotStarted State = 'N'
	// StateFirstStart ('0') is the state of a freshly created file.
	StateFirstStart State = '0'
)

// Valid reports whether s is one of the five state letters.
func (s State) Valid() bool {
	switch s {
	case StateActive, StateFailingBack, StatePaused, StateNotStarted, StateFirstStart:
		return true
	}
	return false
}

// String returns the letter and its meaning, such as "L(active)".
func (s State) String() string {
	name := "invalid"
	switch s {
	case StateActive:
		name = "active"
	case StateFailingBack:
		name = "failing-back"
	case StatePaused:
		name = "paused"
	case StateNotStarted:
		name = "not-started"
	case StateFirstStart:
		name = "first-start"
	}
	if s >= 0x20 && s < 0x7f {
		return fmt.Sprintf("%c(%s)", byte(s), name)
	}
	return fmt.Sprintf("0x%02x(%s)", byte(s), name)
}

// NodeID is the 16-byte identity shared by a primary and its backups.
type NodeID [16]byte

// NewNodeID returns a random (version 4) UUID.
func NewNodeID() (NodeID, error) {
	var id NodeID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("lockfile: random node ID: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id, nil
}

// IsZero reports whether the ID is unset.
func (id NodeID) IsZero() bool { return id == NodeID{} }

// String formats the ID as a UUID (8-4-4-4-12 hex digits).
func (id NodeID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], id[10:16])
	return string(b[:])
}

// Record is the content of server.lock.
type Record struct {
	State     State
	NodeID    NodeID
	Epoch     uint64
	Heartbeat time.Time // wall clock of the last write; informational
	Seq       uint64    // write sequence, +1 on every write
}

// Format constants of server.lock (see the package documentation).
const (
	RecordSize    = 52
	FormatVersion = 1
	magic         = "TND"
	crcOffset     = 48
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the 52-byte on-disk form of r.
func (r Record) Encode() []byte {
	b := make([]byte, RecordSize)
	b[0] = byte(r.State)
	copy(b[1:4], magic)
	binary.BigEndian.PutUint16(b[4:6], FormatVersion)
	copy(b[8:24], r.NodeID[:])
	binary.BigEndian.PutUint64(b[24:32], r.Epoch)
	var hb int64
	if !r.Heartbeat.IsZero() {
		hb = r.Heartbeat.UnixNano()
	}
	binary.BigEndian.PutUint64(b[32:40], uint64(hb))
	binary.BigEndian.PutUint64(b[40:48], r.Seq)
	binary.BigEndian.PutUint32(b[crcOffset:], crc32.Checksum(b[:crcOffset], castagnoli))
	return b
}

// FormatError reports a server.lock that is not a valid record.
type FormatError struct {
	File   string
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("lockfile: %s: offset %d: %s", e.File, e.Offset, e.Reason)
}

// DecodeRecord parses the content of server.lock. An empty input is a fresh
// file: it returns a Record in StateFirstStart with a zero node ID. file
// names the source in errors.
func DecodeRecord(file string, b []byte) (Record, error) {
	if len(b) == 0 {
		return Record{State: StateFirstStart}, nil
	}
	if len(b) != RecordSize {
		return Record{}, &FormatError{File: file, Offset: int64(min(len(b), RecordSize)), Reason: fmt.Sprintf("length %d, want %d", len(b), RecordSize)}
	}
	if string(b[1:4]) != magic {
		return Record{}, &FormatError{File: file, Offset: 1, Reason: fmt.Sprintf("bad magic %q", b[1:4])}
	}
	if v := binary.BigEndian.Uint16(b[4:6]); v != FormatVersion {
		return Record{}, &FormatError{File: file, Offset: 4, Reason: fmt.Sprintf("unknown format version %d", v)}
	}
	want := binary.BigEndian.Uint32(b[crcOffset:])
	if got := crc32.Checksum(b[:crcOffset], castagnoli); got != want {
		return Record{}, &FormatError{File: file, Offset: crcOffset, Reason: fmt.Sprintf("CRC mismatch: stored %08x, computed %08x", want, got)}
	}
	if b[6] != 0 || b[7] != 0 {
		return Record{}, &FormatError{File: file, Offset: 6, Reason: "reserved bytes not zero"}
	}
	r := Record{State: State(b[0])}
	if !r.State.Valid() {
		return Record{}, &FormatError{File: file, Offset: 0, Reason: fmt.Sprintf("unknown state %s", r.State)}
	}
	copy(r.NodeID[:], b[8:24])
	r.Epoch = binary.BigEndian.Uint64(b[24:32])
	if hb := int64(binary.BigEndian.Uint64(b[32:40])); hb != 0 {
		r.Heartbeat = time.Unix(0, hb)
	}
	r.Seq = binary.BigEndian.Uint64(b[40:48])
	return r, nil
}
