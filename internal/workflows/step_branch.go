package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// partition runs a branch or split step: the cohort is divided into one
// child cohort per arm, and each non-empty one goes to its arm's step.
func (r *runner) partition(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) ([]Token, error) {
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	var children []activities.CohortRef
	if err := workflow.ExecuteActivity(pctx, a.Partition, in).Get(pctx, &children); err != nil {
		return nil, err
	}
	var out []Token
	for i, c := range children {
		if c.Size == 0 {
			continue
		}
		target := ""
		if step.Kind == canvases.StepBranch {
			target = step.Branch[i].Goto
		} else {
			target = step.Split[i].Goto
		}
		out = append(out, Token{Cohort: c, Step: target})
	}
	return out, nil
}
