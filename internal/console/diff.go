package console

import "strings"

// diffLine is one line of a line diff: Op is ' ' (in both), '-' (only in
// the old text) or '+' (only in the new); A and B are its line numbers in
// the old and new text (0 where it is not there).
type diffLine struct {
	Op   string
	Text string
	A, B int
}

// maxDiffCells bounds the longest-common-subsequence table (lines × lines
// after the common head and tail are taken off): canvases are a few hundred
// lines; beyond it the middle is shown as removed, then added.
const maxDiffCells = 4_000_000

// lineDiff is a line diff of two texts by longest common subsequence.
func lineDiff(oldText, newText string) []diffLine {
	a, b := splitLines(oldText), splitLines(newText)
	var out []diffLine
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		out = append(out, diffLine{Op: " ", Text: a[head], A: head + 1, B: head + 1})
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	ma, mb := a[head:len(a)-tail], b[head:len(b)-tail]
	if len(ma)*len(mb) > maxDiffCells {
		for i, l := range ma {
			out = append(out, diffLine{Op: "-", Text: l, A: head + i + 1})
		}
		for j, l := range mb {
			out = append(out, diffLine{Op: "+", Text: l, B: head + j + 1})
		}
	} else {
		// lcs[i][j]: the longest common subsequence of ma[i:] and mb[j:].
		lcs := make([][]int32, len(ma)+1)
		for i := range lcs {
			lcs[i] = make([]int32, len(mb)+1)
		}
		for i := len(ma) - 1; i >= 0; i-- {
			for j := len(mb) - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < len(ma) || j < len(mb) {
			switch {
			case i < len(ma) && j < len(mb) && ma[i] == mb[j]:
				out = append(out, diffLine{Op: " ", Text: ma[i], A: head + i + 1, B: head + j + 1})
				i, j = i+1, j+1
			case i < len(ma) && (j == len(mb) || lcs[i+1][j] >= lcs[i][j+1]):
				out = append(out, diffLine{Op: "-", Text: ma[i], A: head + i + 1})
				i++
			default:
				out = append(out, diffLine{Op: "+", Text: mb[j], B: head + j + 1})
				j++
			}
		}
	}
	for k := 0; k < tail; k++ {
		i, j := len(a)-tail+k, len(b)-tail+k
		out = append(out, diffLine{Op: " ", Text: a[i], A: i + 1, B: j + 1})
	}
	return out
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
