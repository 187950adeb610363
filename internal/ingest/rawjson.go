package ingest

import (
	"encoding/json"
	"unicode"
	"unicode/utf8"
)

// A /v1/batch body was read five times over: json.Valid, the envelope's
// Unmarshal, each message's Unmarshal into raw fields, and one more
// Unmarshal per string field — about half of the API's CPU per event
// (docs/performance.md, session 7). The body is validated once (checkJSON);
// after that the envelope and each message are split into their members
// here, in one pass, with encoding/json's own rules for which member fills
// which field (exact name, else its case-folded name; the last one wins),
// and strings without escapes are taken as they are. decodeMessageJSON and
// splitBatchJSON give what json.Unmarshal gave (FuzzRawMessageDecoding).

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just after the value of valid JSON that
// starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	// A number, true, false or null: up to the next delimiter.
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// skipString returns the index just after the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// eachMember calls fn with each member's raw key (quotes included) and
// value of the valid JSON object obj; for any other valid JSON value (an
// array, a string, null…) it calls fn for nothing.
func eachMember(obj []byte, fn func(key, value []byte)) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++ // past '{'
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return
		}
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		k := skipString(obj, i)
		key := obj[i:k]
		i = skipSpace(obj, k)
		i = skipSpace(obj, i+1) // past ':'
		end := skipValue(obj, i)
		fn(key, obj[i:end])
		i = end
	}
}

// quickString is the value of a JSON string literal without escapes and
// with valid UTF-8 — what json.Unmarshal gives for it — and false for
// anything else (the caller then asks encoding/json).
func quickString(raw []byte) (string, bool) {
	s, ok := quickBytes(raw)
	if !ok {
		return "", false
	}
	return string(s), true
}

// quickBytes is quickString without the copy: the literal's bytes between
// its quotes.
func quickBytes(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	s := raw[1 : len(raw)-1]
	for _, c := range s {
		if c < 0x20 || c == '\\' || c == '"' {
			return nil, false
		}
	}
	if !utf8.Valid(s) {
		return nil, false
	}
	return s, true
}

// memberName is a member's key as encoding/json reads it.
func memberName(key []byte) string {
	if s, ok := quickString(key); ok {
		return s
	}
	var s string
	_ = json.Unmarshal(key, &s)
	return s
}

// foldName is encoding/json's case folding of names (encoding/json/fold.go):
// a member whose name is not a field's exact name fills the field whose
// folded name is the same.
func foldName(in string) string {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(in[i:])
		out = utf8.AppendRune(out, unicode.ToUpper(unicode.ToLower(r)))
		i += n
	}
	return string(out)
}

// messageFields are message's members by their JSON names, in the
// struct's order.
var messageFields = []string{"type", "userId", "anonymousId", "previousId", "groupId", "event", "name", "properties", "traits", "timestamp", "originalTimestamp", "sentAt", "messageId"}

// messageFolded are messageFields folded.
var messageFolded = func() []string {
	f := make([]string, len(messageFields))
	for i, n := range messageFields {
		f[i] = foldName(n)
	}
	return f
}()

// field is message's member called name (-1: none), by encoding/json's
// rule: the exact name, else the case-folded one.
func (m *message) field(name string) *json.RawMessage {
	i := -1
	for j, n := range messageFields {
		if n == name {
			i = j
			break
		}
	}
	if i < 0 {
		folded := foldName(name)
		for j, n := range messageFolded {
			if n == folded {
				i = j
				break
			}
		}
	}
	switch i {
	case 0:
		return &m.Type
	case 1:
		return &m.UserID
	case 2:
		return &m.AnonymousID
	case 3:
		return &m.PreviousID
	case 4:
		return &m.GroupID
	case 5:
		return &m.Event
	case 6:
		return &m.Name
	case 7:
		return &m.Properties
	case 8:
		return &m.Traits
	case 9:
		return &m.Timestamp
	case 10:
		return &m.OriginalTimestamp
	case 11:
		return &m.SentAt
	case 12:
		return &m.MessageID
	}
	return nil
}

// member is message's field for a member's raw key, as field(memberName(key))
// without building the name when the key has no escapes and is ASCII (it
// then folds to its upper case).
func (m *message) member(key []byte) *json.RawMessage {
	name, ok := quickBytes(key)
	if !ok || !isASCII(name) {
		return m.field(memberName(key))
	}
	for _, n := range messageFields {
		if string(name) == n {
			return m.field(n)
		}
	}
	for j, n := range messageFolded {
		if asciiUpperEqual(name, n) {
			return m.field(messageFields[j])
		}
	}
	return nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiUpperEqual reports whether the ASCII name b, upper-cased, is upper.
func asciiUpperEqual(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// decodeMessageJSON is json.Unmarshal(raw, &m) for a valid JSON object raw.
// The fields share raw's memory (the caller keeps raw unchanged).
func decodeMessageJSON(raw []byte) message {
	var m message
	eachMember(raw, func(key, value []byte) {
		if f := m.member(key); f != nil {
			*f = value
		}
	})
	return m
}

// splitBatchJSON is json.Unmarshal(body, &b) for a valid JSON object body:
// ok is false when batch is neither a list nor null (what Unmarshal
// reported as a type error of the field "batch").
func splitBatchJSON(body []byte) (b batchBody, ok bool) {
	switch firstByte(body) {
	case '{':
	case 'n': // null leaves the struct as it is
		return b, true
	default: // Unmarshal cannot put an array, string, number or bool in a struct
		return b, false
	}
	ok = true
	eachMember(body, func(key, value []byte) {
		switch name := memberName(key); {
		case name == "batch" || foldName(name) == "BATCH":
			switch value[0] {
			case '[':
				items := make([]json.RawMessage, 0, 64)
				i := skipSpace(value, 1)
				for i < len(value) && value[i] != ']' {
					if value[i] == ',' {
						i = skipSpace(value, i+1)
					}
					end := skipValue(value, i)
					items = append(items, value[i:end])
					i = skipSpace(value, end)
				}
				b.Batch = items
			case 'n':
				b.Batch = nil
			default:
				ok = false
			}
		case name == "sentAt" || foldName(name) == "SENTAT":
			b.SentAt = value
		}
	})
	return b, ok
}
