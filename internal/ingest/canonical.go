package ingest

// canonicalFlatObject reports whether raw is a JSON object that
// json.Marshal of its decoding (map[string]any) would write back byte for
// byte, in the shape that needs no decoding to tell: no white space,
// members in strictly increasing key order (json.Marshal sorts a map's
// keys; a repeated key is not canonical), keys and string values of
// printable ASCII that json.Marshal does not escape (no '"', '\\', '<',
// '>', '&'), and values that are such strings, true, false, null, or
// integers of at most 15 digits without a leading zero or "-0" (a float64
// holds them exactly and json.Marshal writes them as the same digits).
// Anything else — nested values, fractions, exponents, escapes, non-ASCII
// — is false, and the caller decodes and re-encodes as before (ADR 052).
func canonicalFlatObject(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '{' || raw[len(raw)-1] != '}' {
		return false
	}
	i := 1
	var prev []byte
	first := true
	for {
		if first && raw[i] == '}' {
			return i == len(raw)-1
		}
		key, n := plainString(raw[i:])
		if n == 0 {
			return false
		}
		if !first && string(key) <= string(prev) {
			return false
		}
		prev, first = key, false
		i += n
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i++
		if i >= len(raw) {
			return false
		}
		switch c := raw[i]; {
		case c == '"':
			_, n = plainString(raw[i:])
		case c == 't':
			n = literal(raw[i:], "true")
		case c == 'f':
			n = literal(raw[i:], "false")
		case c == 'n':
			n = literal(raw[i:], "null")
		default:
			n = plainInteger(raw[i:])
		}
		if n == 0 {
			return false
		}
		i += n
		if i >= len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i++
		case '}':
			return i == len(raw)-1
		default:
			return false
		}
		if i >= len(raw) {
			return false
		}
	}
}

// plainString reads a JSON string of printable ASCII json.Marshal writes
// as it is at the start of b: its contents and its length with the quotes
// (0: not one).
func plainString(b []byte) ([]byte, int) {
	if len(b) < 2 || b[0] != '"' {
		return nil, 0
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return b[1:i], i + 1
		case c < 0x20 || c > 0x7e || c == '\\' || c == '<' || c == '>' || c == '&':
			return nil, 0
		}
	}
	return nil, 0
}

// literal is len(word) when b starts with it, else 0.
func literal(b []byte, word string) int {
	if len(b) >= len(word) && string(b[:len(word)]) == word {
		return len(word)
	}
	return 0
}

// plainInteger is the length of the integer at the start of b: -?(0|[1-9]
// [0-9]{0,14}), not "-0", followed by no fraction or exponent (0: not one).
func plainInteger(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	digits := i - start
	switch {
	case digits == 0 || digits > 15:
		return 0
	case b[start] == '0' && (digits > 1 || start > 0):
		return 0 // a leading zero, or -0
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0
	}
	return i
}
