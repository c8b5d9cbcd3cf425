package journal

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkValidatorQueue measures the validator on a queue in steady
// state: live records, then per op one add of a new ID and one delete of
// the oldest (a send and an ack), each its own apply as the broker
// appends them. ns/op is per add + delete pair.
func BenchmarkValidatorQueue(b *testing.B) {
	for _, live := range []int{1000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			v := newValidator()
			data := make([]byte, 100)
			add := []Entry{{Kind: KindAdd, Data: data}}
			del := []Entry{{Kind: KindDelete}}
			for id := 1; id <= live; id++ {
				add[0].ID = uint64(id)
				if err := v.apply(add, 1); err != nil {
					b.Fatal(err)
				}
			}
			next, oldest := uint64(live+1), uint64(1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				add[0].ID = next
				next++
				if err := v.apply(add, 1); err != nil {
					b.Fatal(err)
				}
				del[0].ID = oldest
				oldest++
				if err := v.apply(del, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidatorRandomAck is BenchmarkValidatorQueue with deletes of
// random live records (acks out of order, several consumers), and an
// update of a random live record per op.
func BenchmarkValidatorRandomAck(b *testing.B) {
	for _, live := range []int{1000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			v := newValidator()
			data := make([]byte, 100)
			add := []Entry{{Kind: KindAdd, Data: data}}
			upd := []Entry{{Kind: KindUpdate, Data: data[:8]}}
			del := []Entry{{Kind: KindDelete}}
			ids := make([]uint64, 0, live)
			for id := 1; id <= live; id++ {
				add[0].ID = uint64(id)
				if err := v.apply(add, 1); err != nil {
					b.Fatal(err)
				}
				ids = append(ids, uint64(id))
			}
			r := rand.New(rand.NewPCG(1, 2))
			next := uint64(live + 1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				add[0].ID = next
				if err := v.apply(add, 1); err != nil {
					b.Fatal(err)
				}
				upd[0].ID = ids[r.IntN(len(ids))]
				if err := v.apply(upd, 1); err != nil {
					b.Fatal(err)
				}
				i := r.IntN(len(ids))
				del[0].ID = ids[i]
				ids[i] = next
				next++
				if err := v.apply(del, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
