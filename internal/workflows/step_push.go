package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// push sends the step's message to the cohort. Users quiet hours held back
// come back to this step when they end; the rest go on now.
func (r *runner) push(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) ([]Token, error) {
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	deferred, err := r.send(ctx, step, t.Cohort, in.Visit)
	if err != nil {
		return nil, err
	}
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
}

// localSend is sendActivity's local counterpart (localRunChange): one try
// of at most two minutes, in the workflow task; a send that needs longer
// (a slow provider, a pause, a quota to wait out) goes on as the regular
// Send (localFirst), which heartbeats and resumes where the pages were.
var localSend = workflow.LocalActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
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
		in := activities.SendInput{
			RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, StepID: step.ID,
			Cohort: c, From: from, To: min(from+pagesPerSend, c.PageSpan), Visit: visit,
		}
		var f workflow.Future
		if r.local && c.PageSpan <= pagesPerSend { // one Send covers the cohort
			// The local try and the regular one are one send to the store's
			// held sends (a pause, an expiry decided).
			in.HoldKey = fmt.Sprintf("%s/send/%s/%d/%d/%d", workflow.GetInfo(ctx).WorkflowExecution.RunID, step.ID, visit, c.ID, from)
			f = localFirst(ctx, localSend, sendActivity, a.Send, in)
		} else {
			f = workflow.ExecuteActivity(pctx, a.Send, in)
		}
		queue = append(queue, pending{f})
	}
	for _, p := range queue {
		collect(p)
	}
	return deferred, firstErr
}
