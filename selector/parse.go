package selector

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits on a selector's text and nesting.
const (
	MaxLength = 16 << 10
	MaxDepth  = 100
)

// Selector is a parsed selector. It is immutable and safe for concurrent
// use.
type Selector struct {
	text string
	root node
}

// Values gives a message's fields and properties by name; nil (or a name
// it does not have) is NULL. Values of kinds other than bool, string and
// Go's integer and float kinds are NULL too.
type Values interface {
	Value(name string) any
}

// Error is a selector that does not parse: the byte offset and the reason.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("selector: at offset %d: %s", e.Offset, e.Reason)
}

// Parse parses a selector. An empty (or blank) text is an error: the
// caller decides what "no selector" means.
func Parse(text string) (*Selector, error) {
	if len(text) > MaxLength {
		return nil, &Error{Offset: MaxLength, Reason: fmt.Sprintf("selector of %d bytes, longer than %d", len(text), MaxLength)}
	}
	p := &parser{lx: lexer{src: text}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, &Error{Offset: 0, Reason: "empty selector"}
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errorf("unexpected %s after the end of the expression", p.tok)
	}
	return &Selector{text: text, root: n}, nil
}

// Text returns the selector as given to Parse.
func (s *Selector) Text() string { return s.text }

// String returns the selector in a canonical form (keywords in upper
// case, only the parentheses its structure needs) that parses to the
// same selector.
func (s *Selector) String() string {
	var b strings.Builder
	s.root.render(&b)
	return b.String()
}

// Matches reports whether the selector is TRUE for m (FALSE and unknown
// do not match).
func (s *Selector) Matches(m Values) bool {
	v := s.root.eval(m)
	return v.k == kBool && v.b
}

// token kinds
type tkind uint8

const (
	tEOF tkind = iota
	tIdent
	tString
	tInt
	tFloat
	tOp      // = <> < <= > >= + - * / % ( ) ,
	tKeyword // AND OR NOT BETWEEN LIKE ESCAPE IN IS NULL TRUE FALSE
)

type token struct {
	kind tkind
	text string // identifier, keyword (upper case), operator, string contents
	i    int64
	f    float64
	off  int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return "string " + quote(t.text)
	case tIdent:
		return "identifier " + t.text
	case tKeyword:
		return t.text
	case tInt, tFloat:
		return "number"
	}
	return strconv.Quote(t.text)
}

var keywords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "BETWEEN": true, "LIKE": true, "ESCAPE": true,
	"IN": true, "IS": true, "NULL": true, "TRUE": true, "FALSE": true,
}

type lexer struct {
	src string
	off int
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '.' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (l *lexer) next() (token, error) {
	s := l.src
	for l.off < len(s) && (s[l.off] == ' ' || s[l.off] == '\t' || s[l.off] == '\n' || s[l.off] == '\r' || s[l.off] == '\f') {
		l.off++
	}
	start := l.off
	if l.off >= len(s) {
		return token{kind: tEOF, off: start}, nil
	}
	c := s[l.off]
	switch {
	case isIdentStart(c):
		for l.off < len(s) && isIdentPart(s[l.off]) {
			l.off++
		}
		w := s[start:l.off]
		if u := strings.ToUpper(w); keywords[u] {
			return token{kind: tKeyword, text: u, off: start}, nil
		}
		return token{kind: tIdent, text: w, off: start}, nil
	case c == '\'':
		var b strings.Builder
		l.off++
		for {
			if l.off >= len(s) {
				return token{}, &Error{Offset: start, Reason: "unterminated string literal"}
			}
			if s[l.off] == '\'' {
				if l.off+1 < len(s) && s[l.off+1] == '\'' {
					b.WriteByte('\'')
					l.off += 2
					continue
				}
				l.off++
				return token{kind: tString, text: b.String(), off: start}, nil
			}
			b.WriteByte(s[l.off])
			l.off++
		}
	case isDigit(c) || c == '.' && l.off+1 < len(s) && isDigit(s[l.off+1]):
		return l.number()
	}
	two := ""
	if l.off+1 < len(s) {
		two = s[l.off : l.off+2]
	}
	switch two {
	case "<>", "<=", ">=":
		l.off += 2
		return token{kind: tOp, text: two, off: start}, nil
	}
	switch c {
	case '=', '<', '>', '+', '-', '*', '/', '%', '(', ')', ',':
		l.off++
		return token{kind: tOp, text: string(c), off: start}, nil
	}
	return token{}, &Error{Offset: start, Reason: fmt.Sprintf("unexpected character %q", rune(c))}
}

// number lexes an integer (decimal, 0x hex, leading-0 octal, optional L)
// or a decimal number with an optional exponent.
func (l *lexer) number() (token, error) {
	s, start := l.src, l.off
	if s[l.off] == '0' && l.off+1 < len(s) && (s[l.off+1] == 'x' || s[l.off+1] == 'X') {
		l.off += 2
		ds := l.off
		for l.off < len(s) && (isDigit(s[l.off]) || s[l.off] >= 'a' && s[l.off] <= 'f' || s[l.off] >= 'A' && s[l.off] <= 'F') {
			l.off++
		}
		v, err := strconv.ParseUint(s[ds:l.off], 16, 64)
		if err != nil {
			return token{}, &Error{Offset: start, Reason: fmt.Sprintf("bad hexadecimal number %q", s[start:l.off])}
		}
		l.longSuffix()
		return token{kind: tInt, i: int64(v), off: start}, l.noIdentAfter(start)
	}
	for l.off < len(s) && isDigit(s[l.off]) {
		l.off++
	}
	float := false
	if l.off < len(s) && s[l.off] == '.' {
		float = true
		l.off++
		for l.off < len(s) && isDigit(s[l.off]) {
			l.off++
		}
	}
	if l.off < len(s) && (s[l.off] == 'e' || s[l.off] == 'E') {
		float = true
		l.off++
		if l.off < len(s) && (s[l.off] == '+' || s[l.off] == '-') {
			l.off++
		}
		ds := l.off
		for l.off < len(s) && isDigit(s[l.off]) {
			l.off++
		}
		if l.off == ds {
			return token{}, &Error{Offset: start, Reason: fmt.Sprintf("bad exponent in %q", s[start:l.off])}
		}
	}
	text := s[start:l.off]
	if float {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return token{}, &Error{Offset: start, Reason: fmt.Sprintf("bad number %q", text)}
		}
		return token{kind: tFloat, f: f, off: start}, l.noIdentAfter(start)
	}
	base := 10
	if len(text) > 1 && text[0] == '0' {
		base = 8
	}
	v, err := strconv.ParseInt(text, base, 64)
	if err != nil {
		return token{}, &Error{Offset: start, Reason: fmt.Sprintf("bad integer %q", text)}
	}
	l.longSuffix()
	return token{kind: tInt, i: v, off: start}, l.noIdentAfter(start)
}

func (l *lexer) longSuffix() {
	if l.off < len(l.src) && (l.src[l.off] == 'l' || l.src[l.off] == 'L') {
		l.off++
	}
}

// noIdentAfter refuses "12abc": a number runs into an identifier.
func (l *lexer) noIdentAfter(start int) error {
	if l.off < len(l.src) && isIdentPart(l.src[l.off]) {
		return &Error{Offset: start, Reason: fmt.Sprintf("bad number %q", l.src[start:l.off+1])}
	}
	return nil
}

type parser struct {
	lx    lexer
	tok   token
	depth int
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errorf(format string, args ...any) error {
	return &Error{Offset: p.tok.off, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) isKw(k string) bool { return p.tok.kind == tKeyword && p.tok.text == k }
func (p *parser) isOp(o string) bool { return p.tok.kind == tOp && p.tok.text == o }

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errorf("nested more than %d levels deep", MaxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) expr() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isKw("OR") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &logic{op: "OR", l: l, r: r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.isKw("AND") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &logic{op: "AND", l: l, r: r}
	}
	return l, nil
}

func (p *parser) not() (node, error) {
	if p.isKw("NOT") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &notNode{x: x}, nil
	}
	return p.predicate()
}

func (p *parser) predicate() (node, error) {
	l, err := p.sum()
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tOp {
		switch op := p.tok.text; op {
		case "=", "<>", "<", "<=", ">", ">=":
			if err := p.advance(); err != nil {
				return nil, err
			}
			r, err := p.sum()
			if err != nil {
				return nil, err
			}
			return &compare{op: op, l: l, r: r}, nil
		}
		return l, nil
	}
	neg := false
	if p.isKw("NOT") {
		neg = true
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.isKw("BETWEEN") && !p.isKw("LIKE") && !p.isKw("IN") {
			return nil, p.errorf("NOT here must be followed by BETWEEN, LIKE or IN, not %s", p.tok)
		}
	}
	switch {
	case p.isKw("BETWEEN"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		lo, err := p.sum()
		if err != nil {
			return nil, err
		}
		if !p.isKw("AND") {
			return nil, p.errorf("BETWEEN needs AND, found %s", p.tok)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		hi, err := p.sum()
		if err != nil {
			return nil, err
		}
		return &between{x: l, lo: lo, hi: hi, not: neg}, nil
	case p.isKw("LIKE"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tString {
			return nil, p.errorf("LIKE needs a string pattern, found %s", p.tok)
		}
		pat := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		esc, hasEsc := "", false
		if p.isKw("ESCAPE") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tString || len([]rune(p.tok.text)) != 1 {
				return nil, p.errorf("ESCAPE needs a string of one character, found %s", p.tok)
			}
			esc, hasEsc = p.tok.text, true
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		m, err := compileLike(pat, esc, hasEsc)
		if err != nil {
			return nil, p.errorf("%v", err)
		}
		return &like{x: l, pattern: pat, esc: esc, hasEsc: hasEsc, m: m, not: neg}, nil
	case p.isKw("IN"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.isOp("(") {
			return nil, p.errorf("IN needs a parenthesised list, found %s", p.tok)
		}
		var list []value
		for {
			if err := p.advance(); err != nil {
				return nil, err
			}
			v, ok := p.literal()
			if !ok {
				return nil, p.errorf("IN lists literals, found %s", p.tok)
			}
			list = append(list, v)
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.isOp(")") {
				break
			}
			if !p.isOp(",") {
				return nil, p.errorf("expected , or ) in the IN list, found %s", p.tok)
			}
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		return &in{x: l, list: list, not: neg}, nil
	case p.isKw("IS"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		isNot := false
		if p.isKw("NOT") {
			isNot = true
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if !p.isKw("NULL") {
			return nil, p.errorf("IS needs NULL or NOT NULL, found %s", p.tok)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		return &isNull{x: l, not: isNot}, nil
	}
	return l, nil
}

func (p *parser) sum() (node, error) {
	l, err := p.product()
	if err != nil {
		return nil, err
	}
	for p.isOp("+") || p.isOp("-") {
		op := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.product()
		if err != nil {
			return nil, err
		}
		l = &arith{op: op[0], l: l, r: r}
	}
	return l, nil
}

func (p *parser) product() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isOp("*") || p.isOp("/") || p.isOp("%") {
		op := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &arith{op: op[0], l: l, r: r}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if p.isOp("+") || p.isOp("-") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		neg := p.tok.text == "-"
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if !neg {
			return &plus{x: x}, nil
		}
		return &negate{x: x}, nil
	}
	return p.primary()
}

func (p *parser) primary() (node, error) {
	switch {
	case p.tok.kind == tIdent:
		n := &ident{name: p.tok.text}
		return n, p.advance()
	case p.isOp("("):
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if !p.isOp(")") {
			return nil, p.errorf("expected ), found %s", p.tok)
		}
		return x, p.advance()
	}
	if v, ok := p.literal(); ok {
		return &lit{v: v}, p.advance()
	}
	return nil, p.errorf("expected a value, found %s", p.tok)
}

// literal returns the current token as a literal value.
func (p *parser) literal() (value, bool) {
	switch {
	case p.tok.kind == tString:
		return value{k: kString, s: p.tok.text}, true
	case p.tok.kind == tInt:
		return value{k: kInt, i: p.tok.i}, true
	case p.tok.kind == tFloat:
		return value{k: kFloat, f: p.tok.f}, true
	case p.isKw("TRUE"):
		return value{k: kBool, b: true}, true
	case p.isKw("FALSE"):
		return value{k: kBool}, true
	case p.isKw("NULL"):
		return value{}, true
	}
	return value{}, false
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
