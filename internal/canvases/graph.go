package canvases

import (
	"fmt"
	"strings"
)

// Graph drawing. Both formats come from one list of nodes and edges, so a
// mermaid diagram in a wiki and a dot rendering agree.

type graphNode struct {
	id, label string
	shape     string // box, diamond, round, stadium
}

type graphEdge struct {
	from, to, label string
}

// graph lays out a plan: a trigger node, one node per step, an end node.
func (p *Plan) graph() ([]graphNode, []graphEdge) {
	ids := map[string]string{}
	for i, s := range p.Steps {
		ids[s.ID] = graphStepNodeID(i)
	}
	nodes := []graphNode{{id: "trigger", label: p.triggerLabel(), shape: "stadium"}}
	var edges []graphEdge
	if len(p.Steps) > 0 {
		edges = append(edges, graphEdge{from: "trigger", to: ids[p.Steps[0].ID]})
	}
	needEnd := false
	for _, s := range p.Steps {
		id := ids[s.ID]
		shape := "box"
		switch s.Kind {
		case StepBranch, StepSplit:
			shape = "diamond"
		case StepWait:
			shape = "round"
		case StepExit:
			shape = "stadium"
		}
		nodes = append(nodes, graphNode{id: id, label: stepLabel(s), shape: shape})
		for _, e := range s.Edges() {
			to := ids[e.To]
			if e.To == "" {
				needEnd, to = true, "end"
			}
			edges = append(edges, graphEdge{from: id, to: to, label: e.Label})
		}
	}
	if needEnd {
		nodes = append(nodes, graphNode{id: "end", label: "end", shape: "stadium"})
	}
	return nodes, edges
}

func (p *Plan) triggerLabel() string {
	var b strings.Builder
	switch p.Trigger.Kind {
	case TriggerSchedule:
		s := p.Trigger.Schedule
		if s.At != "" {
			fmt.Fprintf(&b, "schedule at %s", s.At)
		} else {
			fmt.Fprintf(&b, "schedule %s (%s)", s.Cron, s.Timezone)
		}
	case TriggerEvent:
		fmt.Fprintf(&b, "event %s", p.Trigger.Event.Event)
		if p.Trigger.Event.When != "" {
			fmt.Fprintf(&b, "\nwhen %s", p.Trigger.Event.When)
		}
	case TriggerManual:
		b.WriteString("manual")
	}
	if p.Audience != "" {
		fmt.Fprintf(&b, "\naudience: %s", p.Audience)
	}
	return b.String()
}

func stepLabel(s *Step) string {
	head := s.ID
	if s.Name != "" {
		head = s.Name
	}
	var body string
	switch s.Kind {
	case StepPush:
		body = fmt.Sprintf("push %s → %s", s.Push.Channel, s.Push.To)
		if s.Push.Fallback != nil {
			body += fmt.Sprintf("\nfallback %s", s.Push.Fallback.Channel)
		}
	case StepWait:
		switch s.Wait.Kind {
		case WaitDuration:
			body = "wait " + s.Wait.Duration.String()
		case WaitUntil:
			body = "wait until " + s.Wait.Until
			if s.Wait.Timezone != "" {
				body += " " + s.Wait.Timezone
			}
		case WaitAt:
			body = "wait until " + s.Wait.At
		case WaitEvent:
			body = fmt.Sprintf("wait for %s\nup to %s", s.Wait.Event, s.Wait.Timeout)
		}
	case StepBranch:
		body = "branch"
	case StepSplit:
		body = "split"
	case StepTag:
		var parts []string
		for _, t := range s.Tag.Add {
			parts = append(parts, "+"+t)
		}
		for _, t := range s.Tag.Remove {
			parts = append(parts, "-"+t)
		}
		body = "tag " + strings.Join(parts, " ")
	case StepStaffTask:
		deadline := s.StaffTask.Deadline.String()
		if s.StaffTask.DeadlineAt != "" {
			deadline = s.StaffTask.DeadlineAt
		}
		body = fmt.Sprintf("staff task → %s\ndeadline %s", s.StaffTask.To, deadline)
		if len(s.StaffTask.Remind) > 0 {
			body += ", remind " + strings.Join(s.StaffTask.Remind, " ")
		}
	case StepExit:
		body = "exit"
		if s.Exit.Reason != "" {
			body += " " + s.Exit.Reason
		}
	}
	return head + "\n" + body
}

// Mermaid draws the plan as a mermaid flowchart.
func (p *Plan) Mermaid() string {
	nodes, edges := p.graph()
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	for _, n := range nodes {
		label := mermaidText(n.label)
		switch n.shape {
		case "diamond":
			fmt.Fprintf(&b, "  %s{\"%s\"}\n", n.id, label)
		case "round":
			fmt.Fprintf(&b, "  %s(\"%s\")\n", n.id, label)
		case "stadium":
			fmt.Fprintf(&b, "  %s([\"%s\"])\n", n.id, label)
		default:
			fmt.Fprintf(&b, "  %s[\"%s\"]\n", n.id, label)
		}
	}
	for _, e := range edges {
		if e.label != "" {
			fmt.Fprintf(&b, "  %s -->|\"%s\"| %s\n", e.from, mermaidText(e.label), e.to)
		} else {
			fmt.Fprintf(&b, "  %s --> %s\n", e.from, e.to)
		}
	}
	return b.String()
}

// mermaidText escapes a label for a quoted mermaid string.
func mermaidText(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "\n", "<br/>", "<", "#lt;", ">", "#gt;", "|", "#124;")
	return r.Replace(s)
}

// Dot draws the plan in Graphviz dot.
func (p *Plan) Dot() string {
	nodes, edges := p.graph()
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotString(p.ID))
	b.WriteString("  rankdir=TB;\n  node [shape=box, fontname=\"sans-serif\"];\n  edge [fontname=\"sans-serif\"];\n")
	for _, n := range nodes {
		shape := map[string]string{"diamond": "diamond", "round": "ellipse", "stadium": "oval", "box": "box"}[n.shape]
		fmt.Fprintf(&b, "  %s [label=%s, shape=%s];\n", n.id, dotString(n.label), shape)
	}
	for _, e := range edges {
		if e.label != "" {
			fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", e.from, e.to, dotString(e.label))
		} else {
			fmt.Fprintf(&b, "  %s -> %s;\n", e.from, e.to)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func dotString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
