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

// integer parses an int no smaller than min.
func (p *parser) integer(n *node, dst *int, min int) {
	var v int64
	if p.int64v(n, &v, int64(min)) {
		if v > math.MaxInt32 {
			p.errorf(n, "<%s>: %d is too large", n.name, v)
			return
		}
		*dst = int(v)
	}
}

func (p *parser) int64v(n *node, dst *int64, min int64) bool {
	v, ok := p.leaf(n)
	if !ok {
		return false
	}
	if v == "" {
		p.errorf(n, "<%s> is empty (want a number)", n.name)
		return false
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.errorf(n, "<%s>: %q is not an integer", n.name, v)
		return false
	}
	if i < min {
		p.errorf(n, "<%s>: %d is less than %d", n.name, i, min)
		return false
	}
	*dst = i
	return true
}

// millis parses a duration in milliseconds no smaller than min (min -1
// allows -1 as "none/forever").
func (p *parser) millis(n *node, dst *time.Duration, min int64) {
	p.scaled(n, dst, min, time.Millisecond)
}

func (p *parser) scaled(n *node, dst *time.Duration, min int64, unit time.Duration) {
	var v int64
	if !p.int64v(n, &v, min) {
		return
	}
	if v > math.MaxInt64/int64(unit) {
		p.errorf(n, "<%s>: %d is too large", n.name, v)
		return
	}
	*dst = time.Duration(v) * unit
}

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
	*dst = f
}

// byteSize parses a size as Artemis does ("Byte Notation"): a number with
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

func (p *parser) byteSize(n *node, dst *int64, min int64) {
	v, ok := p.leaf(n)
	if !ok {
		return
	}
	b, err := parseByteSize(v)
	if err != nil {
		p.errorf(n, "<%s>: %v", n.name, err)
		return
	}
	if b < min {
		p.errorf(n, "<%s>: %d bytes is less than %d", n.name, b, min)
		return
	}
	*dst = b
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
