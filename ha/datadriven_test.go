package ha

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output in testdata/*.txt")

// TestTranscripts runs the scripts in testdata/*.txt. Lines starting with
// "> " are commands; "#" lines and blank lines are comments; every other
// line is the output of the command above it: the actions the node asked
// for ("-> action") and its state ("= ..."). Run with -rewrite to
// regenerate the outputs after a deliberate change, and read the diff.
//
// Commands (times are Go durations):
//
//	config role=primary|backup coordinator=file-lock|db-lease failover-on-shutdown=B
//	       allow-failback=B restart-backup=B retry=D lease=D fence=D renew=D
//	       (without fence=, the file-lock fence is the lease plus FenceMargin)
//	start | tick [D] | advance D
//	done [ok=B] [state=L] [waiting=B] [epoch=N] [err=TEXT]   result of the pending operation
//	verified [state=L] [waiting=B] [epoch=N] [start=D]       a good verification (default: now, our epoch)
//
// waiting (default true) says whether a primary that wrote F holds the
// failback lock.
//
//	lost TEXT | storage-error TEXT | stop [failover=B] | peer role=R epoch=N active=B
//	can-ack [at=D] | may-write [at=D]
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runTranscript(string(b))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if *rewrite {
				if err := os.WriteFile(f, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(b) {
				t.Fatalf("%s: output differs (rerun with -rewrite and inspect the diff):\n%s", f, firstDiff(string(b), got))
			}
		})
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return ""
}

type transcript struct {
	n   *Node
	now time.Duration
	out strings.Builder
}

func runTranscript(src string) (string, error) {
	var tr transcript
	lines := strings.Split(strings.TrimRight(src, "\n"), "\n")
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, "> "):
			tr.out.WriteString(line + "\n")
			if err := tr.run(strings.Fields(line[2:])); err != nil {
				return "", fmt.Errorf("line %d: %q: %w", i+1, line, err)
			}
		case line == "" || strings.HasPrefix(line, "#"):
			tr.out.WriteString(line + "\n")
		}
	}
	return tr.out.String(), nil
}

func args(fs []string) map[string]string {
	m := map[string]string{}
	for _, f := range fs {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func (tr *transcript) run(f []string) error {
	if len(f) == 0 {
		return errors.New("empty command")
	}
	cmd, a := f[0], args(f[1:])
	dur := func(k string, def time.Duration) (time.Duration, error) {
		v, ok := a[k]
		if !ok {
			return def, nil
		}
		return time.ParseDuration(v)
	}
	boolean := func(k string, def bool) (bool, error) {
		v, ok := a[k]
		if !ok {
			return def, nil
		}
		return strconv.ParseBool(v)
	}
	if cmd == "config" {
		role := Primary
		if a["role"] == "backup" {
			role = Backup
		}
		coord := FileLock
		if a["coordinator"] == "db-lease" {
			coord = DBLease
		}
		c := DefaultConfig(role, coord)
		var err error
		for _, p := range []struct {
			k string
			b *bool
		}{{"failover-on-shutdown", &c.FailoverOnShutdown}, {"allow-failback", &c.AllowFailback}, {"restart-backup", &c.RestartBackup}} {
			if *p.b, err = boolean(p.k, *p.b); err != nil {
				return err
			}
		}
		for _, p := range []struct {
			k string
			d *time.Duration
		}{{"retry", &c.RetryInterval}, {"lease", &c.Lease}, {"fence", &c.FenceWait}, {"renew", &c.RenewInterval}} {
			if *p.d, err = dur(p.k, *p.d); err != nil {
				return err
			}
		}
		if _, ok := a["fence"]; !ok && coord == FileLock {
			c.FenceWait = c.Lease + FenceMargin(c.Lease)
		}
		n, err := NewNode(c)
		if err != nil {
			return err
		}
		tr.n, tr.now = n, 0
		fmt.Fprintf(&tr.out, "= %s\n", n)
		return nil
	}
	if tr.n == nil {
		return errors.New("no config yet")
	}
	ev := Event{}
	switch cmd {
	case "start":
		ev.Kind = EvStart
	case "advance", "tick":
		var d time.Duration
		if len(f) > 1 {
			var err error
			if d, err = time.ParseDuration(f[1]); err != nil {
				return err
			}
		}
		tr.now += d
		if cmd == "advance" {
			fmt.Fprintf(&tr.out, "= now %v\n", tr.now)
			return nil
		}
		ev.Kind = EvTick
	case "done":
		ev.Kind, ev.Op = EvDone, tr.n.Pending()
		if ev.Op == ActNone {
			return errors.New("no operation pending")
		}
		var err error
		if ev.Ok, err = boolean("ok", true); err != nil {
			return err
		}
		ev.State = lockfile.StateActive
		if s, ok := a["state"]; ok && len(s) == 1 {
			ev.State = State(s[0])
		}
		if ev.Waiting, err = boolean("waiting", true); err != nil {
			return err
		}
		if e, ok := a["epoch"]; ok {
			if ev.Epoch, err = strconv.ParseUint(e, 10, 64); err != nil {
				return err
			}
		}
		if e, ok := a["err"]; ok {
			ev.Err = errors.New(e)
		}
	case "verified":
		ev.Kind, ev.Epoch, ev.Start, ev.State = EvVerified, tr.n.Epoch(), tr.now, lockfile.StateActive
		var err error
		if ev.Waiting, err = boolean("waiting", true); err != nil {
			return err
		}
		if s, ok := a["state"]; ok && len(s) == 1 {
			ev.State = State(s[0])
		}
		if e, ok := a["epoch"]; ok {
			if ev.Epoch, err = strconv.ParseUint(e, 10, 64); err != nil {
				return err
			}
		}
		if ev.Start, err = dur("start", tr.now); err != nil {
			return err
		}
	case "lost", "storage-error":
		ev.Kind = EvLockLost
		if cmd == "storage-error" {
			ev.Kind = EvStorageError
		}
		ev.Err = errors.New(strings.Join(f[1:], " "))
	case "stop":
		ev.Kind = EvStop
		if v, ok := a["failover"]; ok {
			ev.Failover = FailoverNo
			if v == "true" {
				ev.Failover = FailoverYes
			}
		}
	case "peer":
		ev.Kind = EvPeerAnnounced
		if a["role"] == "backup" {
			ev.Peer.Role = Backup
		}
		ev.Peer.Epoch, _ = strconv.ParseUint(a["epoch"], 10, 64)
		ev.Peer.Active = a["active"] == "true"
	case "can-ack":
		at, err := dur("at", tr.now)
		if err != nil {
			return err
		}
		fmt.Fprintf(&tr.out, "= can-ack at %v: %v\n", at, tr.n.CanAck(at))
		return nil
	case "may-write":
		at, err := dur("at", tr.now)
		if err != nil {
			return err
		}
		fmt.Fprintf(&tr.out, "= may-write at %v: %v\n", at, tr.n.MayWrite(at))
		return nil
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	ev.Now = tr.now
	for _, act := range tr.n.Step(ev) {
		fmt.Fprintf(&tr.out, "-> %s\n", act)
	}
	fmt.Fprintf(&tr.out, "= %s\n", tr.n)
	return nil
}
