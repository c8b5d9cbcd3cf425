package jdbcstore

import (
	"testing"

	"github.com/tandemmq/tandem/journal"
)

// FuzzReplayRows feeds the row replayer arbitrary rows, in sequence order,
// as a table changed by hand could hold them: replay must not panic, must
// report a bad checksum or kind as a CorruptionError naming the row, and
// must return each live record once.
func FuzzReplayRows(f *testing.F) {
	f.Add([]byte{1, 1, 0, 1, 2, 1, 0, 1, 3, 1, 0, 1}, false)
	f.Add([]byte{4, 2, 7, 1, 7, 0, 7, 0, 8, 0, 7, 0, 5, 2, 8, 1}, false)
	f.Add([]byte{4, 2, 7, 1, 9, 0, 7, 0, 1, 3, 0, 0}, true)
	f.Fuzz(func(t *testing.T, in []byte, badCRC bool) {
		p := newReplayer("fuzz")
		var seq int64
		for i := 0; i+3 < len(in); i += 4 {
			seq++
			r := row{seq: seq, kind: journal.Kind(in[i] % 11), id: uint64(in[i+1] % 5), txID: uint64(in[i+2] % 3), userType: in[i+3], data: in[i : i+1+int(in[i+3]%3)], epoch: uint64(in[i+3] % 2)}
			crc := int64(r.sum())
			if badCRC && i == 4 {
				crc ^= 1
			}
			err := p.add(r, crc)
			wantBad := (badCRC && i == 4) || !r.kind.Valid()
			if wantBad {
				ce, ok := err.(*journal.CorruptionError)
				if !ok || ce.File != "fuzz" || ce.Offset != seq {
					t.Fatalf("row %d (%+v): got %v, want a CorruptionError naming it", seq, r, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("row %d: %v", seq, err)
			}
		}
		_, res, _, _ := p.finish()
		seen := map[uint64]bool{}
		for _, r := range res.Records {
			if seen[r.ID] {
				t.Fatalf("record %d returned twice", r.ID)
			}
			seen[r.ID] = true
		}
	})
}
