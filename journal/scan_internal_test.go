package journal

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCRCShift: crcShift is the register after that many zero bytes, and
// the check of a candidate at its end (crcshift.go) agrees with its
// checksum computed directly.
func TestCRCShift(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		r := rng.Uint32()
		n := int64(rng.IntN(5000))
		if i < 20 {
			n = int64(1) << (i % 14)
		}
		if got, want := crcShift(r, n), crcRaw(r, make([]byte, n)); got != want {
			t.Fatalf("crcShift(%08x, %d) = %08x, want %08x", r, n, got, want)
		}
	}
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	seed := recordSeed(5, 77)
	for range 200 {
		o := rng.IntN(1000)
		s := o + rng.IntN(1000)
		e := s + rng.IntN(2000)
		q := func(i int) uint32 { return crcRaw(0, buf[o:i]) }
		stored := crcUpdate(seed, buf[s:e])
		want := ^stored ^ crcShift(^seed^q(s), int64(e-s))
		if q(e) != want {
			t.Fatalf("origin %d, range [%d, %d): the running checksum does not match the record's", o, s, e)
		}
		if q(e) == ^(stored^1)^crcShift(^seed^q(s), int64(e-s)) {
			t.Fatal("a wrong checksum matched")
		}
	}
}

// bruteAhead is the search as it once was: try every offset in turn,
// checksum each plausible candidate over its whole length, skip past a
// valid one (quadratic on overlapping candidates).
func bruteAhead(buf []byte, from int, seed uint32) []int64 {
	var out []int64
	for c := from; c+RecordHeaderSize <= len(buf); {
		h, err := decodeRecord(buf[c:], c, seed)
		if err != nil {
			c++
			continue
		}
		out = append(out, int64(c))
		c += RecordHeaderSize + h.crcLen()
	}
	return out
}

// TestAheadFindsWhatBruteForceFinds: on random segments (valid records of
// every kind among garbage, zeros, fake headers claiming long and short
// payloads, and records of another segment), the linear search finds the
// valid records trying every offset finds; with few waiting candidates
// allowed, what it finds is a subset and it says it missed some.
func TestAheadFindsWhatBruteForceFinds(t *testing.T) {
	seed, other := recordSeed(3, 42), recordSeed(2, 42)
	defer func(n int) { maxPending = n }(maxPending)
	for it := range 400 {
		rng := rand.New(rand.NewPCG(uint64(it), 7))
		n := 512 + rng.IntN(16<<10)
		buf := make([]byte, n)
		for p := 64; p < n-16; {
			k := rng.IntN(10)
			switch {
			case k < 3: // a valid record of this segment
				var rec []byte
				switch rng.IntN(4) {
				case 0:
					rec = make([]byte, RecordHeaderSize+rng.IntN(64))
					encodePad(rec, seed)
				case 1:
					rec = make([]byte, RecordHeaderSize)
					encodeSeal(rec, uint32(rng.IntN(p+1)), seed)
				default:
					data := make([]byte, rng.IntN(300))
					for i := range data {
						data[i] = byte(rng.IntN(4)) // small values: plausible headers inside
					}
					rec = encodeForTest([]Entry{{Kind: KindAdd, ID: uint64(p), Data: data}}, uint32(rng.IntN(p+1)), seed)
				}
				if p+len(rec) > n {
					p = n
					continue
				}
				p += copy(buf[p:], rec)
			case k < 4: // a record of another segment
				p += copy(buf[p:], encodeForTest([]Entry{{Kind: KindDelete, ID: 9}}, 0, other))
			case k < 6: // a fake header, long or short
				var h [RecordHeaderSize]byte
				binary.LittleEndian.PutUint32(h[0:], rng.Uint32())
				binary.LittleEndian.PutUint32(h[4:], uint32(rng.IntN(n-p)))
				h[12] = byte(1 + rng.IntN(3))
				p += copy(buf[p:], h[:])
			case k < 8: // garbage
				for range rng.IntN(100) {
					if p < n {
						buf[p] = byte(rng.Uint32())
						p++
					}
				}
			default: // zeros
				p += rng.IntN(200)
			}
		}
		from := 64 + rng.IntN(32)
		want := bruteAhead(buf, from, seed)
		for _, limit := range []int{1 << 20, 2} {
			maxPending = limit
			var got []int64
			sc := newScanner(false)
			res, err := sc.ahead(bytes.NewReader(buf), "seg", int64(from), int64(n), seed, func(off int64, _ recHeader) bool {
				got = append(got, off)
				return false
			})
			if err != nil {
				t.Fatal(err)
			}
			checkScanBudget(t, sc.work, int64(n))
			if limit > len(buf) {
				if !slices.Equal(got, want) || res.unchecked != 0 || res.found != (len(want) > 0) {
					t.Fatalf("segment %d: found %v, trying every offset finds %v", it, got, want)
				}
				continue
			}
			for _, off := range got {
				if !slices.Contains(want, off) {
					t.Fatalf("segment %d, %d waiting at most: found %d, which trying every offset does not", it, limit, off)
				}
			}
			if len(got) < len(want) && res.unchecked == 0 {
				t.Fatalf("segment %d, %d waiting at most: found %d of %d valid records without saying it missed any", it, limit, len(got), len(want))
			}
		}
	}
}
