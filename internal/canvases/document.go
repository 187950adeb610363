package canvases

import (
	"strconv"
	"strings"
)

// Document is a YAML file other than a canvas (huabu.yaml) checked by the
// same walker as canvases, so its problems read the same way:
// FILE:LINE:COL: severity: path: message, all of them, with "did you mean".
// The reader of the document adds its own checks at the values' positions.
type Document struct {
	u *unit
	// Root is the checked tree; nil when the file is empty or not a mapping
	// of the expected shape (the problem is reported).
	Root *Value
}

// CheckDocument parses src and checks it against t. An empty file is no
// problem: Root is nil and every value takes its default. expand, when not
// nil, rewrites ${ENV} references in every scalar before it is checked (the
// tree's nodes hold the expanded values afterwards); an empty result counts
// as absent.
func CheckDocument(file string, src []byte, t *Type, expand func(string) string) *Document {
	u := &unit{file: file, src: src, document: true, expand: expand}
	d := &Document{u: u}
	if root := u.parseYAML(); root != nil {
		d.Root = u.walk(root, nil, t, "", 0)
	}
	return d
}

// Lookup finds the value at a path such as "policy.frequency[0].per", or
// nil when it is absent or was invalid (and so already reported).
func (d *Document) Lookup(path string) *Value {
	v := d.Root
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			v = v.Get(name)
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || v == nil || i < 0 || i >= len(v.Items) {
				return nil
			}
			v = v.Items[i]
			rest = strings.TrimPrefix(after, "[")
		}
		if v == nil {
			return nil
		}
	}
	return v
}

// Errorf reports an error about the value at path (at the file's start when
// the value is absent: a missing key has no position of its own).
func (d *Document) Errorf(path, format string, args ...any) {
	d.add(Error, path, format, args...)
}

// Warnf reports a warning about the value at path.
func (d *Document) Warnf(path, format string, args ...any) {
	d.add(Warning, path, format, args...)
}

func (d *Document) add(sev Severity, path, format string, args ...any) {
	line, col := d.at(path)
	d.u.report(sev, line, col, path, format, args...)
}

// at positions a path: its value, else the nearest enclosing value written.
func (d *Document) at(path string) (line, col int) {
	for p := path; p != ""; {
		if v := d.Lookup(p); v != nil {
			return v.pos()
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 1, 1
}

// CheckCondition checks the expression at path against the user-only scope
// of comp (auto-tag rules, audiences) and reports each problem at the bad
// token inside the scalar.
func (d *Document) CheckCondition(path string, comp *Compiler) {
	if v := d.Lookup(path); v != nil {
		d.u.checkExpr(v, comp.audience)
	}
}

// Problems returns every problem found so far, sorted by position.
func (d *Document) Problems() Problems {
	ps := append(Problems(nil), d.u.problems...)
	ps.Sort()
	return ps
}

// Reported reports whether a problem was already reported at path or
// inside it, so a reader's own checks do not repeat the walk's.
func (d *Document) Reported(path string) bool {
	for _, p := range d.u.problems {
		if p.Path == path || strings.HasPrefix(p.Path, path+".") || strings.HasPrefix(p.Path, path+"[") {
			return true
		}
	}
	return false
}

// HasErrors reports whether any problem so far is an error.
func (d *Document) HasErrors() bool { return d.u.problems.HasErrors() }
