package journal

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/tandemmq/tandem/aio"
)

// BenchmarkReplay measures replay (read, decode, apply, build the
// LoadResult) of a 64 MiB journal of records of the given size, a quarter
// of them updated and an eighth deleted. MB/s is segment bytes per second.
func BenchmarkReplay(b *testing.B) {
	for _, size := range []int{256, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			dir := b.TempDir()
			fs := aio.OS(aio.NIO, aio.DefaultOptions())
			j, err := Open(Options{Dir: dir, FS: fs, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := j.Load(context.Background()); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, size)
			n := (64 << 20) / (size + 20)
			var wg sync.WaitGroup
			wg.Add(n)
			for i := range n {
				entries := []Entry{{Kind: KindAdd, ID: uint64(i + 1), Data: data}}
				if i%4 == 3 {
					entries = append(entries, Entry{Kind: KindUpdate, ID: uint64(i), Data: data[:8]})
				}
				if i%8 == 7 {
					entries = append(entries, Entry{Kind: KindDelete, ID: uint64(i - 5)})
				}
				if err := j.Append(entries, false, func(error) { wg.Done() }); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			j.Close()
			nm := Naming{Prefix: DefaultPrefix, Ext: DefaultExt}
			b.ReportAllocs()
			b.ResetTimer()
			var bytes int64
			for range b.N {
				sr, res, _, _, err := replay(fs, dir, nm)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Records) == 0 {
					b.Fatal("no records")
				}
				bytes = sr.Bytes
			}
			b.SetBytes(bytes)
		})
	}
}
