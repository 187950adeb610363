package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// exitStep ends the cohort's path with the step's reason.
func (r *runner) exitStep(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) ([]Token, error) {
	sctx := workflow.WithActivityOptions(ctx, shortActivity)
	reason := step.Exit.Reason
	if reason == "" {
		reason = "exit"
	}
	return nil, r.exit(sctx, in, reason)
}
