package selector

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

type vkind uint8

const (
	kNull vkind = iota
	kBool
	kInt
	kFloat
	kString
)

// value is a selector value; the zero value is NULL.
type value struct {
	k vkind
	b bool
	i int64
	f float64
	s string
}

func (v value) num() (float64, bool) {
	switch v.k {
	case kInt:
		return float64(v.i), true
	case kFloat:
		return v.f, true
	}
	return 0, false
}

func (v value) render(b *strings.Builder) {
	switch v.k {
	case kNull:
		b.WriteString("NULL")
	case kBool:
		if v.b {
			b.WriteString("TRUE")
		} else {
			b.WriteString("FALSE")
		}
	case kInt:
		if v.i < 0 { // a negative literal only comes from hex: keep it one
			b.WriteString("0x" + strconv.FormatUint(uint64(v.i), 16))
			return
		}
		b.WriteString(strconv.FormatInt(v.i, 10))
	case kFloat:
		s := strconv.FormatFloat(v.f, 'e', -1, 64)
		b.WriteString(s)
	case kString:
		b.WriteString(quote(v.s))
	}
}

var (
	vTrue    = value{k: kBool, b: true}
	vFalse   = value{k: kBool}
	vUnknown = value{}
)

func boolValue(b bool) value {
	if b {
		return vTrue
	}
	return vFalse
}

// fromAny converts a property value; other kinds are NULL.
func fromAny(x any) value {
	switch v := x.(type) {
	case bool:
		return boolValue(v)
	case string:
		return value{k: kString, s: v}
	case int:
		return value{k: kInt, i: int64(v)}
	case int8:
		return value{k: kInt, i: int64(v)}
	case int16:
		return value{k: kInt, i: int64(v)}
	case int32:
		return value{k: kInt, i: int64(v)}
	case int64:
		return value{k: kInt, i: v}
	case uint8:
		return value{k: kInt, i: int64(v)}
	case uint16:
		return value{k: kInt, i: int64(v)}
	case uint32:
		return value{k: kInt, i: int64(v)}
	case uint64:
		if v > math.MaxInt64 {
			return value{k: kFloat, f: float64(v)}
		}
		return value{k: kInt, i: int64(v)}
	case float32:
		return value{k: kFloat, f: float64(v)}
	case float64:
		return value{k: kFloat, f: v}
	}
	return vUnknown
}

type node interface {
	eval(m Values) value
	// level is the node's precedence: 1 OR, 2 AND, 3 NOT, 4 predicate,
	// 5 sum, 6 product, 7 unary, 8 primary.
	level() int
	// render writes the node without the parentheses around it.
	render(b *strings.Builder)
}

// renderAt writes n, in parentheses when its precedence is below min:
// the canonical form has only the parentheses the tree needs, so it nests
// no deeper than the text it was parsed from.
func renderAt(b *strings.Builder, n node, min int) {
	if n.level() < min {
		b.WriteString("(")
		n.render(b)
		b.WriteString(")")
		return
	}
	n.render(b)
}

func (*lit) level() int   { return 8 }
func (*ident) level() int { return 8 }
func (n *logic) level() int {
	if n.op == "OR" {
		return 1
	}
	return 2
}
func (*notNode) level() int { return 3 }
func (*compare) level() int { return 4 }
func (*between) level() int { return 4 }
func (*in) level() int      { return 4 }
func (*isNull) level() int  { return 4 }
func (*like) level() int    { return 4 }
func (n *arith) level() int {
	if n.op == '+' || n.op == '-' {
		return 5
	}
	return 6
}
func (*negate) level() int { return 7 }
func (*plus) level() int   { return 7 }

type lit struct{ v value }

func (n *lit) eval(Values) value           { return n.v }
func (n *lit) render(b *strings.Builder)   { n.v.render(b) }
func (n *ident) render(b *strings.Builder) { b.WriteString(n.name) }
func (n *notNode) render(b *strings.Builder) {
	b.WriteString("(NOT ")
	n.x.render(b)
	b.WriteString(")")
}

type ident struct{ name string }

func (n *ident) eval(m Values) value {
	if m == nil {
		return vUnknown
	}
	return fromAny(m.Value(n.name))
}

type logic struct {
	op   string // AND, OR
	l, r node
}

func (n *logic) eval(m Values) value {
	l := n.l.eval(m)
	if n.op == "AND" {
		if l.k == kBool && !l.b {
			return vFalse
		}
		r := n.r.eval(m)
		switch {
		case r.k == kBool && !r.b:
			return vFalse
		case l.k == kBool && r.k == kBool:
			return vTrue
		}
		return vUnknown
	}
	if l.k == kBool && l.b {
		return vTrue
	}
	r := n.r.eval(m)
	switch {
	case r.k == kBool && r.b:
		return vTrue
	case l.k == kBool && r.k == kBool:
		return vFalse
	}
	return vUnknown
}

func (n *logic) render(b *strings.Builder) {
	lv := n.level()
	renderAt(b, n.l, lv)
	b.WriteString(" " + n.op + " ")
	renderAt(b, n.r, lv+1)
}

type notNode struct{ x node }

func (n *notNode) eval(m Values) value {
	v := n.x.eval(m)
	if v.k != kBool {
		return vUnknown
	}
	return boolValue(!v.b)
}

type compare struct {
	op   string
	l, r node
}

// cmp orders a and b: -1, 0, 1, or ok false when they do not compare
// (NULL, different kinds, NaN).
func cmp(a, b value) (int, bool) {
	if a.k == kInt && b.k == kInt {
		switch {
		case a.i < b.i:
			return -1, true
		case a.i > b.i:
			return 1, true
		}
		return 0, true
	}
	if x, ok := a.num(); ok {
		y, ok := b.num()
		if !ok || math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	if a.k == kString && b.k == kString {
		return strings.Compare(a.s, b.s), true
	}
	if a.k == kBool && b.k == kBool {
		if a.b == b.b {
			return 0, true
		}
		return 1, true // only = and <> use it
	}
	return 0, false
}

func (n *compare) eval(m Values) value { return compareValues(n.op, n.l.eval(m), n.r.eval(m)) }

// compareValues applies a comparison operator.
func compareValues(op string, l, r value) value {
	if (l.k == kBool) != (r.k == kBool) {
		return vUnknown
	}
	c, ok := cmp(l, r)
	if !ok {
		return vUnknown
	}
	switch op {
	case "=":
		return boolValue(c == 0)
	case "<>":
		return boolValue(c != 0)
	}
	if l.k == kBool {
		return vUnknown // booleans are not ordered
	}
	switch op {
	case "<":
		return boolValue(c < 0)
	case "<=":
		return boolValue(c <= 0)
	case ">":
		return boolValue(c > 0)
	}
	return boolValue(c >= 0)
}

func (n *compare) render(b *strings.Builder) {
	renderAt(b, n.l, 5)
	b.WriteString(" " + n.op + " ")
	renderAt(b, n.r, 5)
}

type arith struct {
	op   byte
	l, r node
}

func (n *arith) eval(m Values) value {
	l, r := n.l.eval(m), n.r.eval(m)
	if l.k == kInt && r.k == kInt {
		switch n.op {
		case '+':
			return value{k: kInt, i: l.i + r.i}
		case '-':
			return value{k: kInt, i: l.i - r.i}
		case '*':
			return value{k: kInt, i: l.i * r.i}
		case '/':
			if r.i == 0 || l.i == math.MinInt64 && r.i == -1 {
				return vUnknown
			}
			return value{k: kInt, i: l.i / r.i}
		default:
			switch r.i {
			case 0:
				return vUnknown
			case -1: // MinInt64 % -1 would overflow
				return value{k: kInt}
			}
			return value{k: kInt, i: l.i % r.i}
		}
	}
	x, ok1 := l.num()
	y, ok2 := r.num()
	if !ok1 || !ok2 {
		return vUnknown
	}
	switch n.op {
	case '+':
		return value{k: kFloat, f: x + y}
	case '-':
		return value{k: kFloat, f: x - y}
	case '*':
		return value{k: kFloat, f: x * y}
	case '/':
		return value{k: kFloat, f: x / y}
	}
	return value{k: kFloat, f: math.Mod(x, y)}
}

func (n *arith) render(b *strings.Builder) {
	lv := n.level()
	renderAt(b, n.l, lv)
	b.WriteString(" " + string(n.op) + " ")
	renderAt(b, n.r, lv+1)
}

type negate struct{ x node }

func (n *negate) eval(m Values) value {
	v := n.x.eval(m)
	switch v.k {
	case kInt:
		return value{k: kInt, i: -v.i}
	case kFloat:
		return value{k: kFloat, f: -v.f}
	}
	return vUnknown
}

func (n *negate) render(b *strings.Builder) {
	b.WriteString("-")
	renderAt(b, n.x, 7)
}

type plus struct{ x node }

func (n *plus) eval(m Values) value {
	v := n.x.eval(m)
	if v.k != kInt && v.k != kFloat {
		return vUnknown
	}
	return v
}

func (n *plus) render(b *strings.Builder) {
	b.WriteString("+")
	renderAt(b, n.x, 7)
}

type between struct {
	x, lo, hi node
	not       bool
}

func (n *between) eval(m Values) value {
	x := n.x.eval(m)
	ge := compareValues(">=", x, n.lo.eval(m))
	le := compareValues("<=", x, n.hi.eval(m))
	var v value
	switch {
	case ge.k == kBool && !ge.b, le.k == kBool && !le.b:
		v = vFalse
	case ge.k == kBool && le.k == kBool:
		v = vTrue
	default:
		return vUnknown
	}
	return boolValue(v.b != n.not)
}

func (n *between) render(b *strings.Builder) {
	renderAt(b, n.x, 5)
	if n.not {
		b.WriteString(" NOT")
	}
	b.WriteString(" BETWEEN ")
	renderAt(b, n.lo, 5)
	b.WriteString(" AND ")
	renderAt(b, n.hi, 5)
}

type in struct {
	x    node
	list []value
	not  bool
}

func (n *in) eval(m Values) value {
	x := n.x.eval(m)
	if x.k == kNull {
		return vUnknown
	}
	found := false
	for _, v := range n.list {
		if (x.k == kBool) != (v.k == kBool) {
			continue
		}
		if c, ok := cmp(x, v); ok && c == 0 {
			found = true
			break
		}
	}
	return boolValue(found != n.not)
}

func (n *in) render(b *strings.Builder) {
	renderAt(b, n.x, 5)
	if n.not {
		b.WriteString(" NOT")
	}
	b.WriteString(" IN (")
	for i, v := range n.list {
		if i > 0 {
			b.WriteString(", ")
		}
		v.render(b)
	}
	b.WriteString(")")
}

type isNull struct {
	x   node
	not bool
}

func (n *isNull) eval(m Values) value { return boolValue((n.x.eval(m).k == kNull) != n.not) }

func (n *isNull) render(b *strings.Builder) {
	renderAt(b, n.x, 5)
	if n.not {
		b.WriteString(" IS NOT NULL")
	} else {
		b.WriteString(" IS NULL")
	}
}

// likeItem is one element of a compiled LIKE pattern: a literal rune, any
// one rune (_) or any run of runes (%).
type likeItem struct {
	r    rune
	kind uint8 // 0 literal, 1 one, 2 any
}

type like struct {
	x       node
	pattern string
	esc     string
	hasEsc  bool
	m       []likeItem
	not     bool
}

func compileLike(pat, esc string, hasEsc bool) ([]likeItem, error) {
	var e rune = -1
	if hasEsc {
		e, _ = utf8.DecodeRuneInString(esc)
	}
	var out []likeItem
	rs := []rune(pat)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == e:
			if i+1 >= len(rs) {
				return nil, fmt.Errorf("LIKE pattern %s ends with its escape character", quote(pat))
			}
			i++
			out = append(out, likeItem{r: rs[i]})
		case r == '%':
			if len(out) == 0 || out[len(out)-1].kind != 2 {
				out = append(out, likeItem{kind: 2})
			}
		case r == '_':
			out = append(out, likeItem{kind: 1})
		default:
			out = append(out, likeItem{r: r})
		}
	}
	return out, nil
}

// matchLike matches s against the compiled pattern in time O(len(s) x
// len(pattern)) at worst (the classic greedy matcher with one backtrack
// point).
func matchLike(p []likeItem, s string) bool {
	rs := []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(rs) {
		switch {
		case pi < len(p) && p[pi].kind == 2:
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi].kind == 1 || p[pi].r == rs[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi].kind == 2 {
		pi++
	}
	return pi == len(p)
}

func (n *like) eval(m Values) value {
	x := n.x.eval(m)
	if x.k != kString {
		return vUnknown
	}
	return boolValue(matchLike(n.m, x.s) != n.not)
}

func (n *like) render(b *strings.Builder) {
	renderAt(b, n.x, 5)
	if n.not {
		b.WriteString(" NOT")
	}
	b.WriteString(" LIKE " + quote(n.pattern))
	if n.hasEsc {
		b.WriteString(" ESCAPE " + quote(n.esc))
	}
}
