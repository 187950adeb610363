package canvases

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Expressions are expr-lang, type-checked against a struct type built from
// the profile schema, so a misspelt attribute or a string compared with a
// number is found before anything runs. Unknown fields are found first by
// walking the syntax tree, which gives friendlier messages than the type
// checker ("user has no field nmae; did you mean name?").

// memberProblem is an unknown name in an expression, at a rune offset.
type memberProblem struct {
	offset int
	msg    string
}

type memberChecker struct {
	scope    *scope
	problems []memberProblem
	locals   map[string]bool
}

func (m *memberChecker) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.VariableDeclaratorNode:
		m.locals[n.Name] = true
	case *ast.MemberNode:
		m.checkChain(n)
	}
}

// checkChain checks a.b.c where a is a scope name. Visit sees every member
// node of a chain; only the one whose own property is unknown reports.
func (m *memberChecker) checkChain(n *ast.MemberNode) {
	var props []ast.Node
	var cur ast.Node = n
	for {
		mem, ok := cur.(*ast.MemberNode)
		if !ok {
			break
		}
		props = append(props, mem.Property)
		cur = mem.Node
	}
	id, ok := cur.(*ast.IdentifierNode)
	if !ok || m.locals[id.Value] {
		return
	}
	env := m.scope.names[id.Value]
	if env == nil {
		return
	}
	// props is innermost-last; walk from the root outwards.
	for i := len(props) - 1; i >= 0; i-- {
		s, ok := props[i].(*ast.StringNode)
		if !ok || env.typ == typeAnyMap || env.typ == TypeAny || env.typ == TypeDate || env.typ == TypeTime {
			return // dynamic, or time methods such as .Month(): the type checker decides
		}
		child := env.field(s.Value)
		if child == nil {
			if i == 0 { // only the outermost member node reports, once
				m.problems = append(m.problems, memberProblem{offset: s.Location().From, msg: unknownField(env, s.Value)})
			}
			return
		}
		env = child
	}
}

func unknownField(env *envNode, name string) string {
	if hint, ok := env.missing[name]; ok {
		return hint
	}
	if env.typ != typeObject {
		return fmt.Sprintf("%s is a %s and has no field %q", env.path, env.typ, name)
	}
	msg := fmt.Sprintf("%s has no field %q", env.path, name)
	if c := suggest(name, env.order); c != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", c)
	}
	if len(env.order) == 0 {
		return msg + fmt.Sprintf(" (%s is empty in this config)", env.path)
	}
	if len(env.order) <= 12 {
		return msg + " (it has " + strings.Join(env.order, ", ") + ")"
	}
	return msg
}

var (
	structTypeRE  = regexp.MustCompile(`struct \{[^{}]*\}`)
	unknownNameRE = regexp.MustCompile(`^unknown name (\S+)`)
)

// cleanExprMessage removes Go type spellings from expr-lang messages.
func cleanExprMessage(msg string) string {
	for structTypeRE.MatchString(msg) {
		msg = structTypeRE.ReplaceAllString(msg, "object")
	}
	msg = strings.ReplaceAll(msg, "time.Time", "time")
	msg = strings.ReplaceAll(msg, "float64", "number")
	msg = strings.ReplaceAll(msg, "interface {}", "any")
	msg = strings.ReplaceAll(msg, "map[string]any", "event")
	return msg
}

// compileCondition type-checks a boolean expression in a scope. The returned
// errors carry rune offsets into src.
func compileCondition(src string, sc *scope, now func() time.Time) (*vm.Program, []memberProblem) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, []memberProblem{exprProblem(err, sc)}
	}
	mc := &memberChecker{scope: sc, locals: map[string]bool{}}
	ast.Walk(&tree.Node, mc)
	if len(mc.problems) > 0 {
		return nil, mc.problems
	}
	opts := append([]expr.Option{expr.Env(reflect.New(sc.root.rtype).Elem().Interface()), expr.AsBool()}, exprFunctions(now)...)
	program, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, []memberProblem{exprProblem(err, sc)}
	}
	return program, nil
}

func exprProblem(err error, sc *scope) memberProblem {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := cleanExprMessage(fe.Message)
		if m := unknownNameRE.FindStringSubmatch(fe.Message); m != nil {
			msg = unknownName(m[1], sc)
		}
		return memberProblem{offset: fe.From, msg: msg}
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "expected bool, but got ") {
		msg = "a condition must be true or false, but this gives " + cleanExprMessage(strings.TrimPrefix(msg, "expected bool, but got "))
	}
	return memberProblem{offset: 0, msg: msg}
}

func unknownName(name string, sc *scope) string {
	if why, ok := sc.forbidden[name]; ok {
		return why
	}
	names := make([]string, 0, len(sc.names))
	for _, n := range sc.root.order {
		names = append(names, n)
	}
	return didYouMean(fmt.Sprintf("unknown name %q; here you can use %s", name, joinOr(names)), name, names)
}

// checkExpr checks the expression held by v and reports each problem at the
// offending token's position in the file.
func (u *unit) checkExpr(v *Value, sc *scope) {
	if v == nil {
		return
	}
	if _, probs := compileCondition(v.Str, sc, time.Now); len(probs) > 0 {
		for _, p := range probs {
			line, col := u.scalarPosition(v.Node, p.offset)
			u.report(Error, line, col, v.Path, "%s", p.msg)
		}
	}
}

// exprFunctions are the date helpers conditions may call besides expr-lang's
// builtins: month(user.birthday) == 5, days_since(user.traits.last_seen) > 30.
// now is the clock of now(), days_since and days_until: the wall clock,
// except in a simulation, where conditions see its virtual time.
func exprFunctions(now func() time.Time) []expr.Option {
	return []expr.Option{
		expr.Function("month", func(p ...any) (any, error) { return int(p[0].(time.Time).Month()), nil }, new(func(time.Time) int)),
		expr.Function("day", func(p ...any) (any, error) { return p[0].(time.Time).Day(), nil }, new(func(time.Time) int)),
		expr.Function("weekday", func(p ...any) (any, error) { return int(p[0].(time.Time).Weekday()), nil }, new(func(time.Time) int)),
		expr.Function("days_since", func(p ...any) (any, error) {
			return int(now().Sub(p[0].(time.Time)).Hours() / 24), nil
		}, new(func(time.Time) int)),
		expr.Function("days_until", func(p ...any) (any, error) {
			return int(p[0].(time.Time).Sub(now()).Hours() / 24), nil
		}, new(func(time.Time) int)),
		// expr-lang's own now(), on this clock.
		expr.Function("now", func(p ...any) (any, error) {
			if len(p) == 1 {
				return now().In(p[0].(*time.Location)), nil
			}
			return now(), nil
		}, new(func() time.Time), new(func(*time.Location) time.Time)),
	}
}
