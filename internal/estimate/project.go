package estimate

import (
	"encoding/json"
	"errors"
)

var errNotObject = errors.New("not a JSON object")

// project decodes the top-level fields of a JSON object whose names are in
// keys (every field when keys is nil) and skips the rest without decoding
// them: a profile document carries many fields an audience never reads.
func project(doc []byte, keys map[string]bool) (map[string]any, error) {
	out := make(map[string]any, len(keys)+1)
	if keys == nil {
		return out, json.Unmarshal(doc, &out)
	}
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return nil, errNotObject
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return out, nil
	}
	for {
		if i >= len(doc) || doc[i] != '"' {
			return nil, errNotObject
		}
		end, err := skipString(doc, i)
		if err != nil {
			return nil, err
		}
		rawKey := doc[i:end]
		key := string(rawKey[1 : len(rawKey)-1])
		for _, c := range rawKey {
			if c == '\\' { // an escaped name: let the decoder spell it
				if err := json.Unmarshal(rawKey, &key); err != nil {
					return nil, err
				}
				break
			}
		}
		i = skipSpace(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return nil, errNotObject
		}
		start := skipSpace(doc, i+1)
		vend, err := skipValue(doc, start)
		if err != nil {
			return nil, err
		}
		if keys[key] {
			var v any
			if err := json.Unmarshal(doc[start:vend], &v); err != nil {
				return nil, err
			}
			out[key] = v
		}
		i = skipSpace(doc, vend)
		if i >= len(doc) {
			return nil, errNotObject
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case '}':
			if skipSpace(doc, i+1) != len(doc) {
				return nil, errNotObject
			}
			return out, nil
		default:
			return nil, errNotObject
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errNotObject
}

// skipValue returns the index after the JSON value starting at b[i]. It
// checks only the nesting: a value that is kept is decoded properly after.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errNotObject
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errNotObject
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return 0, errNotObject
	}
	return j, nil
}
