package canvases

import (
	"slices"
	"strings"
)

// checkGraph reports steps nothing leads to and loops without a wait.
func (b *builder) checkGraph(sv *Value) {
	steps := b.plan.Steps
	index := map[string]int{}
	for i, s := range steps {
		index[s.ID] = i
	}
	edges := make([][]int, len(steps))
	for i, s := range steps {
		for _, t := range successors(s) {
			if j, ok := index[t]; ok {
				edges[i] = append(edges[i], j)
			}
		}
	}
	reached := make([]bool, len(steps))
	queue := []int{0}
	reached[0] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, j := range edges[i] {
			if !reached[j] {
				reached[j] = true
				queue = append(queue, j)
			}
		}
	}
	stepValue := map[string]*Value{}
	for _, it := range sv.Items {
		stepValue[it.Get("id").String()] = it
	}
	for i, s := range steps {
		if !reached[i] {
			idv := stepValue[s.ID].Get("id")
			b.errorf(idv, stepValue[s.ID].Path, "step %q is never reached: no step leads to it", s.ID)
		}
	}
	// A loop is only safe when a wait paces it.
	for _, comp := range stronglyConnected(len(steps), func(i int) []int {
		if steps[i].Kind == StepWait {
			return nil
		}
		var out []int
		for _, j := range edges[i] {
			if steps[j].Kind != StepWait {
				out = append(out, j)
			}
		}
		return out
	}) {
		selfLoop := len(comp) == 1 && slices.Contains(edges[comp[0]], comp[0])
		if len(comp) < 2 && !selfLoop {
			continue
		}
		slices.Sort(comp)
		ids := make([]string, len(comp))
		for k, i := range comp {
			ids[k] = steps[i].ID
		}
		first := stepValue[steps[comp[0]].ID]
		b.errorf(first.Get("id"), first.Path, "steps %s loop back without a wait; users would go round forever (add a wait to the loop)", strings.Join(append(ids, ids[0]), " → "))
	}
	// Staff tasks are kept per run and step (one task per staff member), so
	// a second visit would have nowhere to go.
	for _, comp := range stronglyConnected(len(steps), func(i int) []int { return edges[i] }) {
		if len(comp) < 2 && !slices.Contains(edges[comp[0]], comp[0]) {
			continue
		}
		slices.Sort(comp)
		for _, i := range comp {
			if steps[i].Kind == StepStaffTask {
				v := stepValue[steps[i].ID]
				b.errorf(v.Get("id"), v.Path, "staff_task %q is on a loop; a staff task runs once per run (use a scheduled canvas for a recurring SOP)", steps[i].ID)
			}
		}
	}
}

// stronglyConnected is Tarjan's algorithm over nodes 0..n-1.
func stronglyConnected(n int, next func(int) []int) [][]int {
	index, low := make([]int, n), make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var out [][]int
	counter := 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = counter, counter
		counter++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range next(v) {
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			out = append(out, comp)
		}
	}
	for v := 0; v < n; v++ {
		if index[v] < 0 {
			visit(v)
		}
	}
	return out
}
