package activities

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"unicode/utf8"
)

var (
	errNotObject   = errors.New("profile is not a JSON object")
	errNumberRange = errors.New("profile holds a number out of float64's range")
)

// decodeFields decodes the members of a JSON object named in want, and
// skips the rest without building them: an audience scan evaluates a
// million documents against a condition that reads a few fields
// (canvases.Condition.UserFields), and decoding every member into a map
// was most of the scan's CPU and garbage. For those members the result is
// what json.Unmarshal into a map[string]any gives (the last of duplicate
// members wins; null is a nil map); a document json.Unmarshal rejects is
// rejected. Member names are matched exactly. The document is checked as
// it is walked, by encoding/json's grammar (json.Valid's), in one pass
// (ADR 046): checking it first with json.Valid was a second walk.
func decodeFields(doc []byte, want []string) (map[string]any, error) {
	return decodeFieldsInto(nil, doc, want)
}

// decodeFieldsInto is decodeFields into reuse, emptied first, when it is
// not nil: a caller that is done with one profile's fields before it
// decodes the next (a worker of the audience scan) allocates one map, not
// one per profile (ADR 051). What it returns is reuse, or nil for a null
// document.
func decodeFieldsInto(reuse map[string]any, doc []byte, want []string) (map[string]any, error) {
	w := walk{b: doc}
	i := skipSpace(doc, 0)
	switch {
	case i == len(doc):
		return nil, errNotObject
	case doc[i] == 'n':
		if end := w.literal(i, "null"); end < 0 || skipSpace(doc, end) != len(doc) {
			return nil, errNotObject
		}
		return nil, nil
	case doc[i] != '{':
		return nil, errNotObject // another value, or no JSON
	}
	out := reuse
	if out == nil {
		out = make(map[string]any, len(want))
	} else {
		clear(out)
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return w.done(out, i+1)
	}
	for {
		end := w.str(i)
		if end < 0 {
			return nil, errNotObject
		}
		raw := doc[i+1 : end-1]
		if i = skipSpace(doc, end); i == len(doc) || doc[i] != ':' {
			return nil, errNotObject
		}
		i = skipSpace(doc, i+1)
		vend := w.value(i, 2)
		if vend < 0 {
			return nil, errNotObject
		}
		if name, ok := wanted(raw, want); ok {
			v, err := decodeValue(doc[i:vend])
			if err != nil {
				return nil, err
			}
			out[name] = v
		}
		i = skipSpace(doc, vend)
		switch {
		case i < len(doc) && doc[i] == '}':
			return w.done(out, i+1)
		case i < len(doc) && doc[i] == ',':
			i = skipSpace(doc, i+1)
		default:
			return nil, errNotObject
		}
	}
}

// walk checks a JSON document as decodeFields skips through it. Its
// methods return the index after what they read, or -1 where the document
// breaks encoding/json's grammar.
type walk struct {
	b []byte
	// outOfRange: a number json.Valid accepts and json.Unmarshal rejects
	// (out of float64's range, e.g. 1e400); such a document is rejected
	// whichever members are wanted.
	outOfRange bool
}

// maxDepth is encoding/json's limit on nesting.
const maxDepth = 10000

// done ends the top-level object closed before end: only space may follow.
func (w *walk) done(out map[string]any, end int) (map[string]any, error) {
	switch {
	case skipSpace(w.b, end) != len(w.b):
		return nil, errNotObject
	case w.outOfRange:
		return nil, errNumberRange
	}
	return out, nil
}

// value reads the value at b[i], nested depth containers deep.
func (w *walk) value(i, depth int) int {
	b := w.b
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return w.str(i)
	case c == '{' || c == '[':
		if depth > maxDepth {
			return -1
		}
		return w.container(i, depth)
	case c == '-' || c >= '0' && c <= '9':
		return w.number(i)
	case c == 't':
		return w.literal(i, "true")
	case c == 'f':
		return w.literal(i, "false")
	case c == 'n':
		return w.literal(i, "null")
	}
	return -1
}

// container reads the object or array at b[i].
func (w *walk) container(i, depth int) int {
	b := w.b
	object := b[i] == '{'
	closer := byte(']')
	if object {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1
	}
	for {
		if object {
			if i = w.str(i); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i == len(b) || b[i] != ':' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
		if i = w.value(i, depth+1); i < 0 {
			return -1
		}
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == closer:
			return i + 1
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		default:
			return -1
		}
	}
}

// str reads the string at b[i]: no control characters, only JSON's
// escapes.
func (w *walk) str(i int) int {
	b := w.b
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i++; i == len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return -1
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number reads the number at b[i]: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
// Only a number with an exponent or of many digits can be out of float64's
// range, so only those are parsed.
func (w *walk) number(i int) int {
	b := w.b
	start := i
	digits := func(i int) int { // at least one
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	exp := false
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		exp = true
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if exp || i-start > 300 {
		if _, err := strconv.ParseFloat(string(b[start:i]), 64); err != nil {
			w.outOfRange = true
		}
	}
	return i
}

// literal reads true, false or null at b[i].
func (w *walk) literal(i int, lit string) int {
	if string(w.b[i:min(i+len(lit), len(w.b))]) != lit {
		return -1
	}
	return i + len(lit)
}

// decodeValue decodes one valid JSON value as json.Unmarshal into an any
// does; plain strings and literals directly (each json.Unmarshal call
// allocates a decoder).
func decodeValue(b []byte) (any, error) {
	switch b[0] {
	case '"':
		if s := b[1 : len(b)-1]; !slices.Contains(s, '\\') && utf8.Valid(s) {
			return string(s), nil
		}
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	var v any
	err := json.Unmarshal(b, &v)
	return v, err
}

// wanted reports whether a member's raw (still escaped) name is one of
// want, and returns that name.
func wanted(raw []byte, want []string) (string, bool) {
	for _, b := range raw {
		if b == '\\' { // escaped: decode the name properly
			var name string
			quoted := make([]byte, 0, len(raw)+2)
			quoted = append(append(append(quoted, '"'), raw...), '"')
			if json.Unmarshal(quoted, &name) != nil {
				return "", false
			}
			for _, w := range want {
				if w == name {
					return w, true
				}
			}
			return "", false
		}
	}
	for _, w := range want {
		if w == string(raw) {
			return w, true
		}
	}
	return "", false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
