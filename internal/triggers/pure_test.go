package triggers

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
)

// reads decides whether routing an event must load the user's profile.
func TestReadsTheUser(t *testing.T) {
	for _, tc := range []struct {
		source string
		want   bool
	}{
		{`event.amount > 100`, false},
		{`user.level == "gold"`, true},
		{`event.sku == "x" && user.vip`, true},
		{`event.username == "a"`, false}, // a word that only contains "user"
		{`"user" in event.tags`, true},   // conservative: a string mentioning user still loads it
	} {
		require.Equal(t, tc.want, reads(&canvases.Condition{Source: tc.source}), tc.source)
	}
	require.False(t, reads(nil), "no condition reads nothing")
}

// Event-started runs are named by canvas and the window's first event, so
// a window routed twice (a restart) starts the same workflow, not two.
func TestWorkflowID(t *testing.T) {
	for _, tc := range []struct {
		canvas string
		first  int64
		want   string
	}{
		{"winback", 1, "huabu-winback-event-1"},
		{"cart-abandon", 9000000001, "huabu-cart-abandon-event-9000000001"},
	} {
		require.Equal(t, tc.want, workflowID(tc.canvas, tc.first))
	}
	require.NotEqual(t, workflowID("a-1", 2), workflowID("a", 12))
}
