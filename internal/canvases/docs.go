package canvases

import (
	"fmt"
	"slices"
	"strings"
)

// Reference returns docs/canvas.md, the canvas language reference, generated
// from Spec and the channel catalogue.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Canvas language reference

<!-- Generated from internal/canvases/spec_canvas.go by ` + "`go test ./internal/canvases -run TestGenerated -update`" + `. Do not edit. -->

A canvas is one YAML file: a trigger, an audience, then steps. ` + "`huabu validate`" + ` checks
every field below, every expression and every message template against the profile schema in
huabu.yaml, and reports each problem as ` + "`FILE:LINE:COL: severity: path: message`" + `.
` + "`huabu schema`" + ` prints the same format as a JSON Schema for editors:

` + "```yaml" + `
# yaml-language-server: $schema=../docs/canvas.schema.json
` + "```" + `

## Values

| kind | written as |
| --- | --- |
| duration | ` + "`45s`, `30m`, `36h`, `3d`, `2w`, or combined like `1d12h`" + ` (a day is 24 h) |
| time of day | ` + "`\"10:00\"`" + ` (24-hour HH:MM; quote it) |
| time | RFC 3339, ` + "`2026-12-01T10:00:00+08:00`" + ` |
| cron | five fields, minute hour day-of-month month day-of-week (` + "`\"0 10 * * MON\"`" + `), or ` + "`@daily`" + `, ` + "`@weekly`" + `, ` + "`@monthly`" + ` |
| expression | [expr-lang](https://expr-lang.org) returning true or false, e.g. ` + "`'user.rfm.r <= 2 && !(\"vip\" in user.tags)'`" + ` |
| message | Go template text, e.g. ` + "`\"{{ .user.name }}，您好\"`" + ` |

## Expressions

Conditions see ` + "`user`" + `: ` + "`user.id`" + `, ` + "`user.tags`" + ` (list of strings), every attribute declared
under ` + "`profile.attributes`" + ` plus the reserved ones (` + strings.Join(quoted(ReservedAttributes), ", ") + `),
` + "`user.traits.NAME`" + ` for each computed trait and ` + "`user.rfm.r`" + ` / ` + "`f`" + ` / ` + "`m`" + ` (1–5) when RFM is
configured. Conditions on events (` + "`trigger.event.when`" + `, ` + "`exit.when`" + `, ` + "`goal.when`" + `, a wait's
` + "`when`" + `) also see ` + "`event`" + `: the event's properties, typed when the event is declared under
` + "`events:`" + ` in huabu.yaml. Branch conditions also see ` + "`visit`" + `: how many times the user has come to
that branch in this run (1 the first time), which is how a loop is bounded. Every name and type is
checked; an unknown field is an error at its column.

A message is sent to the address in the reserved attribute its channel reads (` + "`phone`" + ` for SMS,
` + "`wecom_external_userid`" + ` for customer messages, …), matched by its exact name and only when it is a
non-empty string: a profile written with ` + "`\"Phone\"`" + ` or with a number has no phone, and its message is
suppressed with ` + "`no_address`" + ` (TestAddressMembersMatchExactly).

## Loops

A goto back to an earlier step makes a loop; a wait must pace it. Each time users come round,
they visit the loop's steps again: a push sends again (once per visit, never twice for one visit),
and ` + "`huabu report`" + ` lists each visit of such a step under it. A branch ends the loop with ` + "`visit`" + `:

` + "```yaml" + `
  - id: remind
    push: {channel: push, text: 您的购物车还有商品，今天下单享 9 折}
  - id: wait-a-day
    wait: {event: purchase, timeout: 1d, on_timeout: again}
  - id: bought
    exit: {reason: converted}
  - id: again
    branch:
      - {when: 'visit < 3', goto: remind}   # at most three reminders
      - {else: give-up}
  - id: give-up
    exit: {reason: no_purchase}
` + "```" + `

A staff_task cannot be on a loop (its tasks are kept once per run, step and cohort); cohorts that reach it by different paths, at different times, each get their own tasks.

## Messages

Push texts may use ` + "`{{ .user.* }}`" + ` and ` + "`{{ .owner.* }}`" + ` (the customer's owner staff member:
userid, name, grid, leader). A staff_task text is one text per staff member's task, so it may use
only ` + "`{{ .staff.* }}`" + `; its notice also sees ` + "`{{ .task.customers }}`" + ` and ` + "`{{ .task.deadline }}`" + `.
Functions: ` + "`default`" + ` (` + "`{{ .user.name | default \"顾客\" }}`" + `), ` + "`upper`" + `, ` + "`lower`" + `, ` + "`date`" + `
(` + "`{{ .user.birthday | date \"1月2日\" }}`" + `) and ` + "`mask`" + ` (` + "`138****5678`" + `).

A message never goes out with a hole in it. When a field it prints is missing for a recipient — absent,
empty text or an empty list; the owner not in the staff directory — that recipient's message is not
sent: the report counts it as suppressed with reason ` + "`missing_data`" + ` (for a staff_task, that member's
task fails with that reason). Print it through ` + "`default`" + ` (` + "`{{ .owner.name | default \"您的顾问\" }}`" + `), or
inside ` + "`{{ if .user.name }}…{{ end }}`" + `, to send anyway; ` + "`huabu validate`" + ` warns at every field printed
without either (` + "`user.id`" + `, ` + "`staff.userid`" + ` and ` + "`task.*`" + ` are always there).

## Channels

| channel | reads | needs | to | |
| --- | --- | --- | --- | --- |
`)
	for _, c := range Channels {
		needs := "—"
		if len(c.AnyOf) > 0 {
			needs = strings.Join(quoted(c.AnyOf), " or ")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", c.Name, strings.Join(quoted(c.Fields), ", "), needs, strings.Join(quoted(c.Recipients), ", "), c.Doc)
	}
	b.WriteString("\nA channel whose config section is missing from huabu.yaml sends to the outbox, and `huabu validate` warns about it.\n")
	for _, t := range objectTypes() {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", t.Name, t.Doc)
		if len(t.OneOf) > 0 {
			fmt.Fprintf(&b, "\nExactly one of %s.\n", strings.Join(quoted(t.OneOf), ", "))
		}
		if len(t.Fields) == 0 {
			b.WriteString("\nNo fields: write `{}` or leave it empty.\n")
			continue
		}
		b.WriteString("\n| field | type | required | description |\n| --- | --- | --- | --- |\n")
		for _, f := range t.Fields {
			doc := f.Doc
			if doc == "" {
				doc = f.Type.Doc
			}
			if f.Default != "" {
				doc += " Default: " + f.Default + "."
			}
			if f.Example != "" {
				doc += " Example: `" + f.Example + "`."
			}
			reqd := ""
			if f.Required {
				reqd = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, typeName(f.Type), reqd, strings.ReplaceAll(strings.TrimSpace(doc), "|", "\\|"))
		}
	}
	return b.String()
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "`" + n + "`"
	}
	return out
}

// typeName names a type in the reference tables, linking object types.
func typeName(t *Type) string {
	switch t.Kind {
	case KindObject:
		return fmt.Sprintf("[%s](#%s)", t.Name, strings.ToLower(t.Name))
	case KindList:
		return "list of " + typeName(t.Elem)
	case KindMap:
		return "map of " + typeName(t.Elem)
	case KindAny:
		return "any"
	case KindUnion:
		names := make([]string, len(t.Alternatives))
		for i, a := range t.Alternatives {
			names[i] = typeName(a)
		}
		return strings.Join(names, " or ")
	case KindDuration:
		return "duration"
	case KindExpr:
		return "expression"
	case KindTemplate:
		return "message"
	case KindInt:
		return "integer"
	case KindBool:
		return "bool"
	}
	switch t.Format {
	case FormatCron:
		return "cron"
	case FormatTimezone:
		return "time zone"
	case FormatTime:
		return "time"
	case FormatClock:
		return "time of day"
	case FormatUntil:
		return "time of day or time"
	case FormatOffset:
		return "duration or time of day"
	case FormatStepRef:
		return "step id"
	case FormatChannel:
		return "channel"
	case FormatChannelOrAny:
		return "channel or `any`"
	case FormatEvent:
		return "event name"
	}
	if len(t.Enum) > 0 {
		return strings.Join(quoted(t.Enum), " \\| ")
	}
	return "string"
}

// objectTypes lists the named object types reachable from Spec, in the order
// a reader meets them.
func objectTypes() []*Type {
	var out []*Type
	seen := map[*Type]bool{}
	var visit func(t *Type)
	visit = func(t *Type) {
		if t == nil || seen[t] {
			return
		}
		seen[t] = true
		if t.Kind == KindObject && !slices.Contains(out, t) {
			out = append(out, t)
		}
		for _, f := range t.Fields {
			visit(f.Type)
		}
		visit(t.Elem)
		for _, a := range t.Alternatives {
			visit(a)
		}
	}
	visit(Spec)
	return out
}
