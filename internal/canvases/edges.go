package canvases

import "fmt"

// Edge is one way out of a step.
type Edge struct {
	To    string // the next step's id; "" ends the canvas
	Label string // a branch arm's condition ("else"), a split arm's weight, an event wait's event or timeout; "" for next
}

// Edges lists the ways out of a step in drawing order: a branch's or a
// split's arms, an event wait's event and its timeout, else next; an exit
// has none. Every graph over a plan reads them here: the compiler's
// reachability and loop checks, LoopSteps, and the drawings (Graph, Mermaid,
// Dot, the console's flow).
func (s *Step) Edges() []Edge {
	switch s.Kind {
	case StepBranch:
		out := make([]Edge, len(s.Branch))
		for i, a := range s.Branch {
			out[i] = Edge{To: a.Goto, Label: "else"}
			if a.When != "" {
				out[i].Label = a.When
			}
		}
		return out
	case StepSplit:
		out := make([]Edge, len(s.Split))
		for i, a := range s.Split {
			out[i] = Edge{To: a.Goto, Label: fmt.Sprintf("%d%%", a.Weight)}
			if a.Name != a.Goto {
				out[i].Label += " " + a.Name
			}
		}
		return out
	case StepExit:
		return nil
	case StepWait:
		if s.Wait != nil && s.Wait.Kind == WaitEvent {
			return []Edge{{To: s.Next, Label: s.Wait.Event}, {To: s.Wait.OnTimeout, Label: "timeout " + s.Wait.Timeout.String()}}
		}
	}
	return []Edge{{To: s.Next}}
}

// successors are the steps users may go to next: the edges that lead to a
// step rather than end the canvas.
func successors(s *Step) []string {
	var out []string
	for _, e := range s.Edges() {
		if e.To != "" {
			out = append(out, e.To)
		}
	}
	return out
}
