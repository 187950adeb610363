package canvases

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Runtime side of expressions and templates: the engine evaluates the same
// source the compiler checked, against values converted to the checked types.

// Condition is a compiled boolean expression over user (and event).
type Condition struct {
	Source  string
	program *vm.Program
	scope   *scope
	// userFields are the top-level user fields the condition reads, when
	// it reads user only through them (userFieldsKnown).
	userFields      []string
	userFieldsKnown bool
}

// UserFields returns the top-level fields of user the condition reads, and
// whether that is all it reads of user: a user document with only those
// fields evaluates the same. It is false when the condition uses user as a
// whole (passes it to a function) or indexes it by a computed name.
func (c *Condition) UserFields() ([]string, bool) {
	return c.userFields, c.userFieldsKnown
}

// userFieldsOf finds the top-level user fields src reads (see UserFields).
func userFieldsOf(src string) ([]string, bool) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, false
	}
	v := &userFieldVisitor{seen: map[string]bool{}}
	ast.Walk(&tree.Node, v)
	if v.shadowed || v.named != v.members {
		return nil, false
	}
	return v.fields, true
}

type userFieldVisitor struct {
	fields   []string
	seen     map[string]bool
	named    int // identifiers "user"
	members  int // of them, the object of a member with a constant name
	shadowed bool
}

func (v *userFieldVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.VariableDeclaratorNode:
		if n.Name == "user" {
			v.shadowed = true
		}
	case *ast.IdentifierNode:
		switch n.Value {
		case "user":
			v.named++
		case "$env": // the whole environment, user with it
			v.shadowed = true
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "user" {
			return
		}
		name, ok := n.Property.(*ast.StringNode)
		if !ok {
			return
		}
		v.members++
		if !v.seen[name.Value] {
			v.seen[name.Value] = true
			v.fields = append(v.fields, name.Value)
		}
	}
}

// CompileCondition compiles a condition for evaluation. With event == "" the
// condition sees user only (audience, branch); otherwise user and the
// properties of that event.
func (c *Compiler) CompileCondition(src, event string) (*Condition, error) {
	sc := c.audience
	if event != "" {
		sc = c.eventScope(event)
	}
	program, probs := compileCondition(src, sc, c.clock())
	if len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, p := range probs {
			msgs[i] = fmt.Sprintf("%s (at character %d)", p.msg, p.offset+1)
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	fields, known := userFieldsOf(src)
	return &Condition{Source: src, program: program, scope: sc, userFields: fields, userFieldsKnown: known}, nil
}

// CompileBranchCondition compiles a branch arm's condition: it sees user
// and visit, the number of times the user has come to the branch (1 the
// first time), which is how a loop is bounded.
func (c *Compiler) CompileBranchCondition(src string) (*Condition, error) {
	program, probs := compileCondition(src, c.branch, c.clock())
	if len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, p := range probs {
			msgs[i] = fmt.Sprintf("%s (at character %d)", p.msg, p.offset+1)
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return &Condition{Source: src, program: program, scope: c.branch}, nil
}

// Eval runs the condition for one user (and event, for event conditions).
// user and event are JSON-shaped documents: see UserDocument.
func (c *Condition) Eval(user, event map[string]any) (bool, error) {
	return c.eval(user, event, 1)
}

// EvalVisit runs a branch condition for one user on a visit (1 the first).
func (c *Condition) EvalVisit(user map[string]any, visit int) (bool, error) {
	return c.eval(user, nil, visit)
}

func (c *Condition) eval(user, event map[string]any, visit int) (bool, error) {
	// The values are bound in place, into one allocation, and the program
	// runs on a pointer to it (expr reads fields through pointers): a copy
	// per object and one more for the interface cost an audience scan of a
	// million profiles ~2 GB of garbage.
	env := reflect.New(c.scope.root.rtype)
	c.bindRoot(env.Elem(), user, event, visit)
	out, err := vm.Run(c.program, env.Interface())
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// ConditionEvaluator evaluates one condition for user after user, reusing
// its bound values and its expression VM: an audience scan's worker
// evaluates a million profiles one after another, and a fresh environment
// and VM per profile were ~300 MB of its garbage (ADR 051). Not for
// concurrent use: one per goroutine.
type ConditionEvaluator struct {
	c     *Condition
	env   reflect.Value // a pointer to the scope's root struct
	iface any           // env as the VM takes it
	vm    vm.VM
}

// Evaluator returns an evaluator of c for one goroutine.
func (c *Condition) Evaluator() *ConditionEvaluator {
	env := reflect.New(c.scope.root.rtype)
	return &ConditionEvaluator{c: c, env: env, iface: env.Interface()}
}

// Eval is Condition.Eval.
func (e *ConditionEvaluator) Eval(user, event map[string]any) (bool, error) {
	root := e.env.Elem()
	root.SetZero() // nothing of the previous user is left where this one has no value
	e.c.bindRoot(root, user, event, 1)
	out, err := e.vm.Run(e.c.program, e.iface)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// bindRoot binds user, event and visit into root, a zero value of the
// scope's root struct.
func (c *Condition) bindRoot(root reflect.Value, user, event map[string]any, visit int) {
	for i, name := range c.scope.root.order {
		switch name {
		case "user":
			bindInto(root.Field(i), c.scope.names[name], user)
		case "event":
			bindInto(root.Field(i), c.scope.names[name], event)
		case "visit":
			root.Field(i).Set(reflect.ValueOf(visit))
		}
	}
}

// bindInto is bind into dst, a settable zero value of the node's type:
// objects are filled field by field where they are.
func bindInto(dst reflect.Value, n *envNode, data any) {
	if n.typ != typeObject {
		dst.Set(bind(n, data))
		return
	}
	m, _ := data.(map[string]any)
	for i, name := range n.order {
		if fv, ok := m[name]; ok && fv != nil {
			bindInto(dst.Field(i), n.fields[name], fv)
		}
	}
}

// bind converts JSON-shaped data into a value of the node's checked type,
// using zero values for what is missing or malformed.
func bind(n *envNode, data any) reflect.Value {
	switch n.typ {
	case typeObject:
		v := reflect.New(n.rtype).Elem()
		m, _ := data.(map[string]any)
		for i, name := range n.order {
			if fv, ok := m[name]; ok && fv != nil {
				v.Field(i).Set(bind(n.fields[name], fv))
			}
		}
		return v
	case typeAnyMap:
		m, _ := data.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		return reflect.ValueOf(m)
	case TypeAny:
		v := reflect.New(n.rtype).Elem()
		if data != nil {
			v.Set(reflect.ValueOf(data))
		}
		return v
	}
	return reflect.ValueOf(coerce(n.typ, data))
}

// coerce converts a JSON value to a field type's Go value.
func coerce(t FieldType, data any) any {
	switch t {
	case TypeString:
		switch d := data.(type) {
		case string:
			return d
		case nil:
			return ""
		case float64:
			return strconv.FormatFloat(d, 'f', -1, 64)
		}
		return fmt.Sprint(data)
	case TypeNumber:
		f, _ := toFloat(data)
		return f
	case TypeInteger:
		f, _ := toFloat(data)
		return int(f)
	case TypeBool:
		switch d := data.(type) {
		case bool:
			return d
		case string:
			b, _ := strconv.ParseBool(d)
			return b
		}
		return false
	case TypeDate, TypeTime:
		t, _ := ParseTimeValue(data)
		return t
	case TypeList:
		switch d := data.(type) {
		case []string:
			return d
		case []any:
			out := make([]string, 0, len(d))
			for _, e := range d {
				if s, ok := e.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
		return []string{}
	}
	return data
}

func toFloat(data any) (float64, bool) {
	switch d := data.(type) {
	case float64:
		return d, true
	case int:
		return float64(d), true
	case int64:
		return float64(d), true
	case json.Number:
		f, err := d.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(d), 64)
		return f, err == nil
	}
	return 0, false
}

// ParseTimeValue reads a date (2006-01-02), an RFC 3339 time or a
// time.Time; it reports false for anything else.
func ParseTimeValue(data any) (time.Time, bool) {
	switch d := data.(type) {
	case time.Time:
		return d, true
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02", "2006-01-02 15:04:05"} {
			if t, err := time.Parse(layout, d); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// CheckValue reports whether a JSON value fits a field type, so ingestion can
// reject a trait of the wrong type with a clear message.
func CheckValue(t FieldType, data any) bool {
	if data == nil {
		return true
	}
	switch t {
	case TypeString:
		_, ok := data.(string)
		return ok
	case TypeNumber:
		_, ok := data.(float64)
		return ok
	case TypeInteger:
		f, ok := data.(float64)
		return ok && f == float64(int64(f))
	case TypeBool:
		_, ok := data.(bool)
		return ok
	case TypeDate, TypeTime:
		_, ok := ParseTimeValue(data)
		return ok
	case TypeList:
		l, ok := data.([]any)
		if !ok {
			return false
		}
		for _, e := range l {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return true
}

// Normalize returns the document with every schema field present and typed,
// for message templates: a missing name renders as "" (and `default` can
// replace it), never as "<no value>".
func (e *Env) Normalize(scopeName string, doc map[string]any) map[string]any {
	var n *envNode
	switch scopeName {
	case "user":
		n = e.user
	case "staff":
		n = e.staff
	case "owner":
		n = e.owner
	case "task":
		n = e.task
	default:
		return doc
	}
	out, _ := normalize(n, doc).(map[string]any)
	return out
}

func normalize(n *envNode, data any) any {
	switch n.typ {
	case typeObject:
		m, _ := data.(map[string]any)
		out := make(map[string]any, len(n.order))
		for _, name := range n.order {
			out[name] = normalize(n.fields[name], m[name])
		}
		return out
	case typeAnyMap, TypeAny:
		return data
	}
	return coerce(n.typ, data)
}
