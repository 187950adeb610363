package estimate

import (
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// userFields collects the top-level user fields conditions read, so
// profiles are decoded only as far as that. A condition that uses user as a
// whole (passes it to a function, indexes it by a computed key) needs every
// field: all is then true.
type userFields struct {
	keys map[string]bool
	all  bool
}

func newUserFields(keys ...string) *userFields {
	f := &userFields{keys: map[string]bool{}}
	for _, k := range keys {
		f.keys[k] = true
	}
	return f
}

// add reads the fields of one expression. A source that does not parse
// (the compiler would have refused it) makes every field needed.
func (f *userFields) add(src string) {
	if src == "" {
		return
	}
	tree, err := parser.Parse(src)
	if err != nil {
		f.all = true
		return
	}
	v := &userVisitor{f: f}
	ast.Walk(&tree.Node, v)
	if v.idents > v.rooted {
		f.all = true
	}
}

// decodeKeys is the key set for project: nil for every field.
func (f *userFields) decodeKeys() map[string]bool {
	if f.all {
		return nil
	}
	return f.keys
}

type userVisitor struct {
	f              *userFields
	idents, rooted int // user identifiers, and those that start a member chain
}

func (v *userVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "user" {
			v.idents++
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "user" {
			return
		}
		v.rooted++
		if s, ok := n.Property.(*ast.StringNode); ok {
			v.f.keys[s.Value] = true
		} else {
			v.f.all = true
		}
	}
}
