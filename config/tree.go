package config

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits that keep a hostile or broken file from exhausting memory.
const (
	maxFileSize = 16 << 20
	maxDepth    = 64
	maxElements = 200000
)

// Namespaces accepted for broker.xml elements.
var artemisSpaces = map[string]bool{"": true, "urn:activemq": true, "urn:activemq:core": true}

const xincludeSpace = "http://www.w3.org/2001/XInclude"

// node is one XML element with the line it starts on.
type node struct {
	space    string
	name     string
	attrs    []xml.Attr
	text     []byte // character data directly inside the element
	children []*node
	line     int
}

// attr returns the value of the attribute with the given local name.
func (n *node) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Local == name && (a.Name.Space == "" || artemisSpaces[a.Name.Space]) {
			return a.Value, true
		}
	}
	return "", false
}

// value is the element's text with surrounding white space removed.
func (n *node) value() string { return strings.TrimSpace(string(n.text)) }

// fixEndTags rewrites the malformed end tag "</name/>" (it appears in the
// AMQ Broker manual's colocated example) to "</name >" in place, keeping
// every offset and line, and reports the lines it fixed.
func fixEndTags(b []byte) []fixedTag {
	var lines []fixedTag
	line := 1
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\n':
			line++
		case '<':
			if i+1 < len(b) && b[i+1] == '!' {
				// Skip comments and CDATA so their contents stay untouched.
				end := []byte("-->")
				if bytes.HasPrefix(b[i:], []byte("<![CDATA[")) {
					end = []byte("]]>")
				} else if !bytes.HasPrefix(b[i:], []byte("<!--")) {
					continue
				}
				j := bytes.Index(b[i:], end)
				if j < 0 {
					return lines
				}
				line += bytes.Count(b[i:i+j], []byte("\n"))
				i += j
				continue
			}
			if i+1 >= len(b) || b[i+1] != '/' {
				continue
			}
			j := i + 2
			for j < len(b) && isNameByte(b[j]) {
				j++
			}
			if j > i+2 && j+1 < len(b) && b[j] == '/' && b[j+1] == '>' {
				b[j] = ' '
				lines = append(lines, fixedTag{line, string(b[i+2 : j])})
			}
		}
	}
	return lines
}

type fixedTag struct {
	line int
	name string
}

func isNameByte(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c == ':' || c >= '0' && c <= '9' ||
		c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// readTree reads the whole document into a tree of nodes. The returned
// warnings are about input that was repaired.
func readTree(file string, r io.Reader) (*node, []Warning, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(b) > maxFileSize {
		return nil, nil, &Error{File: file, Line: 1, Msg: fmt.Sprintf("file larger than %d bytes", maxFileSize)}
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	var warns []Warning
	for _, f := range fixEndTags(b) {
		warns = append(warns, Warning{File: file, Line: f.line, Msg: fmt.Sprintf("malformed end tag \"</%s/>\" read as \"</%s>\"", f.name, f.name)})
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.CharsetReader = charsetReader
	var (
		root  *node
		stack []*node
		count int
	)
	for {
		line, _ := d.InputPos()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, warns, &Error{File: file, Line: se.Line, Msg: "XML syntax error: " + se.Msg}
			}
			l, _ := d.InputPos()
			return nil, warns, &Error{File: file, Line: l, Msg: "XML error: " + strings.TrimPrefix(err.Error(), "xml: ")}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if count > maxElements {
				return nil, warns, &Error{File: file, Line: line, Msg: fmt.Sprintf("more than %d elements", maxElements)}
			}
			if len(stack) >= maxDepth {
				return nil, warns, &Error{File: file, Line: line, Msg: fmt.Sprintf("elements nested deeper than %d", maxDepth)}
			}
			n := &node{space: t.Name.Space, name: t.Name.Local, attrs: t.Attr, line: line}
			if len(stack) == 0 {
				if root != nil {
					return nil, warns, &Error{File: file, Line: line, Msg: "more than one root element"}
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.text = append(p.text, t...)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, warns, &Error{File: file, Line: line, Msg: "text outside the root element"}
			}
		}
	}
	if root == nil {
		return nil, warns, &Error{File: file, Line: 1, Msg: "no <configuration> element (empty document)"}
	}
	if len(stack) != 0 {
		l, _ := d.InputPos()
		return nil, warns, &Error{File: file, Line: l, Msg: fmt.Sprintf("unexpected end of file: <%s> (line %d) is not closed", stack[len(stack)-1].name, stack[len(stack)-1].line)}
	}
	return root, warns, nil
}

// charsetReader accepts the encodings besides UTF-8 that an XML editor
// may declare: US-ASCII and ISO-8859-1 (Latin-1).
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		b, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return strings.NewReader(string(r)), nil
	}
	return nil, fmt.Errorf("encoding %q is not supported (use UTF-8)", charset)
}
