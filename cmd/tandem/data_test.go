package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/journal"
)

// makeJournal writes n records into DIR/journal with 64 KiB segments.
func makeJournal(t *testing.T, n int) (data, jdir string) {
	t.Helper()
	data = t.TempDir()
	jdir = filepath.Join(data, "journal")
	j, err := journal.Open(journal.Options{Dir: jdir, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: uint64(i + 1), Data: bytes.Repeat([]byte{1}, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return data, jdir
}

func dataCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dataMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDataCommands(t *testing.T) {
	data, jdir := makeJournal(t, 150)
	code, out, _ := dataCmd(t, "print", data)
	if code != exitOK || strings.Count(out, "\n") != 150 || !strings.HasPrefix(out, "tandem-data-0000000001.tj 64 add 1 0 1000\n") {
		t.Fatalf("print: code %d, output starts %q", code, out[:min(len(out), 100)])
	}
	if code, out, errs := dataCmd(t, "verify", jdir); code != exitOK || !strings.Contains(out, "150 records") {
		t.Fatalf("verify clean: %d %q %q", code, out, errs)
	}
	// Flip a bit in the middle of the first (sealed) segment.
	seg := filepath.Join(jdir, journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, 1))
	b, _ := os.ReadFile(seg)
	b[30000] ^= 0x40
	os.WriteFile(seg, b, 0o644)
	code, _, errs := dataCmd(t, "verify", data)
	if code != exitFailed || !strings.HasPrefix(errs, seg+":") || !strings.Contains(errs, "sealed segment") {
		t.Fatalf("verify corrupt: code %d stderr %q", code, errs)
	}
	code, out, errs = dataCmd(t, "repair", data)
	if code != exitOK || !strings.Contains(out, seg+".damaged") {
		t.Fatalf("repair: code %d out %q err %q", code, out, errs)
	}
	if _, err := os.Stat(seg + ".damaged"); err != nil {
		t.Fatalf("damaged copy: %v", err)
	}
	if code, out, errs := dataCmd(t, "verify", data); code != exitOK {
		t.Fatalf("verify after repair: %d %q %q", code, out, errs)
	}
	// A missing segment cannot be repaired.
	os.Remove(filepath.Join(jdir, journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, 2)))
	if code, _, errs := dataCmd(t, "repair", data); code != exitFailed || !strings.Contains(errs, "gap in the segment sequence") {
		t.Fatalf("repair of a gap: %d %q", code, errs)
	}
	if code, _, _ := dataCmd(t, "verify", t.TempDir()); code != exitCannot {
		t.Fatalf("verify of an empty dir: %d, want %d", code, exitCannot)
	}
	if code, _, _ := dataCmd(t, "frobnicate", data); code != exitCannot {
		t.Fatalf("unknown subcommand: %d", code)
	}
}

func TestDataVerifyTornTail(t *testing.T) {
	data, jdir := makeJournal(t, 20)
	// Undo Close's seal and tear the last record, as a crash would.
	var last, end int64
	res, err := journal.Scan(nil, jdir, journal.Naming{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}, func(_ string, _ uint64, off int64, _ []byte) error {
		last = off
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	end = res.LastEnd
	seg := res.Segments[len(res.Segments)-1].Path
	b, _ := os.ReadFile(seg)
	clear(b[end : end+16])
	clear(b[last+600 : last+900])
	os.WriteFile(seg, b, 0o644)
	code, out, errs := dataCmd(t, "verify", data)
	if code != exitOK || !strings.HasPrefix(errs, "warning: ") || !strings.Contains(errs, "torn tail") || !strings.Contains(out, "19 records") {
		t.Fatalf("verify torn tail: %d %q %q", code, out, errs)
	}
	// It says what it knows: a torn tail, or damage to the last synced
	// batch, which cannot be told apart (never "nothing was lost").
	if !strings.Contains(errs, "unless the damage hit the last synced batch") || strings.Contains(errs, "no acknowledged record was lost") {
		t.Fatalf("verify torn tail: the warning claims more than replay knows: %q", errs)
	}
}

func TestPerfJournalSmoke(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pj")
	var out, errb bytes.Buffer
	code := perfJournalMain([]string{"--dir", dir, "--writers", "4", "--size", "256", "--count", "400", "--baseline-duration", "50ms", "--json", "--journal-file-size", "1048576"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("perf-journal: %d %s", code, errb.String())
	}
	for _, k := range []string{"backend", "writers", "size", "records", "records_per_sec", "mb_per_sec", "p50_us", "p99_us", "p999_us", "fsyncs_per_sec", "mean_batch", "raw_sync_per_sec", "raw_sync_p50_us", "raw_bw_mb_per_sec"} {
		if !strings.Contains(out.String(), `"`+k+`":`) {
			t.Fatalf("JSON lacks %q: %s", k, out.String())
		}
	}
	if !strings.Contains(out.String(), `"records":400`) || !strings.Contains(out.String(), `"backend":"nio"`) {
		t.Fatalf("JSON: %s", out.String())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !isSegmentFile(e.Name()) {
			t.Fatalf("DIR holds %s after the run", e.Name())
		}
	}
	siblings, _ := os.ReadDir(filepath.Dir(dir))
	if len(siblings) != 1 {
		t.Fatalf("baseline files left next to DIR: %v", siblings)
	}
	out.Reset()
	if code := perfJournalMain([]string{"--dir", dir, "--count", "10", "--baseline-duration", "10ms", "--clean", "--journal-file-size", "1048576"}, &out, &errb); code != exitOK {
		t.Fatalf("second run: %d %s", code, errb.String())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("--clean left %d files", len(ents))
	}
	os.WriteFile(filepath.Join(dir, "other.txt"), []byte("x"), 0o644)
	if code := perfJournalMain([]string{"--dir", dir, "--count", "10"}, &out, &errb); code != exitCannot {
		t.Fatalf("non-journal DIR accepted: %d", code)
	}
	errb.Reset()
	code = perfJournalMain([]string{"--store", "jdbc", "--url", "postgres://nowhere.invalid/x", "--baseline-duration", "10ms"}, &out, &errb)
	if _, registered := perfStores["jdbc"]; !registered && (code != exitCannot || !strings.Contains(errb.String(), "not built yet")) {
		t.Fatalf("jdbc before jdbcstore registers: %d %s", code, errb.String())
	}
	if code != exitCannot {
		t.Fatalf("jdbc with an unreachable URL: exit %d, want %d", code, exitCannot)
	}
	errb.Reset()
	if code := perfJournalMain([]string{"--store", "nosuch", "--url", "x"}, &out, &errb); code != exitCannot || !strings.Contains(errb.String(), "unknown --store") {
		t.Fatalf("unknown store: %d %s", code, errb.String())
	}
}

// TestDataRepairDropBadRecords: one flipped byte in a sealed segment's
// record. Plain repair truncates there, taking every later record of the
// segment; --drop-bad-records drops that record only, names the record
// IDs it held, and keeps the rest.
func TestDataRepairDropBadRecords(t *testing.T) {
	data, jdir := makeJournal(t, 150)
	seg := filepath.Join(jdir, journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, 1))
	b, _ := os.ReadFile(seg)
	b[30000] ^= 0x40 // in a record's data: its framing stays intact
	os.WriteFile(seg, b, 0o644)
	code, out, errs := dataCmd(t, "repair", "--drop-bad-records", data)
	if code != exitOK || !strings.Contains(out, "dropped the bad record") || !strings.Contains(out, "record IDs as read: add 30") || !strings.Contains(out, seg+".damaged") {
		t.Fatalf("repair --drop-bad-records: code %d out %q err %q", code, out, errs)
	}
	if code, out, errs := dataCmd(t, "verify", data); code != exitOK || !strings.Contains(out, "149 records") {
		t.Fatalf("verify after dropping one record: %d %q %q", code, out, errs)
	}
	code, out, _ = dataCmd(t, "print", data)
	if code != exitOK || strings.Count(out, "\n") != 149 || strings.Contains(out, " add 30 0 ") || !strings.Contains(out, " add 150 0 ") {
		t.Fatalf("print after the drop: code %d, %d lines; want 149 with 150 and without 30", code, strings.Count(out, "\n"))
	}

	// A flipped byte in a record's length: nothing says where the next
	// record starts, so it truncates as plain repair does.
	data, jdir = makeJournal(t, 150)
	seg = filepath.Join(jdir, journal.SegmentName(journal.DefaultPrefix, journal.DefaultExt, 1))
	b, _ = os.ReadFile(seg)
	off := 64 + 10*1022 // the 11th record's header (records of 1022 bytes)
	b[off+4] ^= 0x01    // its length
	os.WriteFile(seg, b, 0o644)
	code, out, errs = dataCmd(t, "repair", "--drop-bad-records", data)
	if code != exitOK || !strings.Contains(out, "truncated at the first bad record") {
		t.Fatalf("repair of a damaged length: code %d out %q err %q", code, out, errs)
	}
}
