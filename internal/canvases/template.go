package canvases

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"
)

// Message texts are Go templates ({{ .user.name }}). They are checked against
// the same schema as expressions: each field chain is resolved, and an
// unknown field is reported at its position in the file.

// TemplateFuncs are the functions message templates may call.
var TemplateFuncs = template.FuncMap{
	// default gives a fallback for an empty value: {{ .user.name | default "顾客" }}.
	"default": func(def, v any) any {
		if v == nil {
			return def
		}
		rv := reflect.ValueOf(v)
		if rv.IsZero() || ((rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.Len() == 0) {
			return def
		}
		return v
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	// date formats a date or time with a Go layout: {{ .user.birthday | date "1月2日" }}.
	"date": func(layout string, t time.Time) string { return t.Format(layout) },
	// mask hides the middle of a phone number or id: 138****5678.
	"mask": func(s string) string {
		r := []rune(s)
		if len(r) <= 4 {
			return strings.Repeat("*", len(r))
		}
		keep := min(3, (len(r)-4)/2+1)
		return string(r[:keep]) + strings.Repeat("*", len(r)-keep-4) + string(r[len(r)-4:])
	},
}

// builtinFuncs names text/template's own functions for parse.Parse, which
// (unlike template.Parse) knows only the functions it is given.
var builtinFuncs = map[string]any{}

func init() {
	for _, name := range []string{"and", "or", "not", "len", "index", "slice", "print", "printf", "println",
		"html", "js", "urlquery", "eq", "ne", "lt", "le", "gt", "ge", "call"} {
		builtinFuncs[name] = func() {}
	}
}

// ParseTemplate parses a message text the way the engine renders it.
func ParseTemplate(text string) (*template.Template, error) {
	return template.New("message").Funcs(TemplateFuncs).Option("missingkey=zero").Parse(text)
}

var templateLineRE = regexp.MustCompile(`^template: [^:]*:(\d+):(?:\d+:)? ?(.*)$`)

// checkTemplate checks the message template held by v in a scope.
func (u *unit) checkTemplate(v *Value, sc *scope) {
	if v == nil {
		return
	}
	problems := templateProblems(v.Str, sc)
	for _, p := range problems {
		line, col := u.scalarPosition(v.Node, p.offset)
		u.report(Error, line, col, v.Path, "%s", p.msg)
	}
	if len(problems) == 0 {
		u.warnHoles(v)
	}
}

// templateUses reports whether the template reads the named top-level field.
func templateUses(text, name string) bool {
	trees, err := parse.Parse("message", text, "", "", TemplateFuncs, builtinFuncs)
	if err != nil {
		return false
	}
	found := false
	var visit func(parse.Node)
	visit = func(n parse.Node) {
		if n == nil || found {
			return
		}
		forEachChild(n, visit)
		if f, ok := n.(*parse.FieldNode); ok && len(f.Ident) > 0 && f.Ident[0] == name {
			found = true
		}
	}
	for _, t := range trees {
		visit(t.Root)
	}
	return found
}

// forEachChild calls fn for the direct children of a template node.
func forEachChild(n parse.Node, fn func(parse.Node)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				fn(c)
			}
		}
	case *parse.ActionNode:
		fn(n.Pipe)
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				fn(c)
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			fn(a)
		}
	case *parse.ChainNode:
		fn(n.Node)
	case *parse.IfNode:
		fn(n.Pipe)
		fn(n.List)
		fn(n.ElseList)
	case *parse.RangeNode:
		fn(n.Pipe)
		fn(n.List)
		fn(n.ElseList)
	case *parse.WithNode:
		fn(n.Pipe)
		fn(n.List)
		fn(n.ElseList)
	}
}

// templateProblems returns unknown fields and syntax errors, with rune
// offsets into text.
func templateProblems(text string, sc *scope) []memberProblem {
	trees, err := parse.Parse("message", text, "", "", TemplateFuncs, builtinFuncs)
	if err != nil {
		msg := err.Error()
		offset := 0
		if m := templateLineRE.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			offset = lineOffset(text, line)
			msg = m[2]
		}
		return []memberProblem{{offset: offset, msg: "invalid message template: " + msg}}
	}
	if len(trees) > 1 {
		return []memberProblem{{offset: 0, msg: "named templates ({{ define }}) are not supported in messages"}}
	}
	tc := &templateChecker{text: text, scope: sc}
	for _, t := range trees {
		tc.list(t.Root, sc.root)
	}
	return tc.problems
}

func lineOffset(text string, line int) int {
	off := 0
	for i := 1; i < line; i++ {
		j := strings.IndexByte(text[off:], '\n')
		if j < 0 {
			break
		}
		off += j + 1
	}
	return utf8.RuneCountInString(text[:off])
}

type templateChecker struct {
	text     string
	scope    *scope
	problems []memberProblem
}

func (tc *templateChecker) add(bytePos int, msg string) {
	bytePos = min(max(bytePos, 0), len(tc.text))
	tc.problems = append(tc.problems, memberProblem{offset: utf8.RuneCountInString(tc.text[:bytePos]), msg: msg})
}

func (tc *templateChecker) list(l *parse.ListNode, dot *envNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		tc.node(n, dot)
	}
}

func (tc *templateChecker) node(n parse.Node, dot *envNode) {
	switch n := n.(type) {
	case *parse.ActionNode:
		tc.pipe(n.Pipe, dot)
	case *parse.IfNode:
		tc.pipe(n.Pipe, dot)
		tc.list(n.List, dot)
		tc.list(n.ElseList, dot)
	case *parse.WithNode:
		inner := tc.pipe(n.Pipe, dot)
		tc.list(n.List, inner)
		tc.list(n.ElseList, dot)
	case *parse.RangeNode:
		over := tc.pipe(n.Pipe, dot)
		var elem *envNode
		if over != nil && over.typ == TypeList {
			elem = newLeaf(over.path+"[]", TypeString)
		}
		tc.list(n.List, elem)
		tc.list(n.ElseList, dot)
	case *parse.TemplateNode:
		tc.add(int(n.Pos), "{{ template }} is not supported in messages")
	}
}

// pipe checks a pipeline and returns the type it yields when that is known.
func (tc *templateChecker) pipe(p *parse.PipeNode, dot *envNode) *envNode {
	if p == nil {
		return nil
	}
	var last *envNode
	for _, cmd := range p.Cmds {
		last = nil
		for _, arg := range cmd.Args {
			t := tc.arg(arg, dot)
			if len(cmd.Args) == 1 {
				last = t
			}
		}
	}
	if len(p.Decl) > 0 {
		return nil // variables are not tracked; their uses go unchecked
	}
	return last
}

func (tc *templateChecker) arg(a parse.Node, dot *envNode) *envNode {
	switch a := a.(type) {
	case *parse.FieldNode:
		// text/template positions a field chain at its last identifier.
		start := int(a.Pos)
		for _, id := range a.Ident[:max(len(a.Ident)-1, 0)] {
			start -= len(id) + 1
		}
		return tc.chain(start, a.Ident, dot, ".")
	case *parse.VariableNode:
		if len(a.Ident) > 0 && a.Ident[0] == "$" {
			return tc.chain(int(a.Pos)+1, a.Ident[1:], tc.scope.root, "$.")
		}
	case *parse.PipeNode:
		return tc.pipe(a, dot)
	case *parse.ChainNode:
		tc.arg(a.Node, dot)
	case *parse.DotNode:
		return dot
	}
	return nil
}

// chain resolves .a.b.c from start; pos is the byte offset of the first dot.
func (tc *templateChecker) chain(pos int, idents []string, start *envNode, lead string) *envNode {
	env := start
	off := pos + len(lead)
	for i, id := range idents {
		if env == nil || env.typ == typeAnyMap || env.typ == TypeAny {
			return nil
		}
		child := env.field(id)
		if child == nil {
			switch {
			case env == tc.scope.root:
				if why, ok := tc.scope.forbidden[id]; ok {
					tc.add(off, why)
				} else {
					tc.add(off, didYouMean(fmt.Sprintf("unknown field .%s; messages here can use %s", id, dotted(env.order)), id, env.order))
				}
			default:
				tc.add(off, unknownField(env, id))
			}
			return nil
		}
		env = child
		if i < len(idents)-1 {
			off += len(id) + 1
		}
	}
	return env
}

func dotted(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "." + n
	}
	return joinOr(out)
}
