package canvases

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStepEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		step  Step
		edges []Edge
		succ  []string
	}{
		{"push flows to next", Step{Kind: StepPush, Next: "b"}, []Edge{{To: "b"}}, []string{"b"}},
		{"the last step ends the canvas", Step{Kind: StepTag}, []Edge{{To: ""}}, nil},
		{"branch arms, else last", Step{Kind: StepBranch, Branch: []BranchArm{{When: "user.vip", Goto: "vip"}, {Goto: "rest"}}},
			[]Edge{{To: "vip", Label: "user.vip"}, {To: "rest", Label: "else"}}, []string{"vip", "rest"}},
		{"split arms by weight, named when the name is not the target", Step{Kind: StepSplit, Split: []SplitArm{{Weight: 50, Goto: "a", Name: "a"}, {Weight: 50, Goto: "", Name: "control"}}},
			[]Edge{{To: "a", Label: "50%"}, {To: "", Label: "50% control"}}, []string{"a"}},
		{"event wait: the event and the timeout", Step{Kind: StepWait, Next: "thanks", Wait: &Wait{Kind: WaitEvent, Event: "purchase", Timeout: Duration(72 * time.Hour), OnTimeout: "nudge"}},
			[]Edge{{To: "thanks", Label: "purchase"}, {To: "nudge", Label: "timeout 3d"}}, []string{"thanks", "nudge"}},
		{"a timed wait flows to next", Step{Kind: StepWait, Next: "b", Wait: &Wait{Kind: WaitDuration}}, []Edge{{To: "b"}}, []string{"b"}},
		{"exit has no way out", Step{Kind: StepExit}, nil, nil},
	} {
		require.Equal(t, tc.edges, tc.step.Edges(), tc.name)
		require.Equal(t, tc.succ, successors(&tc.step), tc.name)
	}
}
