package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// staffTaskStep runs a staff_task step. Since loop v1 the step's child
// workflow (staff.go) runs on its own and reports back with StaffDoneSignal:
// the token waits (Resume "staff") and goes on when the report came
// (Resume "staff-done"). Older runs await the child, or the outbox stub.
func (r *runner) staffTaskStep(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) ([]Token, error) {
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	if r.v1 {
		if t.Resume == resumeStaffDone {
			r.countStaff(*t.Staff)
			return r.next(ctx, step, t.Cohort, step.Next)
		}
		child, err := r.startStaffTask(ctx, step, t, in)
		if err != nil {
			return nil, err
		}
		return []Token{{Cohort: t.Cohort, Step: step.ID, Resume: resumeStaff, Child: child}}, nil
	}
	if workflow.GetVersion(ctx, staffLoopChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		// Runs recorded before the staff SOP loop keep its outbox stub.
		if err := workflow.ExecuteActivity(pctx, sa.StaffTask, in).Get(pctx, nil); err != nil {
			return nil, err
		}
	} else if err := r.staffTask(ctx, step, t, in); err != nil {
		return nil, err
	}
	return r.next(ctx, step, t.Cohort, step.Next)
}
