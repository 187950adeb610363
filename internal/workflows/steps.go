package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// execute runs one token's step and returns the tokens that follow.
func (r *runner) execute(ctx workflow.Context, t Token) ([]Token, error) {
	if t.Resume == resumeEnterRest {
		return r.enterRest(ctx, t) // not a visit of the step: no count
	}
	next, err := r.step(ctx, t)
	if err != nil {
		return nil, err
	}
	return r.countVisit(t, next), nil
}

// countVisit marks the tokens leaving a step on a loop as having visited
// it once more. Tokens that come back to the same step to go on with the
// same visit (a wait for an event, users quiet hours held back) keep the
// count they had.
func (r *runner) countVisit(t Token, next []Token) []Token {
	visits := t.Visits
	if r.loops[t.Step] {
		visits = make(map[string]int, len(t.Visits)+1)
		for _, id := range sortedStepIDs(t.Visits) {
			visits[id] = t.Visits[id]
		}
		visits[t.Step]++
	}
	for i := range next {
		if next[i].Step == t.Step && next[i].Resume != "" {
			next[i].Visits = t.Visits
		} else {
			next[i].Visits = visits
		}
	}
	return next
}

func sortedStepIDs(m map[string]int) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// stepHandler runs one step kind for a token that has entered the step (in
// names the step execution) and returns the tokens that follow. Each kind's
// handler lives in its own file, step_<kind>.go.
type stepHandler func(r *runner, ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) ([]Token, error)

// stepHandlers is the interpreter's one table of step kinds (looked up,
// never ranged over: the workflow stays deterministic).
var stepHandlers = map[string]stepHandler{
	canvases.StepPush:      (*runner).push,
	canvases.StepTag:       (*runner).tag,
	canvases.StepStaffTask: (*runner).staffTaskStep,
	canvases.StepBranch:    (*runner).partition,
	canvases.StepSplit:     (*runner).partition,
	canvases.StepWait:      (*runner).wait,
	canvases.StepExit:      (*runner).exitStep,
}

// step unites the cohorts that woke together, records the entry of a token
// new to the step, and hands it to its kind's handler.
func (r *runner) step(ctx workflow.Context, t Token) ([]Token, error) {
	step := r.plan.Step(t.Step)
	if step == nil {
		return nil, fmt.Errorf("plan %s has no step %q", r.plan.ShortHash(), t.Step)
	}
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	if len(t.Merge) > 0 { // cohorts that woke here together go on as one
		union := activities.UnionInput{RunID: r.runID, StepID: step.ID, Visit: t.Visits[t.Step], Cohorts: append([]activities.CohortRef{t.Cohort}, t.Merge...)}
		if err := workflow.ExecuteActivity(pctx, a.Union, union).Get(pctx, &t.Cohort); err != nil {
			return nil, err
		}
		t.Merge = nil
	}
	in := activities.StepInput{RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, StepID: step.ID, Cohort: t.Cohort, Now: workflow.Now(ctx), Visit: t.Visits[t.Step]}
	if t.Resume == "" && !t.StepRecorded {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
		if err := workflow.ExecuteLocalActivity(lctx, a.EnterStep, in).Get(lctx, nil); err != nil {
			return nil, err
		}
	}
	handle, ok := stepHandlers[step.Kind]
	if !ok {
		return nil, fmt.Errorf("step %s: unknown kind %q", step.ID, step.Kind)
	}
	return handle(r, ctx, step, t, in)
}

// next moves a cohort on, or ends its path when there is no next step.
func (r *runner) next(ctx workflow.Context, step *canvases.Step, c activities.CohortRef, next string) ([]Token, error) {
	if next != "" {
		return []Token{{Cohort: c, Step: next}}, nil
	}
	sctx := workflow.WithActivityOptions(ctx, shortActivity)
	in := activities.StepInput{RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, StepID: step.ID, Cohort: c}
	return nil, r.exit(sctx, in, "completed")
}

func (r *runner) exit(ctx workflow.Context, in activities.StepInput, reason string) error {
	var n int64
	if err := r.short(ctx, a.Exit, activities.ExitInput{StepInput: in, Reason: reason}).Get(ctx, &n); err != nil {
		return err
	}
	r.stats.Exited += n
	return nil
}
