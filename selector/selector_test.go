package selector

import (
	"errors"
	"strings"
	"testing"
)

type props map[string]any

func (p props) Value(name string) any { return p[name] }

func TestMatches(t *testing.T) {
	m := props{"color": "red", "size": int64(10), "weight": 2.5, "urgent": true, "name": "a_b%c", "n": int32(-3)}
	cases := []struct {
		sel  string
		want bool
	}{
		{"color = 'red'", true},
		{"color = 'blue'", false},
		{"color <> 'blue'", true},
		{"size > 5 AND size <= 10", true},
		{"size > 5 AND size < 10", false},
		{"size BETWEEN 10 AND 20", true},
		{"size NOT BETWEEN 10 AND 20", false},
		{"weight > 2", true},
		{"size = 10.0", true},
		{"size + 1 = 11", true},
		{"size * 2 - 4 / 2 = 18", true},
		{"size % 3 = 1", true},
		{"-n = 3", true},
		{"urgent", true},
		{"urgent = TRUE", true},
		{"NOT urgent", false},
		{"color IN ('green', 'red')", true},
		{"color NOT IN ('green', 'red')", false},
		{"missing IN ('x')", false},
		{"missing NOT IN ('x')", false}, // unknown, not true
		{"color LIKE 'r%'", true},
		{"color LIKE '_ed'", true},
		{"color LIKE 'r_'", false},
		{"color NOT LIKE 'b%'", true},
		{`name LIKE 'a\_b\%c' ESCAPE '\'`, true},
		{`name LIKE 'a\_bx%' ESCAPE '\'`, false},
		{"missing IS NULL", true},
		{"color IS NOT NULL", true},
		{"missing = 'x'", false},
		{"NOT (missing = 'x')", false}, // unknown stays unknown
		{"missing = 'x' OR color = 'red'", true},
		{"missing = 'x' AND color = 'blue'", false},
		{"color = 5", false},       // different kinds: unknown
		{"NOT (color = 5)", false}, // still unknown
		{"size / 0 = 1", false},    // integer division by zero: unknown
		{"0x0A = size", true},
		{"012 = size", true},
		{"10L = size", true},
		{"1e1 = size", true},
		{"'it''s' = 'it''s'", true},
		{"(color = 'red' OR color = 'blue') AND NOT (size > 100)", true},
		{"color = 'red' OR size / 0 = 1", true},
		{"TRUE", true},
		{"FALSE OR NULL", false},
	}
	for _, c := range cases {
		s, err := Parse(c.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.sel, err)
			continue
		}
		if got := s.Matches(m); got != c.want {
			t.Errorf("%q: Matches = %v, want %v (canonical %s)", c.sel, got, c.want, s)
		}
		again, err := Parse(s.String())
		if err != nil || again.String() != s.String() {
			t.Errorf("%q: canonical form %q does not parse back to itself: %v", c.sel, s, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for sel, want := range map[string]string{
		"":                         "empty selector",
		"   ":                      "empty selector",
		"color = ":                 "expected a value",
		"color = 'red":             "unterminated string",
		"a NOT b":                  "NOT here must be followed",
		"a LIKE b":                 "LIKE needs a string pattern",
		"a LIKE 'x' ESCAPE '":      "unterminated string",
		"a LIKE 'x' ESCAPE 'ab'":   "ESCAPE needs a string of one character",
		"a LIKE 'x!' ESCAPE '!'":   "ends with its escape character",
		"a IN 'x'":                 "IN needs a parenthesised list",
		"a IN ('x' 'y')":           "expected , or )",
		"a IN (b)":                 "IN lists literals",
		"a IS 5":                   "IS needs NULL",
		"a BETWEEN 1 OR 2":         "BETWEEN needs AND",
		"(a = 1":                   "expected )",
		"a = 1)":                   "after the end of the expression",
		"a # 1":                    "unexpected character",
		"09 = a":                   "bad integer",
		"12abc = a":                "bad number",
		"1e = a":                   "bad exponent",
		"a = 99999999999999999999": "bad integer",
	} {
		_, err := Parse(sel)
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an *Error containing %q", sel, err, want)
		}
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("(", MaxDepth+1) + "a" + strings.Repeat(")", MaxDepth+1)
	if _, err := Parse(deep); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("deep nesting: %v", err)
	}
	nots := strings.Repeat("NOT ", MaxDepth+1) + "a"
	if _, err := Parse(nots); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("deep NOT: %v", err)
	}
	long := "a = '" + strings.Repeat("x", MaxLength) + "'"
	if _, err := Parse(long); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long selector: %v", err)
	}
	ok := strings.Repeat("(", MaxDepth-1) + "a" + strings.Repeat(")", MaxDepth-1)
	if _, err := Parse(ok); err != nil {
		t.Errorf("nesting within the limit: %v", err)
	}
}

func TestLikeWorstCase(t *testing.T) {
	s, err := Parse("a LIKE '" + strings.Repeat("%a", 50) + "b'")
	if err != nil {
		t.Fatal(err)
	}
	if s.Matches(props{"a": strings.Repeat("a", 5000)}) {
		t.Fatal("matched a string without b")
	}
}

// FuzzSelector: Parse never panics; what parses renders to a canonical
// form that parses to itself, and evaluates without panicking.
func FuzzSelector(f *testing.F) {
	for _, s := range []string{"color = 'red'", "a BETWEEN 1 AND 2", "x LIKE 'a%' ESCAPE '!'", "NOT (a IN ('x', 1, TRUE, NULL))",
		"a IS NOT NULL OR -b * 2.5e3 / c % 4 <> 0x1f", "((a))", "a <= 012L"} {
		f.Add(s, "red", int64(3))
	}
	f.Fuzz(func(t *testing.T, sel, sv string, iv int64) {
		s, err := Parse(sel)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): error of type %T: %v", sel, err, err)
			}
			return
		}
		canon := s.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, sel, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form not stable: %q -> %q", canon, again.String())
		}
		m := props{"a": sv, "b": iv, "c": float64(iv) / 3, "x": sv, "color": sv}
		if s.Matches(m) != again.Matches(m) {
			t.Fatalf("%q and its canonical form %q disagree", sel, canon)
		}
		s.Matches(nil)
	})
}
