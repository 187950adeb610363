package config

import (
	"reflect"
	"strings"

	"github.com/huabu/huabu/internal/canvases"
)

// Spec is the shape of huabu.yaml for the node walker of package canvases,
// derived from Config's fields so that a key added to the struct is a key
// the file may hold. Struct tags refine a field's scalar:
//
//	doc:"..."        what it is for (the reference in docs/config.md)
//	default:"..."    what an absent value means
//	kind:"duration"  a canvas duration like 30d; kind:"expr" a condition over user
//	format:"clock"   a canvases.Format (timezone, clock, channel-or-any, ...)
//	enum:"a|b"       one of these words
var Spec = specOf(reflect.TypeOf(Config{}), "config", "")

func specOf(t reflect.Type, name string, tag reflect.StructTag) *canvases.Type {
	switch t.Kind() {
	case reflect.Pointer:
		return specOf(t.Elem(), name, tag)
	case reflect.Struct:
		out := &canvases.Type{Kind: canvases.KindObject, Name: name}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || key == "-" || key == "" {
				continue
			}
			out.Fields = append(out.Fields, &canvases.Field{
				Name:     key,
				Type:     specOf(f.Type, key, f.Tag),
				Doc:      f.Tag.Get("doc"),
				Default:  f.Tag.Get("default"),
				Required: f.Tag.Get("required") == "true",
			})
		}
		return out
	case reflect.Map:
		return &canvases.Type{Kind: canvases.KindMap, Name: name, Elem: specOf(t.Elem(), name, tag)}
	case reflect.Slice:
		return &canvases.Type{Kind: canvases.KindList, Name: name, Elem: specOf(t.Elem(), name, tag)}
	case reflect.Interface:
		return &canvases.Type{Kind: canvases.KindAny}
	case reflect.Int, reflect.Int64:
		return &canvases.Type{Kind: canvases.KindInt}
	case reflect.Bool:
		return &canvases.Type{Kind: canvases.KindBool}
	}
	s := &canvases.Type{Kind: canvases.KindString, Format: canvases.Format(tag.Get("format"))}
	switch tag.Get("kind") {
	case "duration":
		s.Kind = canvases.KindDuration
	case "expr":
		s.Kind = canvases.KindExpr
	}
	if e := tag.Get("enum"); e != "" {
		s.Enum = strings.Split(e, "|")
	}
	return s
}
