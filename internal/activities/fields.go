package activities

import (
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf8"
)

var errNotObject = errors.New("profile is not a JSON object")

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
		vend := skipValue(doc, i)
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

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
