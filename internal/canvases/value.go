package canvases

import "gopkg.in/yaml.v3"

// Value is a YAML node that passed the spec check, decoded to its kind.
// Values that failed the check are left out of the tree (their problems are
// already reported), so later stages read the tree without re-checking shapes.
type Value struct {
	Node *yaml.Node // the value
	Key  *yaml.Node // the mapping key naming it, if any
	Path string
	Type *Type // the type it matched (a union's chosen alternative)

	Str    string
	Int    int64
	Bool   bool
	Dur    Duration
	Items  []*Value
	Fields map[string]*Value
	Keys   []string // Fields in file order
	// Raw holds the key node of every field written, valid or not, so later
	// stages can tell "absent" from "present but invalid" (already reported).
	Raw map[string]*yaml.Node
}

// Written reports whether the field was written, whether or not it was valid.
func (v *Value) Written(name string) bool {
	return v != nil && v.Raw[name] != nil
}

// Get returns the named field of an object or map value, or nil. It is safe
// on a nil Value so callers can chain lookups.
func (v *Value) Get(name string) *Value {
	if v == nil {
		return nil
	}
	return v.Fields[name]
}

// Has reports whether the value is present.
func (v *Value) Has(name string) bool { return v.Get(name) != nil }

// String returns a string value, or "" when absent.
func (v *Value) String() string {
	if v == nil {
		return ""
	}
	return v.Str
}

// StringMap returns a map of strings (e.g. push params), or nil.
func (v *Value) StringMap() map[string]string {
	if v == nil || len(v.Fields) == 0 {
		return nil
	}
	m := make(map[string]string, len(v.Fields))
	for k, f := range v.Fields {
		m[k] = f.Str
	}
	return m
}

// Strings returns a list of strings, or nil.
func (v *Value) Strings() []string {
	if v == nil {
		return nil
	}
	out := make([]string, 0, len(v.Items))
	for _, it := range v.Items {
		out = append(out, it.Str)
	}
	return out
}

// pos is where a value starts in the file; nil values have no position.
func (v *Value) pos() (line, col int) {
	if v == nil || v.Node == nil {
		return 0, 0
	}
	return v.Node.Line, v.Node.Column
}

// Duration returns a duration value, or 0 when absent.
func (v *Value) Duration() Duration {
	if v == nil {
		return 0
	}
	return v.Dur
}

// Integer returns an integer value, or 0 when absent.
func (v *Value) Integer() int64 {
	if v == nil {
		return 0
	}
	return v.Int
}

// List returns the items of a list value, or nil when absent.
func (v *Value) List() []*Value {
	if v == nil {
		return nil
	}
	return v.Items
}
