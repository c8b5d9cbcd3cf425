package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// leaf returns n's value, reporting an error when n holds elements.
func (p *parser) leaf(n *node) (string, bool) {
	if len(n.children) > 0 {
		p.errorf(n.children[0], "<%s> takes a value, not elements (found <%s>)", n.name, n.children[0].name)
		return "", false
	}
	v := n.value()
	if strings.Contains(v, "${") {
		p.warnf(n, "<%s>: ${...} property substitution is not supported; %q is used as written", n.name, v)
	}
	return v, true
}

func (p *parser) str(n *node, dst *string) {
	if v, ok := p.leaf(n); ok {
		*dst = v
	}
}

func (p *parser) boolean(n *node, dst *bool) {
	v, ok := p.leaf(n)
	if !ok {
		return
	}
	switch strings.ToLower(v) {
	case "true", "1":
		*dst = true
	case "false", "0":
		*dst = false
	default:
		p.errorf(n, "<%s>: %q is not a boolean (want true or false)", n.name, v)
	}
}

// The numeric helpers below parse an element's value in their unit and
// check it against the element's range (ranges, checkRange): every numeric
// element is read through one of them, named by its unit, so
// TestRangesCoverElements can find them all.

// integer parses a count.
func (p *parser) integer(n *node, dst *int) {
	if v, ok := p.ranged(n, Count); ok {
		*dst = int(v) // every Count range fits an int32
	}
}

// millis parses a duration in milliseconds; -1 (none, for ever) stays
// negative.
func (p *parser) millis(n *node, dst *time.Duration) {
	if v, ok := p.ranged(n, Millis); ok {
		*dst = time.Duration(v) * time.Millisecond
	}
}

// nanos parses a duration in nanoseconds.
func (p *parser) nanos(n *node, dst *time.Duration) {
	if v, ok := p.ranged(n, Nanos); ok {
		*dst = time.Duration(v)
	}
}

// seconds parses a duration in seconds.
func (p *parser) seconds(n *node, dst *time.Duration) {
	if v, ok := p.ranged(n, Seconds); ok {
		*dst = time.Duration(v) * time.Second
	}
}

// ranged parses n's integer value and checks it against n's range, which
// must be in unit.
func (p *parser) ranged(n *node, unit Unit) (int64, bool) {
	v, ok := p.leaf(n)
	if !ok {
		return 0, false
	}
	if v == "" {
		p.errorf(n, "<%s> is empty (want a number)", n.name)
		return 0, false
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.errorf(n, "<%s>: %q is not an integer", n.name, v)
		return 0, false
	}
	return i, p.inRange(n, unit, i)
}

// inRange reports whether v is in n's range (in unit), reporting an error
// with the range when it is not.
func (p *parser) inRange(n *node, unit Unit, v int64) bool {
	if r, ok := ranges[n.name]; ok && r.Unit != unit {
		p.errorf(n, "<%s>: read in %q, but its range is in %q (a bug in Tandem)", n.name, unit, r.Unit)
		return false
	}
	if err := checkRange(n.name, v); err != nil {
		p.errorf(n, "%v", err)
		return false
	}
	p.numbers[n.name] = n
	return true
}

// float parses a decimal number.
func (p *parser) float(n *node, dst *float64) {
	v, ok := p.leaf(n)
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.errorf(n, "<%s>: %q is not a number", n.name, v)
		return
	}
	if r, ok := ranges[n.name]; ok && r.Unit != Ratio {
		p.errorf(n, "<%s>: read as a decimal number, but its range is in %q (a bug in Tandem)", n.name, r.Unit)
		return
	}
	if err := checkRangeFloat(n.name, f); err != nil {
		p.errorf(n, "%v", err)
		return
	}
	p.numbers[n.name] = n
	*dst = f
}

// parseByteSize parses a size as Artemis does ("Byte Notation"): a number with
// an optional unit K, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB, TiB (any case,
// all powers of 1024, as in Artemis's ByteUtil), e.g. 10M, 10MB, 10 MiB.
func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || i == 0 && s[i] == '-') {
		i++
	}
	num, unit := s[:i], strings.ToUpper(strings.TrimFunc(s[i:], unicode.IsSpace))
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (e.g. 10485760, 10M, 10MB or 10MiB)", s)
	}
	shift := 0
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I") {
	case "":
		if unit != "" && unit != "B" {
			return 0, fmt.Errorf("%q: unknown unit %q", s, s[i:])
		}
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	default:
		return 0, fmt.Errorf("%q: unknown unit %q (want K, M, G or T, optionally followed by B or iB)", s, strings.TrimSpace(s[i:]))
	}
	if v > math.MaxInt64>>shift || v < math.MinInt64>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v << shift, nil
}

// byteSize parses a size in bytes (Artemis's byte notation).
func (p *parser) byteSize(n *node, dst *int64) {
	v, ok := p.leaf(n)
	if !ok {
		return
	}
	b, err := parseByteSize(v)
	if err != nil {
		p.errorf(n, "<%s>: %v", n.name, err)
		return
	}
	if p.inRange(n, Bytes, b) {
		*dst = b
	}
}

// splitList splits "a, b,c" into its non-empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// suggest returns " (did you mean <x>?)" for the closest candidate, if close.
func suggest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(2, len(name)/3) {
		return fmt.Sprintf(" (did you mean <%s>?)", best)
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
