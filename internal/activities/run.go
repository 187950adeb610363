package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// RunStore records runs and the cohorts entering their steps (BeginRun,
// FinishRun, EnterStep; Enter sets how many entered).
type RunStore interface {
	BeginRun(ctx context.Context, workflowID, canvasID, planHash, trigger string) (store.Run, error)
	// BeginRunEntry is BeginRun with the run's entry cohort, for runs of
	// named users (BeginEnter, ADR 044).
	BeginRunEntry(ctx context.Context, e store.RunEntry) (store.Run, store.Cohort, error)
	// RecordedRun is the run a workflow (id "workflow/run") recorded, or
	// store.ErrNotFound.
	RecordedRun(ctx context.Context, workflowID string) (store.Run, error)
	// RecordedRunEntry is what BeginRunEntry recorded for a workflow
	// (store.ErrNotFound: nothing yet).
	RecordedRunEntry(ctx context.Context, workflowID string) (store.Run, store.Cohort, error)
	SetRunEntered(ctx context.Context, runID, entered int64) error
	FinishRun(ctx context.Context, runID int64, state, errMsg string) error
	RecordStepEntry(ctx context.Context, runID int64, stepID string, visit int, cohortID, count int64) error
}

// LoadPlan returns a plan version; workflows call it as a local activity and
// navigate the plan's steps themselves.
func (a *Activities) LoadPlan(ctx context.Context, hash string) (*canvases.Plan, error) {
	cp, err := a.compiled(ctx, hash)
	if err != nil {
		return nil, err
	}
	return cp.plan, nil
}

// BeginInput starts a run.
type BeginInput struct {
	CanvasID string `json:"canvas_id"`
	PlanHash string `json:"plan_hash"`
	Trigger  string `json:"trigger"`
	// Users is how many users the run names (0: it enters its audience),
	// for policy.approval.above.
	Users int64 `json:"users,omitempty"`
}

// BeginRun records the run of the calling workflow and returns its id.
func (a *Activities) BeginRun(ctx context.Context, in BeginInput) (int64, error) {
	wf := activity.GetInfo(ctx).WorkflowExecution
	// A retry after an attempt that committed returns that run: the gate is
	// asked only before the run begins, or a canvas stopped in between would
	// leave a begun run that never ends (as BeginEnter).
	if run, err := a.Store.RecordedRun(ctx, wf.ID+"/"+wf.RunID); err == nil {
		return run.ID, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	if err := a.gate(ctx, in); err != nil {
		return 0, err
	}
	run, err := a.Store.BeginRun(ctx, wf.ID+"/"+wf.RunID, in.CanvasID, in.PlanHash, in.Trigger)
	return run.ID, err
}

// gate asks the Gate, if any, whether the run may begin.
func (a *Activities) gate(ctx context.Context, in BeginInput) error {
	if a.Gate == nil {
		return nil
	}
	why, err := a.Gate.RunRefusal(ctx, in.CanvasID, in.PlanHash, in.Users)
	if err != nil {
		return err
	}
	if why != "" {
		// Retrying will not help: the run does not start.
		return temporal.NewNonRetryableApplicationError(why, "RunRefused", nil)
	}
	return nil
}

// FinishInput ends a run.
type FinishInput struct {
	RunID int64  `json:"run_id"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// FinishRun records how a run ended.
func (a *Activities) FinishRun(ctx context.Context, in FinishInput) error {
	return a.Store.FinishRun(ctx, in.RunID, in.State, in.Error)
}

// EnterStep records that a cohort entered a step, for reports.
func (a *Activities) EnterStep(ctx context.Context, in StepInput) error {
	return a.Store.RecordStepEntry(ctx, in.RunID, in.StepID, in.Visit, in.Cohort.ID, in.Cohort.Size)
}
