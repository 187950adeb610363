package console

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLineDiff(t *testing.T) {
	render := func(d []diffLine) string {
		var b strings.Builder
		for _, l := range d {
			b.WriteString(l.Op + l.Text + "\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"same", "a\nb\n", "a\nb\n", " a\n b\n"},
		{"empty to text", "", "a\n", "+a\n"},
		{"text to empty", "a\n", "", "-a\n"},
		{"changed line", "id: x\nwait: 3d\nexit: {}\n", "id: x\nwait: 5d\nexit: {}\n", " id: x\n-wait: 3d\n+wait: 5d\n exit: {}\n"},
		{"inserted and removed", "a\nb\nc\nd\n", "a\nc\nd\ne\n", " a\n-b\n c\n d\n+e\n"},
		{"crlf is a newline", "a\r\nb\r\n", "a\nb\n", " a\n b\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := lineDiff(tc.a, tc.b)
			require.Equal(t, tc.want, render(d))
			// Line numbers count each side's lines.
			var a, b int
			for _, l := range d {
				if l.Op != "+" {
					a++
					require.Equal(t, a, l.A)
				}
				if l.Op != "-" {
					b++
					require.Equal(t, b, l.B)
				}
			}
		})
	}
	big := strings.Repeat("x\n", 2500)
	d := lineDiff("a\n"+big, "b\n"+strings.Repeat("y\n", 2500))
	require.Len(t, d, 5002, "past the table's bound: removed, then added")
}
