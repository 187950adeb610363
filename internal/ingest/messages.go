package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// Segment's limits, which its SDKs respect (analytics-go caps a message at
// 32,000 bytes and a batch at 500,000); Huabu's are the binary units so a
// batch the SDK built always fits.
const (
	MaxMessageBytes = 32 << 10
	MaxBatchBytes   = 500 << 10
	maxIDLength     = 256
	maxEventName    = 200
)

// MessageTypes are the Segment calls Huabu accepts.
var MessageTypes = []string{"identify", "track", "page", "screen", "alias", "group"}

// FieldError is a message that cannot be accepted, naming the field at
// fault the way the API reports it: batch[17].properties.amount.
type FieldError struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"error"`
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Validator checks Segment messages against the profile schema (identify
// traits) and the declared event properties (config events:).
type Validator struct {
	Profiles Profiles
}

// NewValidator builds a validator for a schema.
func NewValidator(schema canvases.Schema) *Validator {
	return &Validator{Profiles: Profiles{Schema: schema}}
}

// message is the wire form; every field is raw so a wrong type is reported
// with its name instead of as a decoding failure of the whole request.
type message struct {
	Type              json.RawMessage `json:"type"`
	UserID            json.RawMessage `json:"userId"`
	AnonymousID       json.RawMessage `json:"anonymousId"`
	PreviousID        json.RawMessage `json:"previousId"`
	GroupID           json.RawMessage `json:"groupId"`
	Event             json.RawMessage `json:"event"`
	Name              json.RawMessage `json:"name"`
	Properties        json.RawMessage `json:"properties"`
	Traits            json.RawMessage `json:"traits"`
	Timestamp         json.RawMessage `json:"timestamp"`
	OriginalTimestamp json.RawMessage `json:"originalTimestamp"`
	SentAt            json.RawMessage `json:"sentAt"`
	MessageID         json.RawMessage `json:"messageId"`
	// context, integrations, channel, version, ...: accepted and ignored.
}

// Parsed is a validated message: what the store keeps, and the decoded
// properties the engine receives for events.
type Parsed struct {
	Message store.Message
	// Properties is nil for a track event whose properties were kept as
	// sent, undecoded (Decoded decodes them).
	Properties map[string]any
}

// Decoded is the message's properties as a map: Properties, or for an
// event stored as sent, its stored properties decoded (the same map: they
// are what json.Marshal of it writes).
func (p Parsed) Decoded() map[string]any {
	if p.Properties != nil || len(p.Message.Properties) == 0 {
		return p.Properties
	}
	var m map[string]any
	if err := json.Unmarshal(p.Message.Properties, &m); err != nil {
		return nil
	}
	return m
}

// parseOptions say how a message is read.
type parseOptions struct {
	kind          string    // the endpoint's type; "" for batch items, which must say
	prefix        string    // field name prefix, e.g. "batch[3]."
	now           time.Time // receivedAt
	sentAt        time.Time // the batch's sentAt, for clock-skew correction
	needTimestamp bool      // imports are history: a missing timestamp is an error
	validJSON     bool      // the message is known to be valid JSON (its request was checked)
}

func (v *Validator) parse(raw []byte, o parseOptions) (Parsed, *FieldError) {
	var p Parsed
	fail := func(field, format string, args ...any) (Parsed, *FieldError) {
		return Parsed{}, &FieldError{Field: o.prefix + field, Message: fmt.Sprintf(format, args...)}
	}
	if len(raw) > MaxMessageBytes {
		return Parsed{}, &FieldError{Field: strings.TrimSuffix(o.prefix, "."), Message: fmt.Sprintf("message is %d bytes; the limit is %d (32 KB)", len(raw), MaxMessageBytes)}
	}
	if t := firstByte(raw); t != '{' {
		return Parsed{}, &FieldError{Field: strings.TrimSuffix(o.prefix, "."), Message: "each message must be a JSON object"}
	}
	if !o.validJSON && !json.Valid(raw) {
		var m message
		err := json.Unmarshal(raw, &m)
		return Parsed{}, &FieldError{Field: strings.TrimSuffix(o.prefix, "."), Message: "invalid JSON: " + jsonMessage(err)}
	}
	m := decodeMessageJSON(raw)
	kind := o.kind
	if kind == "" {
		s, ok := str(m.Type)
		switch {
		case !ok:
			return fail("type", "type must be a string")
		case s == "":
			return fail("type", "type is required: one of %s", strings.Join(MessageTypes, ", "))
		case !slices.Contains(MessageTypes, s):
			return fail("type", "unknown type %q: use one of %s", s, strings.Join(MessageTypes, ", "))
		}
		kind = s
	}
	msg := &p.Message
	msg.Type = kind
	var ok bool
	if msg.UserID, ok = UserID(m.UserID); !ok {
		return fail("userId", "userId must be a string")
	}
	if msg.AnonymousID, ok = UserID(m.AnonymousID); !ok {
		return fail("anonymousId", "anonymousId must be a string")
	}
	msg.UserID, msg.AnonymousID = strings.TrimSpace(msg.UserID), strings.TrimSpace(msg.AnonymousID)
	if len(msg.UserID) > maxIDLength {
		return fail("userId", "userId is longer than %d characters", maxIDLength)
	}
	if len(msg.AnonymousID) > maxIDLength {
		return fail("anonymousId", "anonymousId is longer than %d characters", maxIDLength)
	}
	if kind == "alias" {
		if msg.PreviousID, ok = UserID(m.PreviousID); !ok {
			return fail("previousId", "previousId must be a string")
		}
		if msg.PreviousID = strings.TrimSpace(msg.PreviousID); msg.PreviousID == "" {
			return fail("previousId", "previousId is required: the anonymousId being named")
		}
		if len(msg.PreviousID) > maxIDLength {
			return fail("previousId", "previousId is longer than %d characters", maxIDLength)
		}
		if msg.UserID == "" {
			return fail("userId", "userId is required")
		}
	} else if msg.UserID == "" && msg.AnonymousID == "" {
		return fail("userId", "userId or anonymousId is required")
	}

	ts, ferr := timestamp(m, o)
	if ferr != nil {
		ferr.Field = o.prefix + ferr.Field
		return Parsed{}, ferr
	}
	msg.Timestamp = ts

	switch kind {
	case "track", "page", "screen":
		// A track's properties that json.Marshal would write back as they
		// are, of an event with no declared properties, are stored as sent:
		// nothing reads the decoded map on the way to the accept log
		// (Parsed.Decoded decodes it for the sinks that do). ADR 052.
		var props map[string]any
		asSent := kind == "track" && canonicalFlatObject(m.Properties)
		if !asSent {
			var ferr *FieldError
			if props, ferr = object(m.Properties, "properties"); ferr != nil {
				return fail(ferr.Field, "%s", ferr.Message)
			}
		}
		if kind == "track" {
			name, ok := str(m.Event)
			switch {
			case !ok:
				return fail("event", "event must be a string")
			case strings.TrimSpace(name) == "":
				return fail("event", "event is required")
			case len(name) > maxEventName:
				return fail("event", "event is longer than %d characters", maxEventName)
			}
			msg.Name = name
		} else {
			// Like Segment, the page's name is one of its properties.
			name, ok := str(m.Name)
			if !ok {
				return fail("name", "name must be a string")
			}
			if name != "" {
				if props == nil {
					props = map[string]any{}
				}
				if _, set := props["name"]; !set {
					props["name"] = name
				}
			}
			msg.Name = kind
		}
		if asSent && len(v.Profiles.Schema.Events[msg.Name]) > 0 {
			asSent = false
			if props, ferr = object(m.Properties, "properties"); ferr != nil {
				return fail(ferr.Field, "%s", ferr.Message)
			}
		}
		if asSent {
			msg.Properties = bytes.Clone(m.Properties)
			break
		}
		if ferr := v.checkProperties(msg.Name, props); ferr != nil {
			return fail(ferr.Field, "%s", ferr.Message)
		}
		if props == nil {
			props = map[string]any{}
		}
		p.Properties = props
		b, err := json.Marshal(props)
		if err != nil {
			return fail("properties", "%v", err)
		}
		msg.Properties = b
	case "identify":
		traits, ferr := object(m.Traits, "traits")
		if ferr != nil {
			return fail(ferr.Field, "%s", ferr.Message)
		}
		if traits != nil {
			id := msg.UserID
			if id == "" {
				id = msg.AnonymousID
			}
			patch, rej := v.Profiles.Patch(id, traits)
			if rej != nil {
				return fail(rej.Field, "%s", rej.Message)
			}
			msg.Properties = patch
		}
	case "alias":
		msg.Properties, _ = json.Marshal(map[string]string{"previousId": msg.PreviousID})
	case "group":
		gid, ok := UserID(m.GroupID)
		if !ok {
			return fail("groupId", "groupId must be a string")
		}
		if gid == "" {
			return fail("groupId", "groupId is required")
		}
		traits, ferr := object(m.Traits, "traits")
		if ferr != nil {
			return fail(ferr.Field, "%s", ferr.Message)
		}
		msg.Properties, _ = json.Marshal(map[string]any{"groupId": gid, "traits": traits})
	}

	id, ok := str(m.MessageID)
	switch {
	case !ok:
		return fail("messageId", "messageId must be a string")
	case len(id) > maxIDLength:
		return fail("messageId", "messageId is longer than %d characters", maxIDLength)
	case id == "":
		// Without a messageId, the same payload at the same time is the same
		// message (a retry); the timestamp is part of the key so two identical
		// calls without timestamps are still two events.
		h := sha256.New()
		h.Write(raw)
		h.Write([]byte(strconv.FormatInt(ts.UnixMilli(), 10)))
		id = "h:" + hex.EncodeToString(h.Sum(nil)[:16])
	}
	msg.MessageID = id
	return p, nil
}

// checkProperties checks the declared properties of an event (config events:).
func (v *Validator) checkProperties(event string, props map[string]any) *FieldError {
	decl := v.Profiles.Schema.Events[event]
	if len(decl) == 0 {
		return nil
	}
	names := make([]string, 0, len(decl))
	for n := range decl {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		val, ok := props[n]
		if !ok || val == nil {
			continue
		}
		if t := decl[n]; !canvases.CheckValue(t, val) {
			return &FieldError{Field: "properties." + n, Message: fmt.Sprintf("expected %s, got %s (events.%s.%s is declared %s)", describeType(t), describeValue(val), event, n, t)}
		}
	}
	return nil
}

// timestamp is the message's time: timestamp; else originalTimestamp
// corrected by the sender's clock skew (receivedAt − sentAt), as Segment
// does; else when it was received.
func timestamp(m message, o parseOptions) (time.Time, *FieldError) {
	read := func(raw json.RawMessage, field string) (time.Time, bool, *FieldError) {
		s, ok := str(raw)
		if !ok {
			return time.Time{}, false, &FieldError{Field: field, Message: field + " must be an RFC 3339 time string"}
		}
		if s == "" {
			return time.Time{}, false, nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, false, &FieldError{Field: field, Message: fmt.Sprintf("%s %q is not an RFC 3339 time (2006-01-02T15:04:05Z07:00)", field, s)}
		}
		return t, true, nil
	}
	t, ok, ferr := read(m.Timestamp, "timestamp")
	if ferr != nil || ok {
		return t, ferr
	}
	orig, ok, ferr := read(m.OriginalTimestamp, "originalTimestamp")
	if ferr != nil {
		return t, ferr
	}
	if ok {
		sent, sok, ferr := read(m.SentAt, "sentAt")
		if ferr != nil {
			return t, ferr
		}
		if !sok {
			sent, sok = o.sentAt, !o.sentAt.IsZero()
		}
		if sok {
			return orig.Add(o.now.Sub(sent)), nil
		}
		return orig, nil
	}
	if o.needTimestamp {
		return t, &FieldError{Field: "timestamp", Message: "timestamp is required (imported events are history; say when each happened)"}
	}
	return o.now, nil
}

// object decodes an optional JSON object.
func object(raw json.RawMessage, field string) (map[string]any, *FieldError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if firstByte(raw) != '{' {
		return nil, &FieldError{Field: field, Message: field + " must be an object, got " + kindOf(raw)}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &FieldError{Field: field, Message: "invalid JSON: " + jsonMessage(err)}
	}
	return m, nil
}

// str reads an optional JSON string; null and absent are "".
func str(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	if firstByte(raw) != '"' {
		return "", false
	}
	if s, ok := quickString(raw); ok {
		return s, true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

func firstByte(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func kindOf(raw json.RawMessage) string {
	switch firstByte(raw) {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a bool"
	case '{':
		return "an object"
	}
	return "a number"
}
