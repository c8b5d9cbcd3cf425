package journal

import (
	"hash/crc32"
	"sync"
)

// CRC32C arithmetic for checking a record's checksum at the end of its
// bytes without keeping them (see scanner.ahead in replay.go).
//
// crc32.Update(c, castagnoli, d) is ^raw(^c, d), where raw is the
// register update without the inversions. raw is linear over GF(2):
// raw(r, d) = shift(r, len(d)) ^ raw(0, d), with shift(r, n) the register
// after n zero bytes, itself a linear map of r (r times x^(8n) modulo the
// polynomial). So with Q(i) = raw(0, b[o:i]) for a fixed origin o, the
// checksum of b[s:e] seeded with seed is
//
//	^(Q(e) ^ shift(^seed ^ Q(s), e-s))
//
// and a stored checksum crc matches exactly when
//
//	Q(e) == ^crc ^ shift(^seed ^ Q(s), e-s)
//
// whose right side is known at s. A scan that keeps the running Q can then
// test, when it reaches e, every candidate record whose bytes end there,
// however many overlap: each byte is checksummed once.

// shiftTables[k] applies shift by 2^k bytes, a byte of the input at a
// time: shift(v, 2^k) = t[0][v&255] ^ t[1][v>>8&255] ^ t[2][v>>16&255] ^
// t[3][v>>24].
var shiftTables = sync.OnceValue(func() *[32][4][256]uint32 {
	var t [32][4][256]uint32
	tab := castagnoli
	// k = 0: one zero byte.
	for j := range 4 {
		for b := range 256 {
			r := uint32(b) << (8 * j)
			t[0][j][b] = tab[byte(r)] ^ r>>8
		}
	}
	for k := 1; k < 32; k++ {
		for j := range 4 {
			for b := range 256 {
				v := applyShift(&t[k-1], uint32(b)<<(8*j))
				t[k][j][b] = applyShift(&t[k-1], v)
			}
		}
	}
	return &t
})

func applyShift(t *[4][256]uint32, v uint32) uint32 {
	return t[0][v&255] ^ t[1][v>>8&255] ^ t[2][v>>16&255] ^ t[3][v>>24]
}

// crcShift returns the CRC32C register r after n zero bytes (without the
// inversions of crc32.Update).
func crcShift(r uint32, n int64) uint32 {
	t := shiftTables()
	for k := 0; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			r = applyShift(&t[k], r)
		}
	}
	return r
}

// crcRaw advances the register r (no inversions) over b.
func crcRaw(r uint32, b []byte) uint32 { return ^crc32.Update(^r, castagnoli, b) }
