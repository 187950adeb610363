package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/activities"
	"github.com/huabu/huabu/canvases"
)

// execute runs one token's step and returns the tokens that follow.
func (r *runner) execute(ctx workflow.Context, t Token) ([]Token, error) {
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

func (r *runner) step(ctx workflow.Context, t Token) ([]Token, error) {
	step := r.plan.Step(t.Step)
	if step == nil {
		return nil, fmt.Errorf("plan %s has no step %q", r.plan.ShortHash(), t.Step)
	}
	sctx := workflow.WithActivityOptions(ctx, shortActivity)
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	if len(t.Merge) > 0 { // cohorts that woke here together go on as one
		union := activities.UnionInput{RunID: r.runID, StepID: step.ID, Visit: t.Visits[t.Step], Cohorts: append([]activities.CohortRef{t.Cohort}, t.Merge...)}
		if err := workflow.ExecuteActivity(pctx, a.Union, union).Get(pctx, &t.Cohort); err != nil {
			return nil, err
		}
		t.Merge = nil
	}
	in := activities.StepInput{RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, StepID: step.ID, Cohort: t.Cohort, Now: workflow.Now(ctx), Visit: t.Visits[t.Step]}
	if t.Resume == "" {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
		if err := workflow.ExecuteLocalActivity(lctx, a.EnterStep, in).Get(lctx, nil); err != nil {
			return nil, err
		}
	}
	switch step.Kind {
	case canvases.StepPush:
		deferred, err := r.send(ctx, step, t.Cohort, in.Visit)
		if err != nil {
			return nil, err
		}
		// Users quiet hours held back come back to this step when they end;
		// the rest go on now.
		onward := t.Cohort
		var held []activities.CohortRef
		for _, d := range deferred {
			if d.Size > 0 {
				held = append(held, d)
			}
		}
		if len(held) > 0 {
			sub := activities.SubtractInput{RunID: r.runID, StepID: step.ID, Visit: in.Visit, Cohort: t.Cohort, Minus: held}
			if err := workflow.ExecuteActivity(pctx, a.Subtract, sub).Get(pctx, &onward); err != nil {
				return nil, err
			}
		}
		var next []Token
		if onward.Size > 0 {
			if next, err = r.next(ctx, step, onward, step.Next); err != nil {
				return nil, err
			}
		}
		for _, d := range held {
			next = append(next, Token{Cohort: d, Step: step.ID, WakeAt: d.WakeAt, Resume: resumeDeferred})
		}
		return next, nil
	case canvases.StepTag:
		if err := workflow.ExecuteActivity(pctx, a.Tag, in).Get(pctx, nil); err != nil {
			return nil, err
		}
		return r.next(ctx, step, t.Cohort, step.Next)
	case canvases.StepStaffTask:
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
			if err := workflow.ExecuteActivity(pctx, a.StaffTask, in).Get(pctx, nil); err != nil {
				return nil, err
			}
		} else if err := r.staffTask(ctx, step, t, in); err != nil {
			return nil, err
		}
		return r.next(ctx, step, t.Cohort, step.Next)
	case canvases.StepBranch, canvases.StepSplit:
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
	case canvases.StepWait:
		return r.wait(ctx, step, t, in)
	case canvases.StepExit:
		reason := step.Exit.Reason
		if reason == "" {
			reason = "exit"
		}
		return nil, r.exit(sctx, in, reason)
	}
	return nil, fmt.Errorf("step %s: unknown kind %q", step.ID, step.Kind)
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
	if err := workflow.ExecuteActivity(ctx, a.Exit, activities.ExitInput{StepInput: in, Reason: reason}).Get(ctx, &n); err != nil {
		return err
	}
	r.stats.Exited += n
	return nil
}

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

// send runs a push step over the cohort's pages: Send activities over page
// ranges, a bounded number at a time.
func (r *runner) send(ctx workflow.Context, step *canvases.Step, c activities.CohortRef, visit int) ([]activities.CohortRef, error) {
	pctx := workflow.WithActivityOptions(ctx, sendActivity)
	type pending struct {
		f workflow.Future
	}
	var queue []pending
	var firstErr error
	var deferred []activities.CohortRef
	collect := func(p pending) {
		var res activities.SendResult
		if err := p.f.Get(ctx, &res); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		deferred = append(deferred, res.Deferred...)
		r.stats.Sent += res.Sent
		r.stats.Failed += res.Failed
		r.stats.Suppressed += res.Suppressed
		r.stats.Unknown += res.Unknown
	}
	for from := int64(0); from < c.PageSpan; from += pagesPerSend {
		if len(queue) == maxSendsInFlight {
			collect(queue[0])
			queue = queue[1:]
		}
		if firstErr != nil {
			break
		}
		f := workflow.ExecuteActivity(pctx, a.Send, activities.SendInput{
			RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, StepID: step.ID,
			Cohort: c, From: from, To: min(from+pagesPerSend, c.PageSpan), Visit: visit,
		})
		queue = append(queue, pending{f})
	}
	for _, p := range queue {
		collect(p)
	}
	return deferred, firstErr
}
