package replication_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"testing"

	"github.com/tandemmq/tandem/internal/testcerts"
	"github.com/tandemmq/tandem/replication"
	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// serveTLS serves l's replication on a TLS listener of its own and returns
// its URL.
func serveTLS(t *testing.T, l *live, sc *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				h, f, err := wire.NewDecoder(br).Read()
				if err != nil {
					return
				}
				l.src.Serve(nc, br, f.(*wire.Hello), h.Corr)
			}()
		}
	}()
	// Before startLive's cleanup (registered earlier, run later) closes
	// the source.
	t.Cleanup(func() { ln.Close(); l.src.Close(); wg.Wait() })
	return "tcp://" + ln.Addr().String()
}

// TestReplicationOverTLS: a replica whose TLS trusts the live's
// certificate syncs over TLS; one that does not trust it never starts a
// sync and says why.
func TestReplicationOverTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "repl")
	other := testcerts.NewCA(t, "other")
	srv := ca.Issue(t, "live", testcerts.Options{})
	sp, _ := tlsconfig.FromParams(map[string]string{"sslEnabled": "true", "keyStorePath": srv.File})
	sc, err := sp.Server()
	if err != nil {
		t.Fatal(err)
	}
	l := startLive(t, replication.SourceOptions{Group: "g"})
	url := serveTLS(t, l, sc)
	ctx := context.Background()
	for id := uint64(1); id <= 50; id++ {
		if err := l.send(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	client := func(trust string) *tls.Config {
		cp, _ := tlsconfig.FromParams(map[string]string{"sslEnabled": "true", "trustStorePath": trust})
		cc, err := cp.Client()
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}

	bad := startReplica(t, url, func(o *replication.ReplicaOptions) { o.TLS = client(other.File) })
	<-bad.done
	if bad.err == nil || !strings.Contains(bad.err.Error(), "TLS handshake with the live") || !strings.Contains(bad.err.Error(), "unknown authority") {
		t.Errorf("untrusted live: %v", bad.err)
	}
	if len(bad.sets) != 0 {
		t.Error("a replica that does not trust the live started a sync")
	}

	rp := startReplica(t, url, func(o *replication.ReplicaOptions) { o.TLS = client(ca.File) })
	wait(t, l.synced, "BackupSynced over TLS")
	if err := l.send(ctx, 51); err != nil {
		t.Fatal(err)
	}
	if ids := rp.load(t); !ids[1] || !ids[51] {
		t.Fatalf("the replica's copy over TLS lacks records: %v", len(ids))
	}
}
