package canvases

// Kind is the shape of a value in a canvas file.
type Kind uint8

const (
	KindString   Kind = iota // a string, optionally constrained by Format, Pattern or Enum
	KindInt                  // an integer
	KindBool                 // true or false
	KindDuration             // 45s, 30m, 36h, 3d, 2w
	KindExpr                 // an expr-lang condition, checked against the profile schema
	KindTemplate             // a Go text/template message, checked against the profile schema
	KindObject               // a mapping with named fields
	KindList                 // a sequence of Elem
	KindMap                  // a mapping from free-form keys to Elem
	KindUnion                // one of Alternatives, chosen by the YAML node's shape
	KindAny                  // any YAML value, checked by whoever reads it (channel settings in huabu.yaml)
)

// Format names a constraint on a string scalar beyond its kind.
type Format string

const (
	FormatNone         Format = ""
	FormatCanvasID     Format = "canvas-id"      // [a-z0-9-]+
	FormatStepID       Format = "step-id"        // [a-z0-9][a-z0-9_-]*
	FormatStepRef      Format = "step-ref"       // the id of another step in the canvas
	FormatCron         Format = "cron"           // robfig/cron five-field syntax or a descriptor
	FormatTimezone     Format = "timezone"       // IANA zone name
	FormatTime         Format = "rfc3339"        // 2026-12-01T10:00:00+08:00
	FormatClock        Format = "clock"          // 24-hour HH:MM
	FormatUntil        Format = "until"          // HH:MM or RFC3339
	FormatReentry      Format = "reentry"        // never | always | after DURATION
	FormatChannel      Format = "channel"        // a channel name from the catalogue
	FormatChannelOrAny Format = "channel-or-any" // a channel name, or any for all channels
	FormatEvent        Format = "event"          // an event name as sent by track
	FormatTag          Format = "tag"            // a tag name
	FormatOffset       Format = "offset"         // a duration after creation, or HH:MM
	FormatRecipient    Format = "recipient"      // user | owner | owner.leader
	FormatNonEmpty     Format = "non-empty"      // any string but ""
)

// Type describes one kind of value in the canvas format. The same Types drive
// the node walker, the JSON Schema and the language reference.
type Type struct {
	Kind   Kind
	Name   string // names object types in the schema's $defs and in the docs
	Doc    string
	Format Format
	Enum   []string

	Fields []*Field // KindObject
	// OneOf lists fields of which exactly one must be present (trigger kinds,
	// step kinds). Fields in OneOf are not Required themselves.
	OneOf []string
	// NullIsEmpty lets `manual:` or `exit:` with no value mean an empty object.
	NullIsEmpty bool

	Elem *Type // KindList, KindMap
	// MinItems is the least number of list items.
	MinItems int

	Alternatives []*Type // KindUnion; at most one per YAML node shape
}

// Field is a named field of an object type.
type Field struct {
	Name     string
	Type     *Type
	Required bool
	Doc      string
	Default  string
	Example  string
}

// Field returns the field with the given name, or nil.
func (t *Type) Field(name string) *Field {
	for _, f := range t.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Label is how a type is named in messages: "a duration like 3d".
func (t *Type) Label() string {
	switch t.Kind {
	case KindString:
		switch t.Format {
		case FormatCron:
			return `a cron expression like "0 10 * * MON"`
		case FormatTimezone:
			return "an IANA time zone like Asia/Shanghai"
		case FormatTime:
			return "an RFC 3339 time like 2026-12-01T10:00:00+08:00"
		case FormatClock:
			return `a time of day like "10:00"`
		case FormatStepRef:
			return "a step id"
		}
		if len(t.Enum) > 0 {
			return "one of " + quoteList(t.Enum)
		}
		return "a string"
	case KindInt:
		return "a whole number"
	case KindBool:
		return "true or false"
	case KindDuration:
		return "a duration like 3d"
	case KindExpr:
		return "an expression (string)"
	case KindTemplate:
		return "a message text (string)"
	case KindObject:
		return "a mapping (field: value)"
	case KindList:
		return "a list"
	case KindMap:
		return "a mapping"
	case KindAny:
		return "a value"
	case KindUnion:
		labels := make([]string, len(t.Alternatives))
		for i, a := range t.Alternatives {
			labels[i] = a.Label()
		}
		return joinOr(labels)
	}
	return "a value"
}
