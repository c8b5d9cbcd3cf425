package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Discovery announcements (issue 19): a broker with a <broadcast-group>
// sends one UDP datagram every broadcast-period to the group's address and
// port; a broker with a <discovery-group> listens there and keeps, per
// node ID, the connectors announced until refresh-timeout passes without
// a new announcement. The datagram:
//
//	offset size field
//	0      4    magic "TDA1"
//	4      1    version (AnnouncementVersion)
//	5      n    node ID str, name str, group str, list of connector URL str
//	5+n    4    CRC32C (Castagnoli) of bytes [0, 5+n)
//
// "str" is a uvarint length and the bytes, "list" a uvarint count. A
// datagram is at most MaxAnnouncement bytes. ParseAnnouncement refuses
// anything else (another magic, a newer version, a bad CRC, trailing
// bytes), never panics, and names the offset.

// AnnouncementVersion is the announcement format this package writes.
const AnnouncementVersion = 1

// MaxAnnouncement is the largest announcement datagram.
const MaxAnnouncement = 8 << 10

var announcementMagic = [4]byte{'T', 'D', 'A', '1'}

// Announcement is one broker's discovery datagram.
type Announcement struct {
	NodeID     string
	Name       string
	Group      string   // its group name ("" = none)
	Connectors []string // tcp://host:port URLs of the broadcast group's connectors
}

// ErrAnnouncement is wrapped by every error of ParseAnnouncement.
var ErrAnnouncement = errors.New("wire: bad discovery announcement")

// AppendAnnouncement appends a's datagram to dst.
func AppendAnnouncement(dst []byte, a *Announcement) ([]byte, error) {
	start := len(dst)
	b := append(dst, announcementMagic[:]...)
	b = append(b, AnnouncementVersion)
	b = appendStr(b, a.NodeID)
	b = appendStr(b, a.Name)
	b = appendStr(b, a.Group)
	b = appendCount(b, len(a.Connectors))
	for _, c := range a.Connectors {
		b = appendStr(b, c)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	if len(b)-start > MaxAnnouncement {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrAnnouncement, len(b)-start, MaxAnnouncement)
	}
	return b, nil
}

// ParseAnnouncement decodes a datagram AppendAnnouncement wrote.
func ParseAnnouncement(p []byte) (*Announcement, error) {
	bad := func(off int, why string) error {
		return fmt.Errorf("%w: offset %d: %s", ErrAnnouncement, off, why)
	}
	if len(p) > MaxAnnouncement {
		return nil, bad(0, fmt.Sprintf("%d bytes, limit %d", len(p), MaxAnnouncement))
	}
	if len(p) < 4+1+4 {
		return nil, bad(0, fmt.Sprintf("%d bytes: too short", len(p)))
	}
	if [4]byte(p[:4]) != announcementMagic {
		return nil, bad(0, "not a Tandem announcement (magic)")
	}
	if v := p[4]; v != AnnouncementVersion {
		return nil, bad(4, fmt.Sprintf("version %d, this broker reads %d", v, AnnouncementVersion))
	}
	body := p[:len(p)-4]
	if want, got := binary.BigEndian.Uint32(p[len(p)-4:]), crc32.Checksum(body, castagnoli); want != got {
		return nil, bad(len(p)-4, fmt.Sprintf("CRC %08x, computed %08x", want, got))
	}
	r := reader{b: body, off: 5}
	a := &Announcement{}
	a.NodeID = r.str("node ID")
	a.Name = r.str("name")
	a.Group = r.str("group")
	n := r.count("connector count", 1)
	for i := 0; i < n && r.err == nil; i++ {
		a.Connectors = append(a.Connectors, r.str("connector"))
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAnnouncement, r.err)
	}
	return a, nil
}
