package wire

import (
	"encoding/binary"
	"hash/crc32"
)

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// fixCRC recomputes the trailing CRC of one whole frame.
func fixCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[len(b)-4:], crcOf(b[:len(b)-4]))
	return b
}
