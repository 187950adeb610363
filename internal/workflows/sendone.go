package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
)

// SendOneName is the per-user workflow `huabu bench` compares cohorts with:
// the design of one workflow per user per journey, reduced to one push.
const SendOneName = "SendOne"

// SendOne sends one push step to one user, through the same ledger and
// channel as a cohort would.
func SendOne(ctx workflow.Context, in activities.SendOneInput) (activities.SendResult, error) {
	ctx = workflow.WithActivityOptions(ctx, shortActivity)
	var res activities.SendResult
	err := workflow.ExecuteActivity(ctx, a.SendOne, in).Get(ctx, &res)
	return res, err
}

// SendOneOptions registers SendOne under its name.
func SendOneOptions() workflow.RegisterOptions { return workflow.RegisterOptions{Name: SendOneName} }
