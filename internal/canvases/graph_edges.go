package canvases

import "strconv"

// Graph is the plan as nodes and edges: the same list `huabu graph` draws
// as mermaid or dot, for renderers outside this package (the console).
type Graph struct {
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// GraphNode is the trigger, a step or the end.
type GraphNode struct {
	ID     string `json:"id"`             // trigger, s0, s1, ..., end
	StepID string `json:"step,omitempty"` // the step's id; "" for the trigger and the end
	Kind   string `json:"kind,omitempty"` // the step's kind
	Label  string `json:"label"`          // lines separated by \n
	Shape  string `json:"shape"`          // box, diamond, round, stadium
}

// GraphEdge goes from one node to another, labelled for branches, splits
// and event waits.
type GraphEdge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Label string `json:"label,omitempty"`
}

// Graph returns the plan's nodes and edges in drawing order.
func (p *Plan) Graph() Graph {
	nodes, edges := p.graph()
	steps := map[string]*Step{}
	for i, s := range p.Steps {
		steps[graphStepNodeID(i)] = s
	}
	g := Graph{Nodes: make([]GraphNode, 0, len(nodes)), Edges: make([]GraphEdge, 0, len(edges))}
	for _, n := range nodes {
		gn := GraphNode{ID: n.id, Label: n.label, Shape: n.shape}
		if s := steps[n.id]; s != nil {
			gn.StepID, gn.Kind = s.ID, s.Kind
		}
		g.Nodes = append(g.Nodes, gn)
	}
	for _, e := range edges {
		g.Edges = append(g.Edges, GraphEdge{From: e.from, To: e.to, Label: e.label})
	}
	return g
}

// graphStepNodeID names the node of the i-th step.
func graphStepNodeID(i int) string { return "s" + strconv.Itoa(i) }
