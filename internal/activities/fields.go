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
// rejected. Member names are matched exactly.
func decodeFields(doc []byte, want []string) (map[string]any, error) {
	if !json.Valid(doc) {
		return nil, errNotObject
	}
	i := skipSpace(doc, 0)
	if doc[i] == 'n' { // null
		return nil, nil
	}
	if doc[i] != '{' {
		return nil, errNotObject
	}
	out := make(map[string]any, len(want))
	i = skipSpace(doc, i+1)
	if doc[i] == '}' {
		return out, nil
	}
	for {
		end := skipString(doc, i)
		raw := doc[i+1 : end-1]
		i = skipSpace(doc, end)
		i = skipSpace(doc, i+1) // the ':'
		vend, ok := skipValue(doc, i)
		if !ok {
			return nil, errNumberRange
		}
		if name, ok := wanted(raw, want); ok {
			v, err := decodeValue(doc[i:vend])
			if err != nil {
				return nil, err
			}
			out[name] = v
		}
		i = skipSpace(doc, vend)
		if doc[i] == '}' {
			return out, nil
		}
		i = skipSpace(doc, i+1) // the ','
	}
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

// The skip functions walk a document json.Valid accepted.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index after the value starting at b[i], and false
// when the value is or holds a number json.Unmarshal rejects (out of
// float64's range, e.g. 1e400): json.Valid accepts it, and a document
// json.Unmarshal rejects must be rejected whichever members are wanted.
func skipValue(b []byte, i int) (int, bool) {
	switch b[i] {
	case '"':
		return skipString(b, i), true
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch c := b[i]; {
			case c == '"':
				i = skipString(b, i) - 1
			case c == '{' || c == '[':
				depth++
			case c == '}' || c == ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			case c == '-' || c >= '0' && c <= '9':
				end, ok := skipNumber(b, i)
				if !ok {
					return end, false
				}
				i = end - 1
			}
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return skipNumber(b, i)
	}
	for i < len(b) { // true, false, null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, true
		}
		i++
	}
	return i, true
}

// skipNumber returns the index after the number starting at b[i], and
// whether float64 holds it. Only a number with an exponent or of many
// digits can be out of range, so only those are parsed.
func skipNumber(b []byte, i int) (int, bool) {
	end, exp := i, false
	for ; end < len(b); end++ {
		c := b[end]
		if c == 'e' || c == 'E' {
			exp = true
		} else if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.') {
			break
		}
	}
	if exp || end-i > 300 {
		if _, err := strconv.ParseFloat(string(b[i:end]), 64); err != nil {
			return end, false
		}
	}
	return end, true
}
