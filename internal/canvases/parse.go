package canvases

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// maxDepth bounds nesting (and alias chains) so hostile input cannot make
// the walker recurse without end.
const maxDepth = 64

// unit is the state of checking one canvas file.
type unit struct {
	file     string
	src      []byte
	compiler *Compiler
	problems Problems
	// document is set when the file is not a canvas (huabu.yaml): an empty
	// file is fine, and unknown keys are named by their own path.
	document bool
	// expand, when set, rewrites ${ENV} references in scalars before they
	// are checked.
	expand func(string) string
}

// expandTree expands every scalar under n (values the spec does not type).
func (u *unit) expandTree(n *yaml.Node, depth int) {
	if u.expand == nil || depth > maxDepth {
		return
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = u.expand(n.Value)
	}
	for _, c := range n.Content {
		u.expandTree(c, depth+1)
	}
}

func (u *unit) report(sev Severity, line, col int, path, format string, args ...any) {
	if line == 0 {
		line, col = 1, 1
	}
	u.problems = append(u.problems, Problem{
		File: u.file, Line: line, Column: col, Severity: sev, Path: path,
		Message: fmt.Sprintf(format, args...),
	})
}

func (u *unit) errAt(n *yaml.Node, path, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	u.report(Error, line, col, path, format, args...)
}

func (u *unit) errorf(v *Value, path, format string, args ...any) {
	line, col := v.pos()
	u.report(Error, line, col, path, format, args...)
}

func (u *unit) warnf(v *Value, path, format string, args ...any) {
	line, col := v.pos()
	u.report(Warning, line, col, path, format, args...)
}

var (
	yamlLineRE      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	parserProblemRE = regexp.MustCompile(`^(did not find expected (key|node content|'-' indicator|',' or '[]}]'|<document start>)|found (duplicate %|incompatible YAML|undefined tag handle))`)
)

// parseYAML reads the single document of a canvas file.
func (u *unit) parseYAML() (root *yaml.Node) {
	defer func() {
		// yaml.v3 is well fuzzed, but a canvas file must never crash the CLI.
		if r := recover(); r != nil {
			u.report(Error, 1, 1, "", "could not parse YAML: %v", r)
			root = nil
		}
	}()
	if len(bytes.TrimSpace(u.src)) == 0 {
		if !u.document {
			u.report(Error, 1, 1, "", "empty file: a canvas needs at least id, trigger and steps")
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(u.src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		u.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		if u.document {
			u.errAt(&extra, "", "the file holds more than one YAML document; keep one")
		} else {
			u.errAt(&extra, "", "a canvas file holds one canvas; put each canvas in its own file")
		}
	} else if !errors.Is(err, io.EOF) {
		u.yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || (u.document && isNull(doc.Content[0])) {
		if !u.document {
			u.report(Error, 1, 1, "", "empty file: a canvas needs at least id, trigger and steps")
		}
		return nil
	}
	return doc.Content[0]
}

func (u *unit) yamlError(err error) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		// yaml.v3 prints a parser error's context line 0-based (a scanner
		// error's 1-based); both then name where the broken construct starts.
		if parserProblemRE.MatchString(m[2]) {
			line++
		}
		u.report(Error, line, 1, "", "invalid YAML: %s", m[2])
		return
	}
	u.report(Error, 1, 1, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		v := n.Value
		if len([]rune(v)) > 40 {
			v = string([]rune(v)[:40]) + "…"
		}
		return strconv.Quote(v)
	}
	return "an unsupported value"
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// walk checks node against t and returns its decoded Value, or nil when it
// does not fit (the problem is reported).
func (u *unit) walk(n *yaml.Node, key *yaml.Node, t *Type, path string, depth int) *Value {
	for n.Kind == yaml.AliasNode {
		if depth++; depth > maxDepth || n.Alias == nil {
			u.errAt(n, path, "alias nests too deep")
			return nil
		}
		n = n.Alias
	}
	if depth > maxDepth {
		u.errAt(n, path, "value nests too deep")
		return nil
	}
	if t.Kind == KindUnion {
		alt := pickAlternative(n, t)
		if alt == nil {
			u.errAt(n, path, "expected %s, got %s", t.Label(), describe(n))
			return nil
		}
		t = alt
	}
	v := &Value{Node: n, Key: key, Path: path, Type: t}
	switch t.Kind {
	case KindAny:
		u.expandTree(n, depth)
		return v
	case KindObject:
		return u.walkObject(v, t, depth)
	case KindMap:
		return u.walkMap(v, t, depth)
	case KindList:
		if n.Kind != yaml.SequenceNode {
			u.errAt(n, path, "expected a list, got %s", describe(n))
			return nil
		}
		if len(n.Content) < t.MinItems {
			if len(n.Content) == 0 {
				u.errAt(n, path, "the list is empty; it needs at least %d item(s)", t.MinItems)
			} else {
				u.errAt(n, path, "needs at least %d items, has %d", t.MinItems, len(n.Content))
			}
		}
		for i, item := range n.Content {
			if iv := u.walk(item, nil, t.Elem, fmt.Sprintf("%s[%d]", path, i), depth+1); iv != nil {
				v.Items = append(v.Items, iv)
			}
		}
		return v
	}
	// Scalars.
	if n.Kind != yaml.ScalarNode || isNull(n) {
		u.errAt(n, path, "expected %s, got %s", t.Label(), describe(n))
		return nil
	}
	if u.expand != nil && strings.Contains(n.Value, "${") {
		// ${ENV} is expanded after parsing (so a value may hold any
		// character) and before checking; an empty one takes the default.
		n.Value = u.expand(n.Value)
		if n.Value == "" {
			n.Tag = "!!null" // decodes to the zero value, so the default applies
			return nil
		}
		if n.Style == 0 && (t.Kind == KindInt || t.Kind == KindBool) {
			n.Tag = ""
			n.Tag = n.ShortTag()
		}
	}
	switch t.Kind {
	case KindInt:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Tag != "!!int" || err != nil {
			u.errAt(n, path, "expected a whole number, got %s", describe(n))
			return nil
		}
		v.Int = i
	case KindBool:
		if n.Tag != "!!bool" {
			u.errAt(n, path, "expected true or false, got %s", describe(n))
			return nil
		}
		v.Bool = n.Value == "true"
	case KindDuration:
		if n.Tag == "!!int" || n.Tag == "!!float" {
			u.errAt(n, path, "duration %s has no unit; write it like %ss, %sm, %sh or %sd", n.Value, n.Value, n.Value, n.Value, n.Value)
			return nil
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			u.errAt(n, path, "%v", err)
			return nil
		}
		if d <= 0 {
			u.errAt(n, path, "duration must be more than zero")
			return nil
		}
		v.Dur = d
	case KindString, KindExpr, KindTemplate:
		v.Str = n.Value
		if t.Kind == KindString && !u.checkString(v, t) {
			return nil
		}
		if t.Kind != KindString && strings.TrimSpace(n.Value) == "" {
			u.errAt(n, path, "is empty")
			return nil
		}
	}
	return v
}

// pickAlternative chooses the union member that fits the node's shape.
func pickAlternative(n *yaml.Node, t *Type) *Type {
	for _, alt := range t.Alternatives {
		switch alt.Kind {
		case KindObject:
			if n.Kind == yaml.MappingNode || (alt.NullIsEmpty && isNull(n)) {
				return alt
			}
		case KindMap:
			if n.Kind == yaml.MappingNode {
				return alt
			}
		case KindList:
			if n.Kind == yaml.SequenceNode {
				return alt
			}
		case KindBool:
			if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
				return alt
			}
		default:
			if n.Kind == yaml.ScalarNode && !isNull(n) && n.Tag != "!!bool" {
				return alt
			}
		}
	}
	return nil
}

// fieldHints name the right field for common slips that are not typos.
var fieldHints = map[string]string{
	"goto":     `use next to say which step follows (goto belongs in branch and split arms)`,
	"type":     `write the step kind as a key, e.g. push: {...}`,
	"delay":    `use a wait step, e.g. wait: 3d`,
	"sleep":    `use a wait step, e.g. wait: 3d`,
	"channels": `a push has one channel; add fallback: for a second`,
}

func (u *unit) walkObject(v *Value, t *Type, depth int) *Value {
	n, path := v.Node, v.Path
	if isNull(n) && t.NullIsEmpty {
		v.Fields = map[string]*Value{}
		return v
	}
	if n.Kind != yaml.MappingNode {
		u.errAt(n, path, "expected %s, got %s", t.Label(), describe(n))
		return nil
	}
	v.Fields = map[string]*Value{}
	seen := map[string]*yaml.Node{}
	v.Raw = seen
	// typos are fields an unknown key probably meant; their absence is
	// already explained by the "did you mean" message.
	typos := map[string]bool{}
	var present []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			u.errAt(k, path, "field names must be plain words, got %s", describe(k))
			continue
		}
		name := k.Value
		if k.Tag == "!!merge" {
			u.errAt(k, path, "merge keys (<<) are not supported in canvases; repeat the fields instead")
			continue
		}
		if first, dup := seen[name]; dup {
			u.errAt(k, join(path, name), "duplicate field %q (first set on line %d)", name, first.Line)
			continue
		}
		seen[name] = k
		f := t.Field(name)
		if f == nil && u.document {
			names := make([]string, len(t.Fields))
			for j, tf := range t.Fields {
				names[j] = tf.Name
			}
			msg := "unknown key; known here: " + strings.Join(names, ", ")
			if s := suggest(name, names); s != "" {
				typos[s] = true
				msg = fmt.Sprintf("unknown key (did you mean %q?)", s)
			}
			u.errAt(k, join(path, name), "%s", msg)
			continue
		}
		if f == nil {
			msg := fmt.Sprintf("unknown field %q", name)
			if hint, ok := fieldHints[name]; ok {
				msg += "; " + hint
			} else {
				names := make([]string, len(t.Fields))
				for j, tf := range t.Fields {
					names[j] = tf.Name
				}
				if s := suggest(name, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
					typos[s] = true
				}
			}
			u.errAt(k, path, "%s", msg)
			continue
		}
		present = append(present, name)
		if fv := u.walk(val, k, f.Type, join(path, name), depth+1); fv != nil {
			v.Fields[name] = fv
			v.Keys = append(v.Keys, name)
		}
	}
	at := n
	if v.Key != nil {
		at = v.Key
	}
	for _, f := range t.Fields {
		if f.Required && seen[f.Name] == nil && !typos[f.Name] {
			u.errAt(at, path, "missing required field %q", f.Name)
		}
	}
	if len(t.OneOf) > 0 {
		var kinds []string
		for _, name := range present {
			if slices.Contains(t.OneOf, name) {
				kinds = append(kinds, name)
			}
		}
		for name := range typos {
			if slices.Contains(t.OneOf, name) {
				kinds = append(kinds, name)
			}
		}
		switch {
		case len(kinds) == 0:
			what := "needs one of " + quoteList(t.OneOf)
			if t == specStep {
				what = "has no step kind; add one of " + quoteList(t.OneOf)
			}
			u.errAt(at, path, "%s", what)
		case len(kinds) > 1:
			u.errAt(seen[kinds[1]], path, "has both %q and %q; use only one", kinds[0], kinds[1])
		}
	}
	return v
}

func (u *unit) walkMap(v *Value, t *Type, depth int) *Value {
	n := v.Node
	if n.Kind != yaml.MappingNode {
		u.errAt(n, v.Path, "expected a mapping, got %s", describe(n))
		return nil
	}
	v.Fields = map[string]*Value{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) || k.Value == "" {
			u.errAt(k, v.Path, "keys must be non-empty words, got %s", describe(k))
			continue
		}
		if _, dup := v.Fields[k.Value]; dup {
			u.errAt(k, join(v.Path, k.Value), "duplicate key %q", k.Value)
			continue
		}
		if fv := u.walk(val, k, t.Elem, join(v.Path, k.Value), depth+1); fv != nil {
			v.Fields[k.Value] = fv
			v.Keys = append(v.Keys, k.Value)
		}
	}
	return v
}

var (
	canvasIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	stepIDRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	identRE    = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	clockRE    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// CronParser is the cron dialect of schedule triggers: five fields, or a
// descriptor such as @daily. Temporal Schedules accept the same syntax.
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// checkString applies a string type's enum and format.
func (u *unit) checkString(v *Value, t *Type) bool {
	s, n, path := v.Str, v.Node, v.Path
	bad := func(format string, args ...any) bool {
		u.errAt(n, path, format, args...)
		return false
	}
	if len(t.Enum) > 0 && !slices.Contains(t.Enum, s) {
		return bad("%s", didYouMean(fmt.Sprintf("%q is not one of %s", s, quoteList(t.Enum)), s, t.Enum))
	}
	switch t.Format {
	case FormatCanvasID:
		if len(s) > 64 || !canvasIDRE.MatchString(s) {
			return bad("canvas id %q must be lowercase letters, digits and - (at most 64)", s)
		}
	case FormatStepID:
		if len(s) > 64 || !stepIDRE.MatchString(s) {
			return bad("step id %q must be lowercase letters, digits, - and _ (at most 64)", s)
		}
	case FormatStepRef:
		if len(s) > 64 || !stepIDRE.MatchString(s) {
			return bad("%q is not a step id", s)
		}
	case FormatCron:
		if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
			return bad("put the time zone in timezone:, not in the cron expression %q", s)
		}
		if strings.HasPrefix(s, "@every") {
			return bad("cron %q: @every is not supported; use a five-field cron expression", s)
		}
		if _, err := CronParser.Parse(s); err != nil {
			return bad("invalid cron expression %q: %s", s, cronMessage(err))
		}
	case FormatTimezone:
		if _, err := LoadLocation(s); err != nil {
			return bad("%v", err)
		}
	case FormatTime:
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return bad("invalid time %q; write RFC 3339 like 2026-12-01T10:00:00+08:00", s)
		}
	case FormatClock:
		if !clockRE.MatchString(s) {
			return bad("invalid time of day %q; write HH:MM like 09:30", s)
		}
	case FormatUntil:
		if !clockRE.MatchString(s) {
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				return bad("invalid time %q; write a time of day HH:MM like 10:00, or RFC 3339 like 2026-12-01T10:00:00+08:00", s)
			}
		}
	case FormatOffset:
		if !clockRE.MatchString(s) {
			if _, err := ParseDuration(s); err != nil {
				return bad("invalid reminder %q; write a duration after creation like 5h or a time of day like 14:00", s)
			}
		}
	case FormatReentry:
		if _, err := ParseReentry(s); err != nil {
			return bad("%v", err)
		}
	case FormatChannel, FormatChannelOrAny:
		if s == "any" && t.Format == FormatChannelOrAny {
			return true
		}
		if Channel(s) == nil {
			return bad("%s", didYouMean(fmt.Sprintf("unknown channel %q", s), s, ChannelNames()))
		}
	case FormatRecipient:
		if !slices.Contains(allRecipients, s) {
			return bad("%s", didYouMean(fmt.Sprintf("unknown recipient %q; use user, owner or owner.leader", s), s, allRecipients))
		}
	case FormatEvent:
		if strings.TrimSpace(s) == "" || len(s) > 200 {
			return bad("event name must be 1 to 200 characters")
		}
	case FormatTag:
		if strings.TrimSpace(s) != s || s == "" || len([]rune(s)) > 64 {
			return bad("tag %q must be 1 to 64 characters without surrounding spaces", s)
		}
	case FormatNonEmpty:
		if strings.TrimSpace(s) == "" {
			return bad("is empty")
		}
	}
	return true
}

// LoadLocation loads an IANA zone, refusing the machine-dependent "Local".
func LoadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("invalid time zone %q; use an IANA name like Asia/Shanghai", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; use an IANA name like Asia/Shanghai", name)
	}
	return loc, nil
}

var cronIntRE = regexp.MustCompile(`^failed to parse int from (\S+):`)

// cronMessage rewrites robfig/cron's parse errors for operators.
func cronMessage(err error) string {
	msg := err.Error()
	if m := cronIntRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%q is not a number or a name (days are SUN-SAT, months JAN-DEC)", m[1])
	}
	if i := strings.Index(msg, ": ["); i > 0 {
		msg = msg[:i] // drop the echo of the fields
	}
	return msg + "; fields are minute hour day-of-month month day-of-week"
}
