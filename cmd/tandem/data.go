package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

func init() {
	register(command{name: "data", summary: "print, verify or repair a journal (data print|verify|repair [--drop-bad-records] PATH)", run: runData})
}

// journalDir is one journal found under a data command's PATH.
type journalDir struct {
	dir string
	nm  journal.Naming
}

// findJournals resolves PATH: a journal directory (segment files in it) or
// a data directory (DIR/journal, DIR/bindings, DIR/paging and
// DIR/large-messages).
func findJournals(fs aio.FS, path string) ([]journalDir, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", path)
	}
	var out []journalDir
	add := func(dir string) error {
		nms, err := journal.FindJournals(fs, dir)
		if err != nil {
			return err
		}
		for _, nm := range nms {
			out = append(out, journalDir{dir: dir, nm: nm})
		}
		return nil
	}
	if err := add(path); err != nil {
		return nil, err
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, sub := range []string{"journal", "bindings", "paging", "large-messages"} {
		d := filepath.Join(path, sub)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			if err := add(d); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no journal segment files in %s (nor in %s/journal, %s/bindings or %s/paging)", path, path, path, path)
	}
	return out, nil
}

func runData(args []string) int {
	return dataMain(args, os.Stdout, os.Stderr)
}

func dataMain(args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: tandem data print|verify|repair [--drop-bad-records] PATH\n  PATH is a data directory (DIR/journal, DIR/bindings, DIR/paging) or a journal directory")
		return exitCannot
	}
	if len(args) < 1 {
		return usage()
	}
	sub := args[0]
	fset := flag.NewFlagSet("data "+sub, flag.ContinueOnError)
	fset.SetOutput(stderr)
	var ro journal.RepairOptions
	if sub == "repair" {
		fset.BoolVar(&ro.DropBadRecords, "drop-bad-records", false,
			"drop only a bad record whose framing is intact (a valid record follows where its length says) and keep the records after it; elsewhere truncate")
	}
	if err := fset.Parse(args[1:]); err != nil {
		return exitCannot
	}
	if fset.NArg() != 1 {
		return usage()
	}
	fs := aio.OS(aio.NIO, aio.DefaultOptions())
	jds, err := findJournals(fs, fset.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "tandem data %s: %v\n", sub, err)
		return exitCannot
	}
	switch sub {
	case "print":
		return dataPrint(fs, jds, stdout, stderr)
	case "verify":
		return dataVerify(fs, jds, stdout, stderr)
	case "repair":
		return dataRepair(fs, jds, ro, stdout, stderr)
	}
	return usage()
}

// scanReport prints a scan's warnings and error; it returns the exit code.
func scanReport(err error, res *journal.ScanResult, stderr io.Writer) int {
	if res != nil {
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	var ce *journal.CorruptionError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "%s:%d: %s\n", ce.File, ce.Offset, ce.Reason)
		return exitFailed
	case err != nil:
		fmt.Fprintf(stderr, "tandem data: %v\n", err)
		return exitCannot
	}
	return exitOK
}

func dataPrint(fs aio.FS, jds []journalDir, stdout, stderr io.Writer) int {
	code := exitOK
	var e journal.Entry
	for _, jd := range jds {
		res, err := journal.Scan(fs, jd.dir, jd.nm, func(path string, _ uint64, off int64, payload []byte) error {
			it := journal.NewEntryIter(payload)
			name := filepath.Base(path)
			for {
				ok, err := it.Next(&e)
				if err != nil || !ok {
					return err
				}
				fmt.Fprintf(stdout, "%s %d %s %d %d %d\n", name, off, e.Kind, e.ID, e.TxID, len(e.Data))
			}
		})
		code = max(code, scanReport(err, res, stderr))
	}
	return code
}

func dataVerify(fs aio.FS, jds []journalDir, stdout, stderr io.Writer) int {
	code := exitOK
	var e journal.Entry
	for _, jd := range jds {
		records, entries := 0, 0
		res, err := journal.Scan(fs, jd.dir, jd.nm, func(_ string, _ uint64, _ int64, payload []byte) error {
			records++
			it := journal.NewEntryIter(payload)
			for {
				ok, err := it.Next(&e)
				if err != nil || !ok {
					return err
				}
				entries++
			}
		})
		c := scanReport(err, res, stderr)
		if c == exitOK {
			fmt.Fprintf(stdout, "%s: ok: %d segments, %d records, %d entries, epoch %d\n",
				filepath.Join(jd.dir, jd.nm.Prefix+"-*."+jd.nm.Ext), len(res.Segments), records, entries, res.Epoch)
		}
		code = max(code, c)
	}
	return code
}

func dataRepair(fs aio.FS, jds []journalDir, ro journal.RepairOptions, stdout, stderr io.Writer) int {
	code := exitOK
	for _, jd := range jds {
		actions, err := journal.RepairWith(fs, jd.dir, jd.nm, ro)
		for _, a := range actions {
			fmt.Fprintf(stdout, "repaired %s:%d: %s (the file as it was: %s)\n", a.File, a.Offset, a.What, a.Damaged)
			if dr := a.DroppedRecord; dr != nil {
				ids := make([]string, len(dr.Entries))
				for i, e := range dr.Entries {
					ids[i] = fmt.Sprintf("%s %d", e.Kind, e.ID)
					if e.TxID != 0 {
						ids[i] += fmt.Sprintf(" (tx %d)", e.TxID)
					}
				}
				note := ""
				if !dr.Readable {
					note = " (the rest of the record does not decode)"
				}
				fmt.Fprintf(stdout, "  record IDs as read: %s%s; the damage may be in them: compare with %s\n", strings.Join(ids, ", "), note, a.Damaged)
			}
		}
		if err != nil {
			var ce *journal.CorruptionError
			if errors.As(err, &ce) {
				fmt.Fprintf(stderr, "%s:%d: %s\n", ce.File, ce.Offset, ce.Reason)
				fmt.Fprintf(stderr, "tandem data repair: %s cannot be repaired by truncation\n", jd.dir)
				code = max(code, exitFailed)
				continue
			}
			fmt.Fprintf(stderr, "tandem data repair: %v\n", err)
			code = max(code, exitCannot)
			continue
		}
		if len(actions) == 0 {
			fmt.Fprintf(stdout, "%s: clean, nothing to repair\n", filepath.Join(jd.dir, jd.nm.Prefix+"-*."+jd.nm.Ext))
		}
	}
	return code
}
