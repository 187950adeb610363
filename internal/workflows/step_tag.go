package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// tag adds and removes the step's tags on the cohort's users.
func (r *runner) tag(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) ([]Token, error) {
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	if err := workflow.ExecuteActivity(pctx, a.Tag, in).Get(pctx, nil); err != nil {
		return nil, err
	}
	return r.next(ctx, step, t.Cohort, step.Next)
}
