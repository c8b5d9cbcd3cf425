package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to the parser: it must never panic,
// must return either a Config or an error, and every error must name a
// line; an accepted configuration passes checkEffective (every number in
// its element's range, the journal's disk bounded).
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/seed/*.xml")
	examples, _ := filepath.Glob("../etc/examples/*.xml")
	for _, p := range append(seeds, examples...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(core(`<journal-file-size>10MiB</journal-file-size>`, `<acceptors><acceptor name="a">tcp://[::1]:1?x=y</acceptor></acceptors>`)))
	f.Add([]byte("<configuration><core><ha-policy><replication><primary><manager><properties><property key=\"session-ms\" value=\"-1\"/></properties></manager></primary></replication></ha-policy></core></configuration>"))
	f.Add([]byte("<configuration><core></x/></core></configuration>"))
	f.Add([]byte(core(`<journal-file-size>1G</journal-file-size>`, `<journal-min-files>256</journal-min-files>`, `<journal-pool-files>1000</journal-pool-files>`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _, err := Parse("f.xml", strings.NewReader(string(b)))
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c != nil, err)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		checkEffective(t, c)
	})
}
