package config

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// parserElements walks the package's source and returns, per function,
// the element names it dispatches on, and the attribute names it reads:
//
//   - the string cases of a switch on an element's name (switch e.name, or
//     on a parameter called name or key: roleOf, zkProperty);
//   - string literals compared with an element's name (c.name != "user");
//   - the keys of a map[string]func literal (the children p.fields parses);
//   - the arguments of setOf (children p.fields warns about);
//   - the element kind given to p.urls and p.refs ("acceptor", "connector-ref");
//   - and, as attributes, the arguments of n.attr.
func parserElements(t *testing.T) (map[string][]string, map[string]bool) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]string{}
	attrs := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := goparser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			add := func(e ast.Expr) {
				if s, ok := stringLit(e); ok {
					names[fn.Name.Name] = append(names[fn.Name.Name], s)
				}
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SwitchStmt:
					if isNameExpr(n.Tag) || isIdent(n.Tag, "name", "key") {
						for _, s := range n.Body.List {
							for _, e := range s.(*ast.CaseClause).List {
								add(e)
							}
						}
					}
				case *ast.BinaryExpr:
					if n.Op == token.EQL || n.Op == token.NEQ {
						if isNameExpr(n.X) {
							add(n.Y)
						}
						if isNameExpr(n.Y) {
							add(n.X)
						}
					}
				case *ast.CompositeLit:
					if m, ok := n.Type.(*ast.MapType); ok && isIdent(m.Key, "string") {
						if _, ok := m.Value.(*ast.FuncType); ok {
							for _, e := range n.Elts {
								add(e.(*ast.KeyValueExpr).Key)
							}
						}
					}
				case *ast.CallExpr:
					switch fun := n.Fun.(type) {
					case *ast.Ident:
						if fun.Name == "setOf" {
							for _, a := range n.Args {
								add(a)
							}
						}
					case *ast.SelectorExpr:
						switch {
						case isIdent(fun.X, "p") && (fun.Sel.Name == "urls" || fun.Sel.Name == "refs") && len(n.Args) == 2:
							add(n.Args[1])
						case fun.Sel.Name == "attr" && len(n.Args) == 1:
							if s, ok := stringLit(n.Args[0]); ok {
								attrs[s] = true
							}
						}
					}
				}
				return true
			})
		}
	}
	for f := range names {
		sort.Strings(names[f])
		names[f] = compactStrings(names[f])
	}
	return names, attrs
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// isNameExpr reports whether e is X.name: an element's name.
func isNameExpr(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "name" && isIdent(sel.X, "")
}

// isIdent reports whether e is an identifier, named one of names when
// any are given.
func isIdent(e ast.Expr, names ...string) bool {
	id, ok := e.(*ast.Ident)
	if !ok {
		return false
	}
	if len(names) == 0 || names[0] == "" {
		return true
	}
	for _, n := range names {
		if id.Name == n {
			return true
		}
	}
	return false
}

// docRow is one table row of docs/configuration.md: the names in
// backquotes in its first cell, and the whole line.
type docRow struct {
	names []string
	line  string
}

// readReference reads docs/configuration.md into its sections: the rows of
// the tables under each heading (the heading's text without the #s),
// up to the next heading of any level.
func readReference(t *testing.T) map[string][]docRow {
	t.Helper()
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]docRow{}
	heading := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
			if _, dup := sections[heading]; dup {
				t.Errorf("docs/configuration.md: two sections named %q", heading)
			}
			sections[heading] = nil
			continue
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		row := docRow{line: line}
		for i, part := range strings.Split(cells[1], "`") {
			if i%2 == 1 {
				row.names = append(row.names, part)
			}
		}
		if len(row.names) > 0 {
			sections[heading] = append(sections[heading], row)
		}
	}
	return sections
}

// Sections of docs/configuration.md, by heading.
const (
	docFile          = "The file: `<configuration>`"
	docGeneral       = "`<core>`: general settings"
	docJournal       = "Journal and data directories"
	docNetwork       = "Acceptors and connectors"
	docURLParams     = "Acceptor URL parameters"
	docCluster       = "Cluster connections"
	docGroups        = "Broadcast and discovery groups"
	docStore         = "`<store>`: file journal or database"
	docSecurity      = "Security"
	docAddrSettings  = "Address settings"
	docAddresses     = "`<addresses>`: predefined addresses and queues"
	docUnsupported   = "Other elements not supported yet"
	docPolicies      = "Policies and roles"
	docColocated     = "`<colocated>`"
	docScaleDown     = "`<scale-down>`"
	docManager       = "`<manager>` (ZooKeeper)"
	docIgnoredStatus = "**ignored**"
)

// docCore are the sections that document <core>'s own elements.
var docCore = []string{docGeneral, docJournal, docNetwork, docCluster, docGroups, docStore, docSecurity,
	docAddrSettings, docUnsupported}

// docFuncs says, for each parser function that dispatches on element
// names (parserElements), the sections that document them. A new parser
// function that reads elements needs an entry here.
var docFuncs = map[string][]string{
	"configuration":      {docFile},
	"core":               docCore,
	"addressSettings":    {docAddrSettings},
	"addressSetting":     {docAddrSettings},
	"addresses":          {docAddresses},
	"queueDef":           {docAddresses},
	"broadcastGroups":    {docGroups},
	"discoveryGroups":    {docGroups},
	"clusterConnections": {docCluster},
	"store":              {docStore},
	"security":           {docSecurity},
	"securitySettings":   {docSecurity},
	"haPolicy":           {docPolicies},
	"storePolicy":        {docPolicies},
	"roleOf":             {docPolicies},
	"roleKind":           {docPolicies},
	"colocated":          {docColocated},
	"scaleDown":          {docScaleDown},
	"manager":            {docManager},
	"zkProperty":         {docManager},
}

// docHAKinds is the section of each HA policy and role's options.
var docHAKinds = map[haKind]string{
	ssPrimary:         "`<shared-store>` `<primary>` (`<master>`)",
	ssBackup:          "`<shared-store>` `<backup>` (`<slave>`)",
	replPrimaryZK:     "`<replication>` with ZooKeeper: `<primary>`",
	replBackupZK:      "`<replication>` with ZooKeeper: `<backup>`",
	replPrimaryQuorum: "`<replication>` with the quorum vote: `<primary>` (`<master>`)",
	replBackupQuorum:  "`<replication>` with the quorum vote: `<backup>` (`<slave>`)",
	liveOnly:          "`<live-only>` (`<primary-only>`)",
}

// TestDocsListElements keeps docs/configuration.md in step with the
// parser: every element, attribute parent, URL parameter, HA option (per
// policy and role) and ZooKeeper property the parser knows, from its
// tables and from its source (parserElements), has a row in the section
// that documents its place; an element the parser warns about ("not
// supported yet, ignored") is marked ignored there; a row of a numeric
// element shows its range; and the reference documents nothing the parser
// does not know.
func TestDocsListElements(t *testing.T) {
	sections := readReference(t)
	known := map[string]bool{}
	// want checks that every name has a row in one of the sections.
	want := func(what string, names []string, in []string, ignored bool) {
		t.Helper()
		for _, sec := range in {
			if _, ok := sections[sec]; !ok {
				t.Fatalf("docs/configuration.md has no section %q (for %s)", sec, what)
			}
		}
		for _, name := range names {
			known[name] = true
			var rows []docRow
			for _, sec := range in {
				for _, r := range sections[sec] {
					if slices.Contains(r.names, name) {
						rows = append(rows, r)
					}
				}
			}
			if len(rows) == 0 {
				t.Errorf("docs/configuration.md: %s reads <%s>, but no row of section \"%s\" names it", what, name, strings.Join(in, `" or "`))
				continue
			}
			if !ignored {
				continue
			}
			for _, r := range rows {
				if !strings.Contains(r.line, docIgnoredStatus) {
					t.Errorf("docs/configuration.md: <%s> is ignored with a warning (%s), but its row does not say %s: %s", name, what, docIgnoredStatus, r.line)
				}
			}
		}
	}

	funcs, attrs := parserElements(t)
	if len(funcs) < 15 {
		t.Fatalf("found element names in only %d parser functions: the walk is broken", len(funcs))
	}
	for fn, names := range funcs {
		in, ok := docFuncs[fn]
		if !ok {
			t.Errorf("parser function %s reads elements %v: add the sections documenting them to docFuncs", fn, names)
			continue
		}
		want("the parser's "+fn, names, in, false)
	}
	want("coreSettings", coreSettings, docCore, false)
	want("unsupportedCore", unsupportedCoreNames(), docCore, true)
	want("acceptorParams", mapKeys(acceptorParams), []string{docURLParams}, false)
	want("clusterIgnored", mapKeys(clusterIgnored), []string{docCluster}, true)
	want("groupIgnored", mapKeys(groupIgnored), []string{docGroups}, true)
	want("databaseIgnored", mapKeys(databaseIgnored), []string{docStore}, true)
	want("addressSettingsImplemented", addressSettingsImplemented, []string{docAddrSettings}, false)
	want("addressSettingsKnown", mapKeys(addressSettingsKnown), []string{docAddrSettings}, true)
	want("queueAttrsIgnored", mapKeys(queueAttrsIgnored), []string{docAddresses}, true)
	want("policyNames", policyNames, []string{docPolicies}, false)
	want("colocatedOptions", colocatedOptions, []string{docColocated}, false)
	want("zkProperties", zkProperties, []string{docManager}, false)
	for kind, allowed := range haAllowed {
		sec, ok := docHAKinds[kind]
		if !ok {
			t.Errorf("HA kind %s has no section in docHAKinds", haKindNames[kind])
			continue
		}
		want("haAllowed "+haKindNames[kind], mapKeys(allowed), []string{sec}, false)
	}
	for name := range haSetters {
		known[name] = true
	}
	for name := range ranges {
		known[name] = true
	}
	for name := range attrs {
		known[name] = true
	}

	// Rows of numeric elements show their range (unless the row is about
	// elements ignored at that place), and every documented name is one
	// the parser knows.
	for sec, rows := range sections {
		for _, r := range rows {
			for _, name := range r.names {
				if rg, ok := ranges[name]; ok && !strings.Contains(r.line, docIgnoredStatus) {
					if s := "[" + strconv.FormatInt(rg.Min, 10) + ", " + strconv.FormatInt(rg.Max, 10) + "]"; !strings.Contains(r.line, s) {
						t.Errorf("docs/configuration.md: a row of <%s> does not show its range %s: %s", name, s, r.line)
					}
				}
			}
		}
		if !documentsElements(sec) {
			continue
		}
		for _, r := range rows {
			for _, name := range r.names {
				if !known[name] {
					t.Errorf("docs/configuration.md, section %q: <%s> is not an element, attribute, parameter or property the parser knows: %s", sec, name, r.line)
				}
			}
		}
	}
}

// documentsElements reports whether sec is a section of the reference
// whose rows name elements (all of them except the introduction's).
func documentsElements(sec string) bool {
	for _, in := range docFuncs {
		if slices.Contains(in, sec) {
			return true
		}
	}
	for _, s := range docHAKinds {
		if s == sec {
			return true
		}
	}
	return sec == docURLParams
}
