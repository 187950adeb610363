package canvases

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExpressionPositions checks that an error inside an expression points
// at the bad token whatever YAML scalar style holds the expression. In each
// case the misspelt field "nmae" is marked in the source by its position.
func TestExpressionPositions(t *testing.T) {
	cases := []struct {
		name      string
		audience  string // the audience line(s), as written in the file
		line, col int    // where "nmae" starts
	}{
		{"plain", `audience: user.city == "x" && user.nmae == "y"`, 4, 36},
		{"single quoted", `audience: 'user.city == ''x'' && user.nmae == "y"'`, 4, 39},
		{"double quoted", `audience: "user.city == \"x\" && user.nmae == \"y\""`, 4, 39},
		{"double quoted unicode escape", `audience: "user.city == \"\u4e0a\u6d77\" && user.nmae == \"y\""`, 4, 50},
		{"chinese", `audience: 'user.city == "上海" && user.nmae == "y"'`, 4, 38},
		{"literal block", "audience: |\n  user.city == \"x\" &&\n  user.nmae == \"y\"", 6, 8},
		{"folded block", "audience: >-\n  user.city == \"x\"\n  && user.nmae == \"y\"", 6, 11},
		{"folded with blank line", "audience: >\n  user.city == \"x\"\n\n  || user.nmae == \"y\"", 7, 11},
		{"plain multi-line", "audience: user.city == \"x\"\n  && user.nmae == \"y\"", 5, 11},
		{"single quoted multi-line", "audience: 'user.city == \"x\"\n    && user.nmae == \"y\"'", 5, 13},
		{"literal keep", "audience: |+\n    user.nmae == \"y\"\n\n", 5, 10},
	}
	c := testCompiler(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "id: positions\ntrigger: {manual: {}}\nsteps: [{id: done, exit: {}}]\n" + tc.audience + "\n"
			_, problems := c.Compile("c.yaml", []byte(src))
			require.Len(t, problems, 1, problems.Error())
			p := problems[0]
			require.Contains(t, p.Message, `no field "nmae"`)
			require.Equal(t, fmt.Sprintf("%d:%d", tc.line, tc.col), fmt.Sprintf("%d:%d", p.Line, p.Column), "problem: %s\nline: %q", p, lineOf(src, p.Line))
		})
	}
}

func lineOf(src string, n int) string {
	lines := strings.Split(src, "\n")
	if n-1 < len(lines) && n > 0 {
		return lines[n-1]
	}
	return ""
}
