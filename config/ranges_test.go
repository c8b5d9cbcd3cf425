package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// numericHelpers are the parser's numeric readers and the unit each reads.
var numericHelpers = map[string]Unit{
	"integer": Count, "millis": Millis, "nanos": Nanos, "seconds": Seconds,
	"byteSize": Bytes, "float": Ratio,
}

// numericElements finds, in the package's source, every call of a numeric
// helper and the element names it reads: the string literals of the
// enclosing case clause, or the key of the enclosing map entry (the
// parser's two ways of dispatching on an element name). A call with no
// name around it is reported as "".
func numericElements(t *testing.T) map[string][]Unit {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][]Unit{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := goparser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var stack []ast.Node
		ast.Inspect(file, func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			stack = append(stack, n)
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			unit, ok := numericHelpers[sel.Sel.Name]
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "p" {
				return true
			}
			names := enclosingNames(stack)
			if len(names) == 0 {
				t.Errorf("%s: p.%s reads an element with no name in a case clause or map key around it", fset.Position(call.Pos()), sel.Sel.Name)
			}
			for _, name := range names {
				found[name] = append(found[name], unit)
			}
			return true
		})
	}
	return found
}

// enclosingNames returns the string literals naming the innermost case
// clause or map entry on stack.
func enclosingNames(stack []ast.Node) []string {
	for i := len(stack) - 1; i >= 0; i-- {
		switch n := stack[i].(type) {
		case *ast.CaseClause:
			var out []string
			for _, e := range n.List {
				if s, ok := stringLit(e); ok {
					out = append(out, s)
				}
			}
			return out
		case *ast.KeyValueExpr:
			if s, ok := stringLit(n.Key); ok {
				return []string{s}
			}
		}
	}
	return nil
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// TestRangesCoverElements walks the parser's source: every element it
// reads as a number has a range in the table, in the unit its reader
// parses, and the table names nothing else. A new numeric element without
// a range fails here.
func TestRangesCoverElements(t *testing.T) {
	found := numericElements(t)
	if len(found) < 40 {
		t.Fatalf("found only %d numeric elements in the parser's source: the walk is broken", len(found))
	}
	for name, units := range found {
		r, ok := ranges[name]
		if !ok {
			t.Errorf("<%s> is read as a number but has no range in config/ranges.go", name)
			continue
		}
		for _, u := range units {
			if u != r.Unit {
				t.Errorf("<%s> is read in %q but its range is in %q", name, u, r.Unit)
			}
		}
	}
	for name, r := range ranges {
		if _, ok := found[name]; !ok {
			t.Errorf("the range of <%s> belongs to no element the parser reads as a number", name)
		}
		if r.Min > r.Max {
			t.Errorf("<%s>: empty range %v", name, r)
		}
		// A duration's bounds must fit a time.Duration.
		per := map[Unit]int64{Millis: int64(time.Millisecond), Seconds: int64(time.Second), Nanos: 1}[r.Unit]
		if per > 0 && (r.Max > math.MaxInt64/per || r.Min < math.MinInt64/per) {
			t.Errorf("<%s>: %v overflows a duration", name, r)
		}
	}
}

// rangeContexts places each numeric element where the parser reads it: a
// document (one element per line from line 3) with VALUE in its place, and
// the line of the value. A new element in the table needs a context here.
var rangeContexts = map[string]func(v string) (string, int){}

func init() {
	inCore := func(name string) func(string) (string, int) {
		return func(v string) (string, int) {
			return core("<" + name + ">" + v + "</" + name + ">"), 3
		}
	}
	for _, n := range []string{"journal-file-size", "journal-min-files", "journal-pool-files", "journal-buffer-timeout",
		"journal-buffer-size", "journal-max-io", "journal-compact-percentage", "journal-compact-min-files",
		"connection-ttl-override", "id-cache-size", "max-queues", "max-addresses", "address-queue-scan-period",
		"connection-ttl-max", "connections-allowed", "security-invalidation-interval",
		"global-max-size", "message-expiry-scan-period"} {
		rangeContexts[n] = inCore(n)
	}
	in := func(before, after string) func(name string) func(string) (string, int) {
		return func(name string) func(string) (string, int) {
			return func(v string) (string, int) {
				return core(before, "<"+name+">"+v+"</"+name+">", after), 4
			}
		}
	}
	replBackup := in(`<ha-policy><replication><slave>`, `</slave></replication></ha-policy>`)
	for _, n := range []string{"failback-delay", "initial-replication-sync-timeout", "quorum-size", "vote-retries",
		"vote-retry-wait", "quorum-vote-wait", "retry-replication-wait", "max-saved-replicated-journals-size"} {
		rangeContexts[n] = replBackup(n)
	}
	rangeContexts["failback-delay"] = in(`<ha-policy><shared-store><slave>`, `</slave></shared-store></ha-policy>`)("failback-delay")
	rangeContexts["commit-interval"] = in(`<ha-policy><live-only><scale-down>`, `</scale-down></live-only></ha-policy>`)("commit-interval")
	for _, n := range []string{"session-ms", "session-percent", "connection-ms", "retries", "retries-ms"} {
		rangeContexts[n] = func(v string) (string, int) {
			return core(`<ha-policy><replication><backup><manager><properties><property key="connect-string" value="a:1"/>`,
				`<property key="`+n+`" value="`+v+`"/>`, `</properties></manager></backup></replication></ha-policy>`), 4
		}
	}
	colocated := in(`<ha-policy><replication><colocated>`, `</colocated></replication></ha-policy>`)
	for _, n := range []string{"max-backups", "backup-request-retries", "backup-request-retry-interval", "backup-port-offset"} {
		rangeContexts[n] = colocated(n)
	}
	cluster := in(`<connectors><connector name="me">tcp://a:1</connector></connectors><cluster-connections><cluster-connection name="c"><connector-ref>me</connector-ref>`,
		`</cluster-connection></cluster-connections>`)
	for _, n := range []string{"max-hops", "retry-interval", "retry-interval-multiplier", "max-retry-interval",
		"reconnect-attempts", "initial-connect-attempts", "call-timeout", "check-period", "connection-ttl"} {
		rangeContexts[n] = cluster(n)
	}
	rangeContexts["broadcast-period"] = in(`<broadcast-groups><broadcast-group name="b">`, `</broadcast-group></broadcast-groups>`)("broadcast-period")
	rangeContexts["group-port"] = in(`<broadcast-groups><broadcast-group name="b">`, `</broadcast-group></broadcast-groups>`)("group-port")
	rangeContexts["refresh-timeout"] = in(`<discovery-groups><discovery-group name="d">`, `</discovery-group></discovery-groups>`)("refresh-timeout")
	setting := in(`<address-settings><address-setting match="#">`, `</address-setting></address-settings>`)
	for _, n := range []string{"auto-delete-queues-delay", "auto-delete-queues-message-count", "auto-delete-addresses-delay",
		"max-delivery-attempts", "expiry-delay", "redistribution-delay", "redelivery-delay", "max-redelivery-delay", "redelivery-delay-multiplier",
		"max-size-bytes", "page-size-bytes"} {
		rangeContexts[n] = setting(n)
	}
	store := in(`<store><database-store><jdbc-connection-url>jdbc:postgresql://h/d</jdbc-connection-url>`, `</database-store></store>`)
	for _, n := range []string{"jdbc-lock-expiration", "jdbc-lock-renew-period", "jdbc-network-timeout",
		"jdbc-lock-acquisition-timeout", "jdbc-allowed-time-diff", "jdbc-journal-sync-period"} {
		rangeContexts[n] = store(n)
	}
}

// TestOutOfRange: for every element, one below its minimum and one above
// its maximum are refused with "FILE:LINE: NAME VALUE out of range
// [MIN, MAX] UNIT"; the bounds themselves are not reported out of range
// (they may still break a rule between elements, such as the lease renew
// period being shorter than the lease).
func TestOutOfRange(t *testing.T) {
	for name, r := range ranges {
		ctx, ok := rangeContexts[name]
		if !ok {
			t.Errorf("<%s> has no test context in rangeContexts", name)
			continue
		}
		for _, v := range []int64{r.Min - 1, r.Max + 1} {
			doc, line := ctx(strconv.FormatInt(v, 10))
			_, _, err := parseString(t, doc)
			want := (&RangeError{Element: name, Value: strconv.FormatInt(v, 10), Range: r}).Error()
			var ce *Error
			if !errors.As(err, &ce) || ce.Line != line || ce.Msg != want {
				t.Errorf("<%s> %d: got %v, want broker.xml:%d: %s", name, v, err, line, want)
			}
		}
		for _, v := range []int64{r.Min, r.Max} {
			doc, _ := ctx(strconv.FormatInt(v, 10))
			if _, _, err := parseString(t, doc); err != nil && strings.Contains(err.Error(), "out of range") {
				t.Errorf("<%s> %d (a bound) refused: %v", name, v, err)
			}
		}
	}
	// A decimal between the bounds of a ratio, and one just below.
	if _, _, err := parseString(t, docFor("retry-interval-multiplier", "1.5")); err != nil {
		t.Errorf("retry-interval-multiplier 1.5: %v", err)
	}
	if _, _, err := parseString(t, docFor("retry-interval-multiplier", "0.99")); err == nil || !strings.Contains(err.Error(), "retry-interval-multiplier 0.99 out of range [1, 100]") {
		t.Errorf("retry-interval-multiplier 0.99: %v", err)
	}
}

// docFor returns the test document with <name> set to v.
func docFor(name, v string) string {
	doc, _ := rangeContexts[name](v)
	return doc
}

// TestDerivedBounds: the disk the journal claims by configuration
// (journal-min-files or journal-pool-files times journal-file-size) is
// bounded by MaxJournalDisk, reported at the element that sets the count.
func TestDerivedBounds(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		line int
		msg  string
	}{
		{core(`<journal-file-size>1G</journal-file-size>`, `<journal-min-files>256</journal-min-files>`), 0, ""},
		{core(`<journal-file-size>1G</journal-file-size>`, `<journal-min-files>257</journal-min-files>`), 4,
			"journal-min-files 257 x journal-file-size 1073741824 = 257 GiB of segments preallocated, more than 256 GiB"},
		{core(`<journal-pool-files>1000</journal-pool-files>`, `<journal-file-size>300M</journal-file-size>`), 3,
			"journal-pool-files 1000 x journal-file-size 314572800 = 293 GiB of segments kept for reuse, more than 256 GiB"},
		{core(`<journal-pool-files>-1</journal-pool-files>`, `<journal-file-size>1G</journal-file-size>`), 0, ""},
	} {
		_, _, err := parseString(t, tc.doc)
		if tc.msg == "" {
			if err != nil {
				t.Errorf("refused: %v\n%s", err, tc.doc)
			}
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Line != tc.line || ce.Msg != tc.msg {
			t.Errorf("got %v, want broker.xml:%d: %s", err, tc.line, tc.msg)
		}
	}
}

// checkEffective is the oracle for any accepted configuration, computed
// from its JSON view (the effective values under their element names, in
// their units) and not from the parser's checks: every numeric value under
// an element name is in that element's range, every numeric value has a
// range (apart from acceptor and connector ports, which come from URLs),
// and the journal's disk stays under MaxJournalDisk.
func checkEffective(t *testing.T, c *Config) {
	t.Helper()
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	walkNumbers(v, "", func(key string, n json.Number) {
		if key == "port" {
			return
		}
		r, ok := ranges[key]
		if !ok {
			t.Errorf("%s = %s: a number with no range", key, n)
			return
		}
		f, err := n.Float64()
		if err != nil {
			t.Errorf("%s = %s: %v", key, n, err)
			return
		}
		if i, err := n.Int64(); err == nil {
			if i < r.Min || i > r.Max {
				t.Errorf("%s = %d, out of %v", key, i, r)
			}
		} else if f < float64(r.Min) || f > float64(r.Max) {
			t.Errorf("%s = %s, out of %v", key, n, r)
		}
	})
	j := c.Journal
	for _, files := range []int{j.MinFiles, j.PoolFiles} {
		// Both factors are in range (checked above), so no overflow.
		if files > 0 && int64(files)*j.FileSize > MaxJournalDisk {
			t.Errorf("%d segments of %d bytes: more than %d bytes of journal", files, j.FileSize, int64(MaxJournalDisk))
		}
	}
}

func walkNumbers(v any, key string, f func(string, json.Number)) {
	switch x := v.(type) {
	case json.Number:
		f(key, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walkNumbers(x[k], k, f)
		}
	case []any:
		for _, e := range x {
			walkNumbers(e, key, f)
		}
	}
}

// TestEffectiveInRange: the defaults, every example and every seed snippet
// are accepted and pass the oracle.
func TestEffectiveInRange(t *testing.T) {
	checkEffective(t, Default())
	seeds, _ := filepath.Glob("testdata/seed/*.xml")
	examples, _ := filepath.Glob("../etc/examples/*.xml")
	if len(seeds) == 0 || len(examples) == 0 {
		t.Fatalf("%d seeds, %d examples", len(seeds), len(examples))
	}
	for _, p := range append(seeds, examples...) {
		c, _, err := Load(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		checkEffective(t, c)
	}
}

// TestDocsListRanges: docs/configuration.md has a row for every numeric
// element with its range.
func TestDocsListRanges(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			if name, _, ok := strings.Cut(rest, "`"); ok {
				rows[name] = line
			}
		}
	}
	for name, r := range ranges {
		row, ok := rows[name]
		if !ok {
			t.Errorf("docs/configuration.md has no row for <%s>", name)
			continue
		}
		if want := "[" + strconv.FormatInt(r.Min, 10) + ", " + strconv.FormatInt(r.Max, 10) + "]"; !strings.Contains(row, want) {
			t.Errorf("docs/configuration.md: the row of <%s> does not show its range %s: %s", name, want, row)
		}
	}
}
