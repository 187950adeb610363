package canvases

import (
	"bytes"
	"encoding/json"
	"strings"
)

// JSONSchema returns a JSON Schema (draft-07, which yaml-language-server
// reads best) of the canvas format, generated from Spec.
func JSONSchema() []byte {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(Spec)
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = "https://huabu.dev/schema/canvas.json"
	root["title"] = "Huabu canvas"
	root["definitions"] = g.defs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(root) // maps of plain values: cannot fail
	return buf.Bytes()
}

type schemaGen struct {
	defs map[string]any
}

var patterns = map[Format]string{
	FormatCanvasID: `^[a-z0-9][a-z0-9-]*$`,
	FormatStepID:   `^[a-z0-9][a-z0-9_-]*$`,
	FormatStepRef:  `^[a-z0-9][a-z0-9_-]*$`,
	FormatClock:    `^([01][0-9]|2[0-3]):[0-5][0-9]$`,
	FormatUntil:    `^(([01][0-9]|2[0-3]):[0-5][0-9]|\d{4}-\d\d-\d\dT.*)$`,
	FormatOffset:   `^(([01][0-9]|2[0-3]):[0-5][0-9]|([0-9]+[smhdw])+)$`,
	FormatReentry:  `^(never|always|after ([0-9]+[smhdw])+)$`,
}

const durationPattern = `^([0-9]+[smhdw])+$`

func (g *schemaGen) typ(t *Type) map[string]any {
	out := map[string]any{}
	switch t.Kind {
	case KindString:
		out["type"] = "string"
		switch {
		case len(t.Enum) > 0:
			out["enum"] = t.Enum
		case t.Format == FormatChannel:
			out["enum"] = ChannelNames()
		case t.Format == FormatChannelOrAny:
			out["enum"] = append(ChannelNames(), "any")
		case t.Format == FormatRecipient:
			out["enum"] = allRecipients
		case t.Format == FormatTime:
			out["format"] = "date-time"
		case t.Format == FormatNonEmpty || t.Format == FormatEvent || t.Format == FormatTag:
			out["minLength"] = 1
		}
		if p, ok := patterns[t.Format]; ok {
			out["pattern"] = p
		}
	case KindInt:
		out["type"] = "integer"
	case KindBool:
		out["type"] = "boolean"
	case KindDuration:
		out["type"] = "string"
		out["pattern"] = durationPattern
	case KindExpr, KindTemplate:
		out["type"] = "string"
		out["minLength"] = 1
	case KindList:
		out["type"] = "array"
		out["items"] = g.typ(t.Elem)
		if t.MinItems > 0 {
			out["minItems"] = t.MinItems
		}
	case KindAny:
		return out
	case KindMap:
		out["type"] = "object"
		out["additionalProperties"] = g.typ(t.Elem)
	case KindObject:
		return g.ref(t)
	case KindUnion:
		alts := make([]any, len(t.Alternatives))
		for i, a := range t.Alternatives {
			alts[i] = g.typ(a)
		}
		out["anyOf"] = alts
	}
	if t.Doc != "" {
		out["description"] = t.Doc
	}
	return out
}

// ref puts a named object type in definitions and refers to it.
func (g *schemaGen) ref(t *Type) map[string]any {
	if _, done := g.defs[t.Name]; !done {
		g.defs[t.Name] = nil // placeholder against recursion
		g.defs[t.Name] = g.object(t)
	}
	return map[string]any{"$ref": "#/definitions/" + t.Name}
}

func (g *schemaGen) object(t *Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range t.Fields {
		p := g.typ(f.Type)
		doc := f.Doc
		if doc == "" {
			doc = f.Type.Doc
		}
		if f.Default != "" {
			doc += " Default: " + f.Default + "."
		}
		if doc = strings.TrimSpace(doc); doc != "" {
			if _, isRef := p["$ref"]; isRef {
				p = map[string]any{"allOf": []any{p}, "description": doc}
			} else {
				p["description"] = doc
			}
		}
		if f.Example != "" {
			p["examples"] = []string{strings.Trim(f.Example, `"'`)}
		}
		props[f.Name] = p
		if f.Required {
			required = append(required, f.Name)
		}
	}
	out := map[string]any{
		"type":                 "object",
		"properties":           props,
		"additionalProperties": false,
	}
	if t.Doc != "" {
		out["description"] = t.Doc
	}
	if len(required) > 0 {
		out["required"] = required
	}
	if len(t.OneOf) > 0 {
		alts := make([]any, len(t.OneOf))
		for i, name := range t.OneOf {
			alts[i] = map[string]any{"required": []string{name}}
		}
		out["oneOf"] = alts
	}
	if t.NullIsEmpty {
		return map[string]any{"anyOf": []any{out, map[string]any{"type": "null"}}}
	}
	return out
}
