package canvases

import (
	"strconv"
	"strings"
)

// quoteList formats names as "a", "b" or "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return joinOr(q)
}

func joinOr(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// Suggest returns the candidate closest to s when it is close enough to be
// a likely typo, else "" (for other YAML readers' "did you mean").
func Suggest(s string, candidates []string) string { return suggest(s, candidates) }

// suggest returns the candidate closest to s when it is close enough to be a
// likely typo, else "". Short names need an exact-but-for-case match, so
// "x" does not suggest "f".
func suggest(s string, candidates []string) string {
	best, bestDist := "", len([]rune(s))/3+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// didYouMean appends a suggestion to msg when one is close.
func didYouMean(msg, s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return msg + " (did you mean " + strconv.Quote(c) + "?)"
	}
	return msg
}

// editDistance is the optimal-string-alignment distance over runes:
// Levenshtein plus adjacent transpositions, the commonest typo ("nmae").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
