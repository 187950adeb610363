package workflows

import (
	"errors"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
)

// defaultStopReason is the exit reason of a run cancelled without a stop
// signal (`temporal workflow cancel`, say).
const defaultStopReason = "cancelled"

// stopOf reads the stop signals sent before the cancellation (the last
// one wins).
func stopOf(ctx workflow.Context) Stop {
	stop := Stop{Reason: defaultStopReason}
	ch := workflow.GetSignalChannel(ctx, StopSignal)
	var s Stop
	for ch.ReceiveAsync(&s) {
		if s.Reason != "" {
			stop = s
		}
		s = Stop{}
	}
	return stop
}

// exitEveryone records that the users of a cancelled run's tokens exit
// with reason, at the step each is at (a sleeping cohort: the wait step it
// sleeps in). A collection of arrivals the cancellation interrupted is
// finished first, and a cohort waiting for an event has its arrivals
// collected a last time, so users who arrived and users who did not exit
// exactly once. Errors are joined: one cohort failing does not keep the
// others from exiting.
func (r *runner) exitEveryone(ctx workflow.Context, tokens []Token, reason string) error {
	// Collections first (interrupted ones come first in tokens): a final
	// collection of the same wait must not take their arrivals.
	tokens = slices.Clone(tokens)
	slices.SortStableFunc(tokens, func(a, b Token) int { return rank(a) - rank(b) })
	collected := map[int64]bool{} // waiting cohorts whose final collection ran
	var errs []error
	for _, t := range tokens {
		step := r.plan.Step(t.Step)
		if step == nil && t.From == "" {
			// A sleeping token's Step is where it wakes to: "" after a wait
			// that ends the path, whose users are still in it (From).
			continue
		}
		var cohorts []activities.CohortRef
		switch t.Resume {
		case resumeCollect, resumeTimeout, resumeWaiting:
			if step == nil {
				continue
			}
			final := t.Resume != resumeCollect
			seq := t.Seq
			if t.Resume == resumeWaiting {
				seq++ // a collection of its own
			}
			if final && collected[t.Cohort.ID] {
				continue
			}
			collected[t.Cohort.ID] = collected[t.Cohort.ID] || final
			in := activities.StepInput{RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, StepID: step.ID, Cohort: t.Cohort, Now: workflow.Now(ctx), Visit: t.Visits[t.Step]}
			pctx := workflow.WithActivityOptions(ctx, pageActivity)
			var got activities.Collected
			if err := workflow.ExecuteActivity(pctx, a.CollectArrivals, activities.CollectInput{StepInput: in, Seq: seq, Final: final}).Get(pctx, &got); err != nil {
				errs = append(errs, err)
				continue
			}
			cohorts = append(cohorts, got.Arrived, got.TimedOut)
		default:
			cohorts = append([]activities.CohortRef{t.Cohort}, t.Merge...)
		}
		froms := mergeFroms(t)
		for i, c := range cohorts {
			if c.ID == 0 || c.Size == 0 {
				continue
			}
			at := t.Step
			if len(cohorts) == 1+len(froms) && i > 0 && froms[i-1] != "" {
				at = froms[i-1]
			} else if i == 0 && t.From != "" {
				at = t.From
			}
			in := activities.StepInput{RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, StepID: at, Cohort: c}
			if err := r.exit(workflow.WithActivityOptions(ctx, shortActivity), in, reason); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// rank orders a stopped run's tokens: collections under way, then queued
// ones, then the rest.
func rank(t Token) int {
	switch t.Resume {
	case resumeCollect:
		return 0
	case resumeTimeout:
		return 1
	case resumeWaiting:
		return 2
	}
	return 3
}
