package ha

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplTranscripts runs the scripts in testdata/repl/*.txt against one
// ReplNode, like TestTranscripts: "> " lines are commands, "#" and blank
// lines comments, every other line output ("-> action", "= state"). Run
// with -rewrite to regenerate the outputs after a deliberate change, and
// read the diff.
//
// Commands (times are Go durations; the node ID is fixed):
//
//	config role=primary|backup allow-failback=B retry=D lease=D holdoff=D
//	start | tick [D] | advance D
//	done [ok=B] [L=N] [C=N] [url=U] [mine=B] [start=D] [err=TEXT_WITH_UNDERSCORES]
//	     the result of the pending operation; for read-lock, url= means
//	     held (by the live at U), no url means free; start defaults to now
//	verified [start=D] | lost TEXT | storage-error TEXT | stop
//	zk-disconnected | zk-connected | backup-synced | backup-lost | failback-requested
//	replica-synced L=N | replica-lost [handover=B] [conn=N] (default: the current connection)
//	can-ack [at=D]
func TestReplTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/repl/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runReplTranscript(string(b))
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

type replTranscript struct {
	n   *ReplNode
	now time.Duration
	out strings.Builder
}

func runReplTranscript(src string) (string, error) {
	var tr replTranscript
	for i, line := range strings.Split(strings.TrimRight(src, "\n"), "\n") {
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

func (tr *replTranscript) run(f []string) error {
	if len(f) == 0 {
		return errors.New("empty command")
	}
	cmd, a := f[0], args(f[1:])
	dur := func(k string, def time.Duration) (time.Duration, error) {
		if v, ok := a[k]; ok {
			return time.ParseDuration(v)
		}
		return def, nil
	}
	boolean := func(k string, def bool) (bool, error) {
		if v, ok := a[k]; ok {
			return strconv.ParseBool(v)
		}
		return def, nil
	}
	if cmd == "config" {
		role := Primary
		if a["role"] == "backup" {
			role = Backup
		}
		c := DefaultReplConfig(role)
		var err error
		if c.AllowFailback, err = boolean("allow-failback", c.AllowFailback); err != nil {
			return err
		}
		for _, p := range []struct {
			k string
			d *time.Duration
		}{{"retry", &c.RetryInterval}, {"lease", &c.Lease}, {"holdoff", &c.FailbackHoldoff}} {
			if *p.d, err = dur(p.k, *p.d); err != nil {
				return err
			}
		}
		n, err := NewReplNode(c)
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
	ev := ReplEvent{}
	var err error
	switch cmd {
	case "start":
		ev.Kind = ReplEvStart
	case "advance", "tick":
		if len(f) > 1 {
			d, err := time.ParseDuration(f[1])
			if err != nil {
				return err
			}
			tr.now += d
		}
		if cmd == "advance" {
			fmt.Fprintf(&tr.out, "= now %v\n", tr.now)
			return nil
		}
		ev.Kind = ReplEvTick
	case "done":
		ev.Kind, ev.Op = ReplEvDone, tr.n.Pending()
		if ev.Op == ReplActNone {
			return errors.New("no operation pending")
		}
		if ev.Ok, err = boolean("ok", true); err != nil {
			return err
		}
		if v, ok := a["L"]; ok {
			if ev.Local, err = strconv.ParseUint(v, 10, 64); err != nil {
				return err
			}
		}
		ev.NodeID = rsNodeID
		if v, ok := a["C"]; ok {
			if ev.Coord, err = strconv.ParseInt(v, 10, 64); err != nil {
				return err
			}
		}
		if u, ok := a["url"]; ok {
			ev.Holder = LockHolder{Held: true, URL: u}
			if ev.Holder.Mine, err = boolean("mine", false); err != nil {
				return err
			}
		}
		if ev.Start, err = dur("start", tr.now); err != nil {
			return err
		}
		if e, ok := a["err"]; ok {
			ev.Err = errors.New(strings.ReplaceAll(e, "_", " "))
		}
	case "verified":
		ev.Kind = ReplEvVerified
		if ev.Start, err = dur("start", tr.now); err != nil {
			return err
		}
	case "lost", "storage-error":
		ev.Kind = ReplEvLockLost
		if cmd == "storage-error" {
			ev.Kind = ReplEvStorageError
		}
		ev.Err = errors.New(strings.Join(f[1:], " "))
	case "stop":
		ev.Kind = ReplEvStop
	case "zk-disconnected":
		ev.Kind = ReplEvZKDisconnected
	case "zk-connected":
		ev.Kind = ReplEvZKConnected
	case "backup-synced":
		ev.Kind = ReplEvBackupSynced
	case "backup-lost":
		ev.Kind = ReplEvBackupLost
	case "failback-requested":
		ev.Kind = ReplEvFailbackRequested
	case "replica-synced":
		ev.Kind, ev.NodeID, ev.Conn = ReplEvReplicaSynced, rsNodeID, tr.n.replConn
		if ev.Local, err = strconv.ParseUint(a["L"], 10, 64); err != nil {
			return err
		}
	case "replica-lost":
		ev.Kind, ev.Conn = ReplEvReplicaLost, tr.n.replConn
		if c, ok := a["conn"]; ok {
			if ev.Conn, err = strconv.ParseUint(c, 10, 64); err != nil {
				return err
			}
		}
		if ev.Handover, err = boolean("handover", false); err != nil {
			return err
		}
	case "can-ack":
		at, err := dur("at", tr.now)
		if err != nil {
			return err
		}
		fmt.Fprintf(&tr.out, "= can-ack at %v: %v\n", at, tr.n.CanAck(at))
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
