package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
)

// TestEventRunInput: an entry window's run names its users and applies the
// canvas's audience and re-entry rules to them (the router only grouped
// them), as trigger "event".
func TestEventRunInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		users []string
	}{
		{"one user", []string{"u1"}},
		{"a window", []string{"u3", "u1", "u4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, RunInput{CanvasID: "welcome", PlanHash: "0123456789abcdef", Trigger: canvases.TriggerEvent, UserIDs: tc.users, ApplyAudience: true},
				EventRunInput("welcome", "0123456789abcdef", tc.users))
		})
	}
}
