package activities

import (
	"context"
	"errors"
	"math"

	"go.temporal.io/sdk/activity"

	"github.com/huabu/huabu/internal/store"
)

// BeginEnterInput begins a run of named users (an entry window, a manual
// run with --profiles) and enters them.
type BeginEnterInput struct {
	BeginInput
	UserIDs []string `json:"user_ids"`
	// ApplyAudience filters the users by the audience and re-entry rules
	// (event triggers), as EnterInput's.
	ApplyAudience bool `json:"apply_audience,omitempty"`
}

// BeginEnterResult is the run BeginEnter recorded and its entry cohort,
// whose entry into the plan's first step is recorded too (the workflow does
// not call EnterStep for it).
type BeginEnterResult struct {
	RunID  int64     `json:"run_id"`
	Cohort CohortRef `json:"cohort"`
}

// BeginEnter is BeginRun and Enter of a run of named users in one activity
// and one store transaction (ADR 044): it asks the gate, decides who enters
// (their uids, the audience, the re-entry rules: reads only), then records
// the run, its sealed entry cohort, the users' entries, the run's entered
// count and the cohort's entry into the first step at once. Retried, it
// returns the cohort an earlier attempt sealed.
func (a *Activities) BeginEnter(ctx context.Context, in BeginEnterInput) (BeginEnterResult, error) {
	wf := activity.GetInfo(ctx).WorkflowExecution
	// A retry after an attempt that committed returns what it recorded: the
	// gate is asked only before the run begins, or a canvas stopped in
	// between would leave a begun run with its users entered and no end.
	if run, cohort, err := a.Store.RecordedRunEntry(ctx, wf.ID+"/"+wf.RunID); err == nil {
		return BeginEnterResult{RunID: run.ID, Cohort: refOf(cohort)}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return BeginEnterResult{}, err
	}
	if err := a.gate(ctx, in.BeginInput); err != nil {
		return BeginEnterResult{}, err
	}
	cp, err := a.compiled(ctx, in.PlanHash)
	if err != nil {
		return BeginEnterResult{}, err
	}
	entry := store.RunEntry{
		WorkflowID: wf.ID + "/" + wf.RunID, CanvasID: in.CanvasID, PlanHash: in.PlanHash, Trigger: in.Trigger,
		StepID: cp.plan.Start(), RecordEntries: cp.needsEntries, RecordStep: true,
	}
	// The first decision leaves out no run of the workflow's own; when the
	// workflow's run is recorded without a sealed entry (BeginRun called for
	// it by hand: no workflow on this path does, since BeginRunEntry writes
	// both at once), the store says so and the entry is decided again
	// leaving that run out.
	for range 3 {
		e := &entrant{a: a, cp: cp, in: EnterInput{RunID: entry.DecidedFor, CanvasID: in.CanvasID, PlanHash: in.PlanHash, UserIDs: in.UserIDs, ApplyAudience: in.ApplyAudience}, now: a.now(), upToUID: math.MaxInt64}
		if entry.Members, err = e.decideNamed(ctx); err != nil {
			return BeginEnterResult{}, err
		}
		entry.Pages = max(pagesPerChunk, int64(len(entry.Members)+store.PageSize-1)/store.PageSize)
		run, cohort, err := a.Store.BeginRunEntry(ctx, entry)
		var redo *store.RedecideEntryError
		if errors.As(err, &redo) {
			entry.DecidedFor = redo.RunID
			continue
		}
		if err != nil {
			return BeginEnterResult{}, err
		}
		return BeginEnterResult{RunID: run.ID, Cohort: refOf(cohort)}, nil
	}
	return BeginEnterResult{}, errors.New("the run's entry was decided for another run three times")
}
