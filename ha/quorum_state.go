package ha

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/tandemmq/tandem/lockfile"
)

// The voter's durable state: DIR/quorum/state, where DIR is the broker's
// lock directory (by default its journal directory; a subdirectory, so a
// replica setting its previous journal files aside leaves it alone).
//
//	offset size field
//	0      4    magic "TQVS"
//	4      1    format version (2; 1 is read too: no membership fields)
//	5      4    length n of the JSON that follows, big-endian
//	9      n    JSON: {"voter", "register": [{node, seq, owner, from,
//	            leased, leased_owner}], "members": [{voter, url, node,
//	            group, role, departed}], "membership_version", "out":
//	            [voter], "pending": {version, voter, depart}}
//	9+n    4    CRC32C (Castagnoli) of bytes [0, 9+n), big-endian
//
// It is replaced whole: written to state.tmp, fsynced, renamed over state,
// and the directory fsynced. Anything else in the file is refused with an
// error naming it: a voter must never guess what it promised.
const (
	quorumStateMagic   = "TQVS"
	quorumStateVersion = 2
	quorumStateDir     = "quorum"
	quorumStateFile    = "state"
)

// QMember is one broker of the cluster as a voter knows it.
type QMember struct {
	Voter    QuorumVoterID `json:"voter"`
	URL      string        `json:"url"`
	NodeID   string        `json:"node,omitempty"`
	Group    string        `json:"group,omitempty"`
	Role     string        `json:"role,omitempty"`
	Departed bool          `json:"departed,omitempty"`
}

// QuorumState is what a voter keeps on disk.
type QuorumState struct {
	Voter    QuorumVoterID
	Register map[lockfile.NodeID]QEntry
	Members  map[QuorumVoterID]QMember
	// View and Pending: the voter's membership (quorum_members.go).
	View    QView
	Pending *QChange
}

type qsEntryJSON struct {
	Node        string `json:"node"`
	Seq         uint64 `json:"seq"`
	Owner       uint64 `json:"owner"`
	From        uint64 `json:"from"`
	Leased      uint64 `json:"leased"`
	LeasedOwner uint64 `json:"leased_owner"`
}

type qsJSON struct {
	Voter    QuorumVoterID   `json:"voter"`
	Register []qsEntryJSON   `json:"register"`
	Members  []QMember       `json:"members"`
	MVersion uint64          `json:"membership_version,omitempty"`
	Out      []QuorumVoterID `json:"out,omitempty"`
	Pending  *qsChangeJSON   `json:"pending,omitempty"`
}

type qsChangeJSON struct {
	Version uint64        `json:"version"`
	Voter   QuorumVoterID `json:"voter"`
	Depart  bool          `json:"depart"`
}

// QuorumStatePath returns the state file's path for a lock directory.
func QuorumStatePath(lockDir string) string {
	return filepath.Join(lockDir, quorumStateDir, quorumStateFile)
}

// EncodeQuorumState returns the file's bytes.
func EncodeQuorumState(s QuorumState) []byte {
	j := qsJSON{Voter: s.Voter, Register: []qsEntryJSON{}, Members: []QMember{}, MVersion: s.View.Version, Out: s.View.Out}
	if p := s.Pending; p != nil {
		j.Pending = &qsChangeJSON{Version: p.Version, Voter: p.Voter, Depart: p.Depart}
	}
	for id, e := range s.Register {
		j.Register = append(j.Register, qsEntryJSON{Node: id.String(), Seq: e.Seq, Owner: e.Owner, From: e.From, Leased: e.Leased, LeasedOwner: e.LeasedOwner})
	}
	sort.Slice(j.Register, func(a, b int) bool { return j.Register[a].Node < j.Register[b].Node })
	for _, m := range s.Members {
		j.Members = append(j.Members, m)
	}
	sort.Slice(j.Members, func(a, b int) bool { return j.Members[a].Voter < j.Members[b].Voter })
	body, _ := json.Marshal(j)
	b := make([]byte, 0, 13+len(body))
	b = append(b, quorumStateMagic...)
	b = append(b, quorumStateVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoliZK))
}

// DecodeQuorumState parses the file's bytes; where names the file.
func DecodeQuorumState(where string, b []byte) (QuorumState, error) {
	bad := func(off int, why string) (QuorumState, error) {
		return QuorumState{}, fmt.Errorf("ha: quorum voter state %s at offset %d: %s (not written by Tandem, or damaged: a voter never guesses what it promised; see docs/ha-replication-quorum.md)", where, off, why)
	}
	if len(b) < 13 {
		return bad(0, fmt.Sprintf("%d bytes, too short", len(b)))
	}
	if string(b[:4]) != quorumStateMagic {
		return bad(0, fmt.Sprintf("magic %q, want %q", b[:4], quorumStateMagic))
	}
	if b[4] != quorumStateVersion && b[4] != 1 {
		return bad(4, fmt.Sprintf("format version %d, want 1 or %d", b[4], quorumStateVersion))
	}
	n := int(binary.BigEndian.Uint32(b[5:9]))
	if n != len(b)-13 {
		return bad(5, fmt.Sprintf("length %d, but the file holds %d bytes of JSON", n, len(b)-13))
	}
	if want, got := binary.BigEndian.Uint32(b[9+n:]), crc32.Checksum(b[:9+n], castagnoliZK); want != got {
		return bad(9+n, fmt.Sprintf("CRC mismatch: stored %08x, computed %08x", want, got))
	}
	var j qsJSON
	dec := json.NewDecoder(bytes.NewReader(b[9 : 9+n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return bad(9, err.Error())
	}
	if j.Voter == 0 {
		return bad(9, "voter ID 0")
	}
	s := QuorumState{Voter: j.Voter, Register: map[lockfile.NodeID]QEntry{}, Members: map[QuorumVoterID]QMember{},
		View: QView{Version: j.MVersion, Out: j.Out}}
	if b[4] == 1 && (j.MVersion != 0 || len(j.Out) > 0 || j.Pending != nil) {
		return bad(4, "format version 1 with membership fields")
	}
	if !slices.IsSorted(s.View.Out) || len(slices.Compact(slices.Clone(s.View.Out))) != len(s.View.Out) {
		return bad(9, "the voters out of the cluster are not sorted and distinct")
	}
	if p := j.Pending; p != nil {
		if p.Version != j.MVersion+1 || p.Voter == 0 {
			return bad(9, fmt.Sprintf("pending membership change at version %d of voter %x (membership version %d)", p.Version, uint64(p.Voter), j.MVersion))
		}
		s.Pending = &QChange{Version: p.Version, Voter: p.Voter, Depart: p.Depart}
	}
	for _, e := range j.Register {
		id, err := parseNodeID(e.Node)
		if err != nil {
			return bad(9, fmt.Sprintf("register node %q: %v", e.Node, err))
		}
		s.Register[id] = QEntry{Seq: e.Seq, Owner: e.Owner, From: e.From, Leased: e.Leased, LeasedOwner: e.LeasedOwner}
	}
	for _, m := range j.Members {
		if m.Voter == 0 {
			return bad(9, "member with voter ID 0")
		}
		s.Members[m.Voter] = m
	}
	return s, nil
}

// LoadQuorumState reads the state of lockDir; a missing file is a new
// voter (a random ID, written before it returns).
func LoadQuorumState(lockDir string) (QuorumState, error) {
	path := QuorumStatePath(lockDir)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		var r [8]byte
		id := QuorumVoterID(0)
		for id == 0 {
			if _, err := rand.Read(r[:]); err != nil {
				return QuorumState{}, err
			}
			id = QuorumVoterID(binary.BigEndian.Uint64(r[:]))
		}
		s := QuorumState{Voter: id, Register: map[lockfile.NodeID]QEntry{}, Members: map[QuorumVoterID]QMember{}}
		return s, SaveQuorumState(lockDir, s)
	case err != nil:
		return QuorumState{}, fmt.Errorf("ha: quorum voter state: %w", err)
	}
	return DecodeQuorumState(path, b)
}

// SaveQuorumState replaces the state of lockDir durably.
func SaveQuorumState(lockDir string, s QuorumState) error {
	dir := filepath.Join(lockDir, quorumStateDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ha: quorum voter state: %w", err)
	}
	path := filepath.Join(dir, quorumStateFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("ha: quorum voter state: %w", err)
	}
	if _, err := f.Write(EncodeQuorumState(s)); err != nil {
		f.Close()
		return fmt.Errorf("ha: quorum voter state: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ha: quorum voter state: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ha: quorum voter state: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ha: quorum voter state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ha: quorum voter state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ha: quorum voter state: fsync %s: %w", dir, err)
	}
	return nil
}

// parseNodeID reads a node ID in the UUID form NodeID.String writes.
func parseNodeID(s string) (lockfile.NodeID, error) {
	var id lockfile.NodeID
	h := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			h = append(h, s[i])
		}
	}
	if len(h) != 32 {
		return id, fmt.Errorf("node ID %q is not a UUID", s)
	}
	if _, err := hex.Decode(id[:], h); err != nil {
		return id, fmt.Errorf("node ID %q is not a UUID", s)
	}
	return id, nil
}
