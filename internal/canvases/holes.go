package canvases

import (
	"fmt"
	"strings"
	"text/template/parse"
	"unicode/utf8"
)

// Holes. A message must never go out with a field rendered empty because
// the user (or their owner, or a staff member) does not have it: "好久不见！
// 为您准备了…" with the adviser's name missing. The engine asks
// PrintedFields which fields a template prints bare, and MissingField
// whether one of them is missing for a recipient; if so that recipient's
// message is not sent (reason missing_data). A field printed through
// `default`, or inside {{ if }}/{{ with }} on that same field, is no hole.

// ReasonMissingData is the suppression reason of a message that would have
// printed a missing field.
const ReasonMissingData = "missing_data"

// TemplateField is a field a message template prints.
type TemplateField struct {
	Path   []string // from the top: owner, name
	Offset int      // rune offset of the field in the template text
}

// Name is the dotted path: owner.name.
func (f TemplateField) Name() string { return strings.Join(f.Path, ".") }

// PrintedFields returns the fields a template prints without a default and
// outside an {{ if }} or {{ with }} on the same field, in template order.
func PrintedFields(text string) ([]TemplateField, error) {
	if !strings.Contains(text, "{{") {
		return nil, nil
	}
	trees, err := parse.Parse("message", text, "", "", TemplateFuncs, builtinFuncs)
	if err != nil {
		return nil, err
	}
	w := &printedWalker{text: text}
	for _, t := range trees {
		w.list(t.Root, []string{}, nil)
	}
	return w.out, nil
}

type printedWalker struct {
	text string
	out  []TemplateField
}

// list walks a list of nodes; dot is the absolute path of "." (nil when
// unknown, inside range), guards the fields known present here.
func (w *printedWalker) list(l *parse.ListNode, dot []string, guards [][]string) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			if len(n.Pipe.Decl) == 0 {
				w.pipe(n.Pipe, dot, guards)
			}
		case *parse.IfNode:
			w.list(n.List, dot, append(guards[:len(guards):len(guards)], w.conditions(n.Pipe, dot)...))
			w.list(n.ElseList, dot, guards)
		case *parse.WithNode:
			cond := w.conditions(n.Pipe, dot)
			inner := []string(nil)
			if len(cond) == 1 {
				inner = cond[0]
			}
			w.list(n.List, inner, append(guards[:len(guards):len(guards)], cond...))
			w.list(n.ElseList, dot, guards)
		case *parse.RangeNode:
			w.list(n.List, nil, guards)
			w.list(n.ElseList, dot, guards)
		}
	}
}

// conditions returns the fields an if or with tests for presence: a bare
// field, or the operands of `and`.
func (w *printedWalker) conditions(p *parse.PipeNode, dot []string) [][]string {
	if p == nil || len(p.Cmds) != 1 || len(p.Decl) > 0 {
		return nil
	}
	args := p.Cmds[0].Args
	if id, ok := args[0].(*parse.IdentifierNode); ok && id.Ident == "and" {
		args = args[1:]
	} else if len(args) != 1 {
		return nil
	}
	var out [][]string
	for _, a := range args {
		if path, _, ok := w.field(a, dot); ok {
			out = append(out, path)
		}
	}
	return out
}

// pipe records the fields an action prints.
func (w *printedWalker) pipe(p *parse.PipeNode, dot []string, guards [][]string) {
	for i, cmd := range p.Cmds {
		defaultedLater := false
		for _, later := range p.Cmds[i+1:] {
			if isDefaultCall(later) {
				defaultedLater = true
			}
		}
		for j, a := range cmd.Args {
			// default DEF VALUE: VALUE is defaulted; DEF is printed when
			// VALUE is missing, so it is a field like any other.
			if defaultedLater || (isDefaultCall(cmd) && j == 2) {
				continue
			}
			if sub, ok := a.(*parse.PipeNode); ok {
				w.pipe(sub, dot, guards)
				continue
			}
			path, pos, ok := w.field(a, dot)
			if !ok || len(path) == 0 || guarded(path, guards) {
				continue
			}
			pos = min(max(pos, 0), len(w.text))
			w.out = append(w.out, TemplateField{Path: path, Offset: utf8.RuneCountInString(w.text[:pos])})
		}
	}
}

func isDefaultCall(cmd *parse.CommandNode) bool {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	return ok && id.Ident == "default"
}

// field resolves a field, $.field or dot to its absolute path and the byte
// position where it is written.
func (w *printedWalker) field(a parse.Node, dot []string) ([]string, int, bool) {
	switch a := a.(type) {
	case *parse.FieldNode:
		if dot == nil {
			return nil, 0, false
		}
		// text/template positions a field chain at its last identifier.
		start := int(a.Pos)
		for _, id := range a.Ident[:max(len(a.Ident)-1, 0)] {
			start -= len(id) + 1
		}
		return append(append([]string{}, dot...), a.Ident...), start, true
	case *parse.VariableNode:
		if len(a.Ident) > 1 && a.Ident[0] == "$" {
			return append([]string{}, a.Ident[1:]...), int(a.Pos), true
		}
	case *parse.DotNode:
		if dot != nil {
			return append([]string{}, dot...), int(a.Pos), true
		}
	}
	return nil, 0, false
}

func guarded(path []string, guards [][]string) bool {
	for _, g := range guards {
		if strings.Join(g, ".") == strings.Join(path, ".") {
			return true
		}
	}
	return false
}

// MissingField returns the first of fields that data does not have: absent,
// null, blank text or an empty list. data holds the recipient's documents as
// stored (not normalised), by top-level name: user, owner, staff, task.
func MissingField(fields []TemplateField, data map[string]any) (string, bool) {
	for _, f := range fields {
		var v any = data
		for _, name := range f.Path {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[name]
		}
		if isMissing(v) {
			return f.Name(), true
		}
	}
	return "", false
}

func isMissing(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	case []any:
		return len(v) == 0
	case []string:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// MissingDataError is a render refused because a printed field is missing.
type MissingDataError struct{ Field string }

func (e *MissingDataError) Error() string {
	return fmt.Sprintf("%s is missing, so the message is not sent (%s)", e.Field, ReasonMissingData)
}

// alwaysPresent are fields every recipient has: no default needed.
var alwaysPresent = map[string]bool{"user.id": true, "staff.userid": true, "task.customers": true, "task.deadline": true}

// warnHoles warns where a template prints a field that may be missing
// without a default: recipients without it will not get the message.
func (u *unit) warnHoles(v *Value) {
	fields, err := PrintedFields(v.Str)
	if err != nil {
		return // reported as an error already
	}
	for _, f := range fields {
		name := f.Name()
		if alwaysPresent[name] {
			continue
		}
		line, col := u.scalarPosition(v.Node, f.Offset)
		u.report(Warning, line, col, v.Path, "{{ .%s }} has no default: where %s is missing the message is not sent (%s); write {{ .%s | default \"…\" }} to send it anyway", name, name, ReasonMissingData, name)
	}
}
