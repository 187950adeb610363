package console

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/huabu/huabu/internal/canvases"
)

// The flow is drawn on the server: the nodes and edges of
// canvases.Plan.Graph (what `huabu graph` draws) laid out in layers, top
// to bottom, as SVG. Layers are longest paths from the trigger over the
// edges that go forward; an edge back (a goto loop) is drawn on the right.

const (
	nodeW   = 240
	nodeH   = 132
	gapX    = 36
	gapY    = 64
	marginX = 24
	marginY = 16
	loopW   = 90 // room on the right for edges going back
)

// nodeCounts is what a step's node shows and carries in data-* attributes.
type nodeCounts struct {
	Entered, Sent, Failed, Suppressed, Unknown, Waiting, Converted int64
}

type drawnNode struct {
	canvases.GraphNode
	X, Y, W, H int
	Lines      []string
	Counts     *nodeCounts // nil for the trigger and the end
}

type drawnEdge struct {
	Path           string
	Label          string
	LabelX, LabelY int
	Back           bool
}

type drawing struct {
	W, H  int
	Nodes []drawnNode
	Edges []drawnEdge
}

// layout places the graph's nodes and routes its edges.
func layout(g canvases.Graph, counts map[string]*nodeCounts) drawing {
	index := map[string]int{}
	for i, n := range g.Nodes {
		index[n.ID] = i
	}
	out := make([][]int, len(g.Nodes))
	for _, e := range g.Edges {
		f, okf := index[e.From]
		t, okt := index[e.To]
		if okf && okt {
			out[f] = append(out[f], t)
		}
	}
	// Back edges: to a node on the depth-first path from the trigger.
	back := map[[2]int]bool{}
	state := make([]int, len(g.Nodes)) // 0 new, 1 on the path, 2 done
	var dfs func(int)
	dfs = func(v int) {
		state[v] = 1
		for _, w := range out[v] {
			switch state[w] {
			case 0:
				dfs(w)
			case 1:
				back[[2]int{v, w}] = true
			}
		}
		state[v] = 2
	}
	for v := range g.Nodes {
		if state[v] == 0 {
			dfs(v)
		}
	}
	// Longest-path layers over forward edges (Kahn, in node order).
	indeg := make([]int, len(g.Nodes))
	for v := range out {
		for _, w := range out[v] {
			if !back[[2]int{v, w}] {
				indeg[w]++
			}
		}
	}
	rank := make([]int, len(g.Nodes))
	queue := []int{}
	for v := range g.Nodes {
		if indeg[v] == 0 {
			queue = append(queue, v)
		}
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range out[v] {
			if back[[2]int{v, w}] {
				continue
			}
			rank[w] = max(rank[w], rank[v]+1)
			if indeg[w]--; indeg[w] == 0 {
				queue = append(queue, w)
			}
		}
	}
	// Rows, each ordered by where its parents stand (one barycentre pass).
	var rows [][]int
	for v := range g.Nodes {
		for len(rows) <= rank[v] {
			rows = append(rows, nil)
		}
		rows[rank[v]] = append(rows[rank[v]], v)
	}
	col := make([]float64, len(g.Nodes))
	parents := make([][]int, len(g.Nodes))
	for v := range out {
		for _, w := range out[v] {
			if !back[[2]int{v, w}] {
				parents[w] = append(parents[w], v)
			}
		}
	}
	widest := 0
	for _, row := range rows {
		key := map[int]float64{}
		for _, v := range row {
			if len(parents[v]) == 0 {
				key[v] = float64(v)
				continue
			}
			s := 0.0
			for _, p := range parents[v] {
				s += col[p]
			}
			key[v] = s / float64(len(parents[v]))
		}
		sort.SliceStable(row, func(i, j int) bool { return key[row[i]] < key[row[j]] })
		for i, v := range row {
			col[v] = float64(i) - float64(len(row)-1)/2
		}
		widest = max(widest, len(row))
	}
	d := drawing{W: 2*marginX + widest*nodeW + max(widest-1, 0)*gapX + loopW, H: 2*marginY + len(rows)*nodeH + max(len(rows)-1, 0)*gapY}
	center := marginX + (widest*nodeW+max(widest-1, 0)*gapX)/2
	pos := make([][2]int, len(g.Nodes))
	for v, n := range g.Nodes {
		x := center + int(col[v]*float64(nodeW+gapX)) - nodeW/2
		y := marginY + rank[v]*(nodeH+gapY)
		pos[v] = [2]int{x, y}
		dn := drawnNode{GraphNode: n, X: x, Y: y, W: nodeW, H: nodeH, Lines: labelLines(n.Label, 3, 30)}
		if n.StepID != "" {
			dn.Counts = counts[n.StepID]
			if dn.Counts == nil {
				dn.Counts = &nodeCounts{}
			}
		}
		d.Nodes = append(d.Nodes, dn)
	}
	for _, e := range g.Edges {
		f, okf := index[e.From]
		t, okt := index[e.To]
		if !okf || !okt {
			continue
		}
		a, b := pos[f], pos[t]
		de := drawnEdge{Label: truncate(e.Label, 26)}
		if back[[2]int{f, t}] || rank[t] <= rank[f] {
			x1, y1 := a[0]+nodeW, a[1]+nodeH/2
			x2, y2 := b[0]+nodeW, b[1]+nodeH/2
			bulge := max(x1, x2) + loopW - 10
			de.Path = fmt.Sprintf("M %d %d C %d %d, %d %d, %d %d", x1, y1, bulge, y1, bulge, y2, x2+6, y2)
			de.LabelX, de.LabelY, de.Back = bulge-4, (y1+y2)/2, true
		} else {
			x1, y1 := a[0]+nodeW/2, a[1]+nodeH
			x2, y2 := b[0]+nodeW/2, b[1]
			dy := (y2 - y1) / 2
			de.Path = fmt.Sprintf("M %d %d C %d %d, %d %d, %d %d", x1, y1, x1, y1+dy, x2, y2-dy, x2, y2-6)
			de.LabelX, de.LabelY = (x1+x2)/2+4, (y1+y2)/2
		}
		d.Edges = append(d.Edges, de)
	}
	return d
}

// labelLines cuts a label into at most n lines of at most w characters.
func labelLines(label string, n, w int) []string {
	lines := strings.Split(label, "\n")
	if len(lines) > n {
		lines = append(lines[:n-1], lines[n-1]+" …")
	}
	for i := range lines {
		lines[i] = truncate(lines[i], w)
	}
	return lines
}

func truncate(s string, w int) string {
	if utf8.RuneCountInString(s) <= w {
		return s
	}
	r := []rune(s)
	return string(r[:w-1]) + "…"
}
