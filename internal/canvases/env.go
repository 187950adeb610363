package canvases

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"time"
)

// FieldType is the type of a profile attribute, trait or event property.
type FieldType string

const (
	TypeString  FieldType = "string"
	TypeNumber  FieldType = "number"
	TypeInteger FieldType = "integer"
	TypeBool    FieldType = "bool"
	TypeDate    FieldType = "date" // a calendar date, 2006-01-02
	TypeTime    FieldType = "time" // an instant, RFC 3339
	TypeList    FieldType = "list" // a list of strings
	TypeAny     FieldType = "any"  // unknown ahead of time (properties of undeclared events)

	typeObject FieldType = "object"
	typeAnyMap FieldType = "map"
)

// FieldTypes are the types a config may declare.
var FieldTypes = []FieldType{TypeString, TypeNumber, TypeInteger, TypeBool, TypeDate, TypeTime, TypeList}

// ReservedAttributes are profile attributes channels read; every schema has
// them, as strings.
var ReservedAttributes = []string{"phone", "email", "wecom_external_userid", "owner", "wecom_userid", "push_alias", "push_registration_id", "timezone"}

// Schema is the typed profile model from the config: what `user.*` (and
// `event.*` for declared events) means in expressions and templates.
type Schema struct {
	Attributes map[string]FieldType            // declared attributes (reserved ones are added)
	Traits     map[string]FieldType            // computed traits: user.traits.NAME
	RFM        bool                            // user.rfm.r / f / m, scored 1..5
	Events     map[string]map[string]FieldType // declared event properties, by event name
}

// envNode is one name in an expression or template environment.
type envNode struct {
	path   string // how messages name it: user.traits
	typ    FieldType
	fields map[string]*envNode
	order  []string
	rtype  reflect.Type
	// missing explains a field that could exist with different config.
	missing map[string]string
}

func (n *envNode) field(name string) *envNode {
	if n == nil || n.fields == nil {
		return nil
	}
	return n.fields[name]
}

var (
	timeType   = reflect.TypeOf(time.Time{})
	anyMapType = reflect.TypeOf(map[string]any{})
)

func leafType(t FieldType) reflect.Type {
	switch t {
	case TypeString:
		return reflect.TypeOf("")
	case TypeNumber:
		return reflect.TypeOf(float64(0))
	case TypeInteger:
		return reflect.TypeOf(int(0))
	case TypeBool:
		return reflect.TypeOf(false)
	case TypeDate, TypeTime:
		return timeType
	case TypeList:
		return reflect.TypeOf([]string{})
	}
	return reflect.TypeOf((*any)(nil)).Elem()
}

func newLeaf(path string, t FieldType) *envNode {
	return &envNode{path: path, typ: t, rtype: leafType(t)}
}

// newObject builds an object node whose reflect type is a struct with expr
// tags, so expr-lang type-checks field access against the schema.
func newObject(path string, children map[string]*envNode) *envNode {
	n := &envNode{path: path, typ: typeObject, fields: children}
	for name := range children {
		n.order = append(n.order, name)
	}
	sort.Strings(n.order)
	sf := make([]reflect.StructField, len(n.order))
	for i, name := range n.order {
		sf[i] = reflect.StructField{
			Name: "F" + strconv.Itoa(i),
			Type: children[name].rtype,
			Tag:  reflect.StructTag(`expr:"` + name + `"`),
		}
	}
	n.rtype = reflect.StructOf(sf)
	return n
}

func leaves(prefix string, fields map[string]FieldType) map[string]*envNode {
	m := make(map[string]*envNode, len(fields))
	for name, t := range fields {
		m[name] = newLeaf(prefix+"."+name, t)
	}
	return m
}

// Env is the set of typed environments a schema gives expressions and
// templates. It is built once per config and shared by every canvas.
type Env struct {
	Schema   Schema
	user     *envNode
	staff    *envNode
	owner    *envNode // the same fields as staff, named for push texts
	task     *envNode
	anyEvent *envNode
	events   map[string]*envNode
}

// NewEnv checks a schema and builds its environments.
func NewEnv(s Schema) (*Env, error) {
	attrs := map[string]FieldType{}
	for name, t := range s.Attributes {
		if !slices.Contains(FieldTypes, t) {
			return nil, fmt.Errorf("profile.attributes.%s: unknown type %q; use %s", name, t, fieldTypeList())
		}
		if !identRE.MatchString(name) {
			return nil, fmt.Errorf("profile.attributes.%s: names must be lowercase letters, digits and _", name)
		}
		if slices.Contains([]string{"id", "tags", "traits", "rfm"}, name) {
			return nil, fmt.Errorf("profile.attributes.%s: %q is built in", name, name)
		}
		attrs[name] = t
	}
	for _, name := range ReservedAttributes {
		if t, ok := attrs[name]; ok && t != TypeString {
			return nil, fmt.Errorf("profile.attributes.%s: reserved attribute %q is a string", name, name)
		}
		attrs[name] = TypeString
	}
	user := leaves("user", attrs)
	user["id"] = newLeaf("user.id", TypeString)
	user["tags"] = newLeaf("user.tags", TypeList)
	for name, t := range s.Traits {
		if !slices.Contains(FieldTypes, t) && t != TypeAny {
			return nil, fmt.Errorf("profile.traits.%s: unknown type %q", name, t)
		}
	}
	user["traits"] = newObject("user.traits", leaves("user.traits", s.Traits))
	rfmMissing := ""
	if s.RFM {
		user["rfm"] = newObject("user.rfm", leaves("user.rfm", map[string]FieldType{"r": TypeInteger, "f": TypeInteger, "m": TypeInteger}))
	} else {
		rfmMissing = "RFM scores are not configured; add profile.rfm to huabu.yaml"
	}
	e := &Env{Schema: s, events: map[string]*envNode{}}
	e.user = newObject("user", user)
	if rfmMissing != "" {
		e.user.missing = map[string]string{"rfm": rfmMissing}
	}
	staff := map[string]FieldType{"userid": TypeString, "name": TypeString, "grid": TypeString, "leader": TypeString}
	e.staff = newObject("staff", leaves("staff", staff))
	e.owner = newObject("owner", leaves("owner", staff))
	e.task = newObject("task", map[string]*envNode{
		"customers": newLeaf("task.customers", TypeInteger),
		"deadline":  newLeaf("task.deadline", TypeTime),
	})
	e.anyEvent = &envNode{path: "event", typ: typeAnyMap, rtype: anyMapType}
	for name, props := range s.Events {
		for p, t := range props {
			if !slices.Contains(FieldTypes, t) {
				return nil, fmt.Errorf("events.%s.%s: unknown type %q; use %s", name, p, t, fieldTypeList())
			}
		}
		e.events[name] = newObject("event", leaves("event", props))
	}
	return e, nil
}

func fieldTypeList() string {
	names := make([]string, len(FieldTypes))
	for i, t := range FieldTypes {
		names[i] = string(t)
	}
	return joinOr(names)
}

// event returns the environment of an event's properties: typed when the
// config declares the event, open otherwise.
func (e *Env) event(name string) *envNode {
	if n, ok := e.events[name]; ok {
		return n
	}
	return e.anyEvent
}

// scope is the set of top-level names visible to one expression or template.
type scope struct {
	names map[string]*envNode
	// forbidden explains top-level names that exist elsewhere but not here.
	forbidden map[string]string
	root      *envNode // names as one object, for expr-lang
}

func newScope(names map[string]*envNode, forbidden map[string]string) *scope {
	return &scope{names: names, forbidden: forbidden, root: newObject("", names)}
}
