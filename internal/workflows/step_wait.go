package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// wait turns a wait step into sleeping tokens: one timer per cohort, or per
// wake time when users are in different time zones.
func (r *runner) wait(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) ([]Token, error) {
	w := step.Wait
	now := workflow.Now(ctx)
	switch w.Kind {
	case canvases.WaitDuration:
		wake := now.Add(w.Duration.Std())
		if r.v1 {
			wake = wakeAfter(now, w.Duration.Std()) // cohorts of nearly the same time wake as one
		}
		return []Token{{Cohort: t.Cohort, Step: step.Next, WakeAt: wake, From: step.ID}}, nil
	case canvases.WaitAt:
		at, err := time.Parse(time.RFC3339, w.At)
		if err != nil {
			return nil, err
		}
		return []Token{{Cohort: t.Cohort, Step: step.Next, WakeAt: at, From: step.ID}}, nil
	case canvases.WaitUntil:
		pctx := workflow.WithActivityOptions(ctx, pageActivity)
		var buckets []activities.CohortRef
		if err := workflow.ExecuteActivity(pctx, a.Partition, in).Get(pctx, &buckets); err != nil {
			return nil, err
		}
		var out []Token
		for _, b := range buckets {
			if b.Size > 0 {
				out = append(out, Token{Cohort: b, Step: step.Next, WakeAt: b.WakeAt, From: step.ID})
			}
		}
		return out, nil
	case canvases.WaitEvent:
		sctx := workflow.WithActivityOptions(ctx, shortActivity)
		switch t.Resume {
		case "":
			deadline := now.Add(w.Timeout.Std())
			if err := workflow.ExecuteActivity(sctx, a.AwaitEvent, activities.AwaitInput{StepInput: in, Event: w.Event, Deadline: deadline}).Get(sctx, nil); err != nil {
				return nil, err
			}
			return []Token{{Cohort: t.Cohort, Step: step.ID, Deadline: deadline, Resume: resumeWaiting}}, nil
		case resumeCollect, resumeTimeout:
			final := t.Resume == resumeTimeout
			pctx := workflow.WithActivityOptions(ctx, pageActivity)
			var got activities.Collected
			if err := workflow.ExecuteActivity(pctx, a.CollectArrivals, activities.CollectInput{StepInput: in, Seq: t.Seq, Final: final}).Get(pctx, &got); err != nil {
				return nil, err
			}
			var out []Token
			if got.Arrived.Size > 0 {
				next, err := r.next(ctx, step, got.Arrived, step.Next)
				if err != nil {
					return nil, err
				}
				out = append(out, next...)
			}
			if final && got.TimedOut.Size > 0 {
				target := w.OnTimeout
				if target == "" {
					target = step.Next
				}
				next, err := r.next(ctx, step, got.TimedOut, target)
				if err != nil {
					return nil, err
				}
				out = append(out, next...)
			}
			return out, nil
		}
		return nil, fmt.Errorf("step %s: unexpected phase %q", step.ID, t.Resume)
	}
	return nil, fmt.Errorf("step %s: unknown wait %q", step.ID, w.Kind)
}
