package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/activities"
	"github.com/huabu/huabu/canvases"
)

// RunName is the interpreter's workflow type name.
const RunName = "RunCanvas"

// RunInput starts or continues a run. Keep it backwards compatible: old
// histories replay with it.
type RunInput struct {
	CanvasID string `json:"canvas_id"`
	PlanHash string `json:"plan_hash"`
	Trigger  string `json:"trigger"` // schedule | manual | event
	// UserIDs enter instead of the audience (manual runs with --profiles,
	// event-trigger batches). ApplyAudience filters them by audience and
	// re-entry rules.
	UserIDs       []string `json:"user_ids,omitempty"`
	ApplyAudience bool     `json:"apply_audience,omitempty"`

	// Set when continuing as new.
	RunID  int64   `json:"run_id,omitempty"`
	Tokens []Token `json:"tokens,omitempty"`
	Stats  Stats   `json:"stats"`
}

// Token is a cohort at a step.
type Token struct {
	Cohort activities.CohortRef `json:"cohort"`
	Step   string               `json:"step"`
	// WakeAt: asleep until then, then runs Step (a wait's next step).
	WakeAt time.Time `json:"wake_at,omitzero"`
	// Deadline: awaiting an event at the wait step Step until then.
	Deadline time.Time `json:"deadline,omitzero"`
	// Resume says the token comes back to a step it already entered:
	// "waiting" while it waits for an event, "collect" to take arrivals on,
	// "timeout" when the wait's timeout fired.
	Resume string `json:"resume,omitempty"`
	// Seq numbers the collections of an event wait's arrivals, so that
	// each collection (retried or not) makes its own, stable child cohort.
	Seq int `json:"seq,omitempty"`
	// Visits counts, for the steps on loops, how often the cohort's users
	// entered them before: each visit has its own deliveries.
	Visits map[string]int `json:"visits,omitempty"`
}

// ArrivalsSignal tells a run that users it waits for sent the event: the
// router records arrivals in the store and signals (at most once per batch).
const ArrivalsSignal = "arrivals"

// Stats are a run's running totals.
type Stats struct {
	Entered    int64 `json:"entered"`
	Sent       int64 `json:"sent"`
	Failed     int64 `json:"failed"`
	Suppressed int64 `json:"suppressed"`
	Unknown    int64 `json:"unknown"`
	Exited     int64 `json:"exited"`
}

// RunResult is what a finished run reports.
type RunResult struct {
	RunID int64 `json:"run_id"`
	Stats Stats `json:"stats"`
}

// Limits keep a run within Temporal's comfort zone.
const (
	maxStepsInFlight  = 16 // step executions running at once
	maxSendsInFlight  = 8  // Send activities per push step
	pagesPerSend      = 32 // cohort pages per Send activity (32,000 users)
	maxUserIDsInInput = 20000
)

var a *activities.Activities // method values name activities; never called

// Run is the interpreter workflow.
func Run(ctx workflow.Context, in RunInput) (RunResult, error) {
	r := &runner{in: in, stats: in.Stats}
	res, err := r.run(ctx)
	if err != nil && r.runID > 0 && !errors.Is(err, workflow.ErrCanceled) && !workflow.IsContinueAsNewError(err) {
		fctx := workflow.WithActivityOptions(ctx, shortActivity)
		_ = workflow.ExecuteActivity(fctx, a.FinishRun, activities.FinishInput{RunID: r.runID, State: "failed", Error: err.Error()}).Get(fctx, nil)
	}
	return res, err
}

var shortActivity = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
}

// pageActivity runs over cohort pages: long, heartbeating, retried with backoff.
var pageActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Minute,
	HeartbeatTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
		NonRetryableErrorTypes: []string{"PlanUnavailable", "PlanMismatch", "RenderError"},
	},
}

type runner struct {
	in    RunInput
	plan  *canvases.Plan
	loops map[string]bool // steps on a loop: visits are counted
	runID int64
	stats Stats
}

func (r *runner) run(ctx workflow.Context) (RunResult, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	if err := workflow.ExecuteLocalActivity(lctx, a.LoadPlan, r.in.PlanHash).Get(lctx, &r.plan); err != nil {
		return RunResult{}, fmt.Errorf("load plan %s: %w", r.in.PlanHash, err)
	}
	r.loops = r.plan.LoopSteps()
	sctx := workflow.WithActivityOptions(ctx, shortActivity)
	r.runID = r.in.RunID
	tokens := r.in.Tokens
	if r.runID == 0 {
		if len(r.in.UserIDs) > maxUserIDsInInput {
			return RunResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%d users named; at most %d per run", len(r.in.UserIDs), maxUserIDsInInput), "TooManyUsers", nil)
		}
		if err := workflow.ExecuteActivity(sctx, a.BeginRun, activities.BeginInput{CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, Trigger: r.in.Trigger}).Get(sctx, &r.runID); err != nil {
			return RunResult{}, err
		}
		var entry activities.CohortRef
		pctx := workflow.WithActivityOptions(ctx, pageActivity)
		err := workflow.ExecuteActivity(pctx, a.Enter, activities.EnterInput{
			RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash,
			UserIDs: r.in.UserIDs, ApplyAudience: r.in.ApplyAudience,
		}).Get(pctx, &entry)
		if err != nil {
			return RunResult{}, err
		}
		r.stats.Entered = entry.Size
		if entry.Size > 0 {
			tokens = []Token{{Cohort: entry, Step: r.plan.Start()}}
		}
	}
	tokens, err := r.loop(ctx, tokens)
	if err != nil {
		return RunResult{RunID: r.runID, Stats: r.stats}, err
	}
	if tokens != nil { // Temporal suggested continuing as new
		next := r.in
		next.RunID, next.Tokens, next.Stats, next.UserIDs = r.runID, tokens, r.stats, nil
		return RunResult{}, workflow.NewContinueAsNewError(ctx, Run, next)
	}
	if err := workflow.ExecuteActivity(sctx, a.FinishRun, activities.FinishInput{RunID: r.runID, State: "completed"}).Get(sctx, nil); err != nil {
		return RunResult{}, err
	}
	return RunResult{RunID: r.runID, Stats: r.stats}, nil
}

// stepDone is a finished step execution.
type stepDone struct {
	next []Token
	err  error
}

// loop runs tokens until none is left (nil) or Temporal suggests continuing
// as new (the tokens to continue with).
func (r *runner) loop(ctx workflow.Context, tokens []Token) ([]Token, error) {
	var runnable []Token
	// Sleeping tokens, by a sequence number, in the order they fell asleep;
	// each has a timer that moves it to runnable.
	sleeping := map[int]Token{}
	var order []int
	seq := 0
	sel := workflow.NewSelector(ctx)
	sleep := func(t Token) {
		seq++
		id := seq
		sleeping[id] = t
		order = append(order, id)
		wake := t.WakeAt
		if !t.Deadline.IsZero() {
			wake = t.Deadline
		}
		timer := workflow.NewTimer(ctx, max(wake.Sub(workflow.Now(ctx)), 0))
		sel.AddFuture(timer, func(f workflow.Future) {
			t, ok := sleeping[id]
			if !ok || f.Get(ctx, nil) != nil {
				return
			}
			delete(sleeping, id)
			if !t.Deadline.IsZero() {
				t.Resume = resumeTimeout // the event wait's timeout fired
				t.Seq++
			}
			t.WakeAt, t.Deadline = time.Time{}, time.Time{}
			runnable = append(runnable, t)
		})
	}
	// collect queues a collection of arrivals for every event wait: each
	// takes the next seq, kept in the sleeping token across continue-as-new.
	collect := func() {
		for _, id := range order {
			t, ok := sleeping[id]
			if !ok || t.Resume != resumeWaiting {
				continue
			}
			t.Seq++
			sleeping[id] = t
			c := t
			c.Resume, c.Deadline = resumeCollect, time.Time{}
			runnable = append(runnable, c)
		}
	}
	place := func(t Token) {
		if t.WakeAt.IsZero() && t.Deadline.IsZero() {
			runnable = append(runnable, t)
		} else {
			sleep(t)
		}
	}
	for _, t := range tokens {
		place(t)
	}
	// Arrivals may have been recorded while the run continued as new (its
	// signal then went to the old run): look once at the start.
	collect()
	arrivals := workflow.GetSignalChannel(ctx, ArrivalsSignal)
	sel.AddReceive(arrivals, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		for c.ReceiveAsync(nil) { // signals that came together are one collection
		}
		collect()
	})
	done := workflow.NewChannel(ctx)
	inFlight := 0
	// The status query lets `huabu run --wait` stop waiting once a run only
	// sleeps (a wait of days), and tells when it wakes.
	err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) {
		st := Status{RunID: r.runID, Active: inFlight + len(runnable), Stats: r.stats}
		for _, id := range order {
			if t, ok := sleeping[id]; ok {
				st.Waiting = append(st.Waiting, Waiting{Step: t.Step, Users: t.Cohort.Size, WakeAt: t.WakeAt, Deadline: t.Deadline})
			}
		}
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	var firstErr error
	sel.AddReceive(done, func(c workflow.ReceiveChannel, _ bool) {
		var d stepDone
		c.Receive(ctx, &d)
		inFlight--
		if d.err != nil && firstErr == nil {
			firstErr = d.err
		}
		for _, t := range d.next {
			place(t)
		}
	})
	for {
		draining := firstErr != nil || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
		for !draining && len(runnable) > 0 && inFlight < maxStepsInFlight {
			t := runnable[0]
			runnable = runnable[1:]
			inFlight++
			workflow.Go(ctx, func(gctx workflow.Context) {
				next, err := r.execute(gctx, t)
				done.Send(gctx, stepDone{next: next, err: err})
			})
		}
		if inFlight == 0 {
			if firstErr != nil {
				return nil, firstErr
			}
			var asleep []Token
			for _, id := range order {
				if t, ok := sleeping[id]; ok {
					asleep = append(asleep, t)
				}
			}
			if draining {
				return append(runnable, asleep...), nil
			}
			if len(runnable) == 0 && len(asleep) == 0 {
				return nil, nil
			}
		}
		sel.Select(ctx)
	}
}

// StatusQuery is the name of the workflow query that reports a run's state.
const StatusQuery = "status"

// Status is a running run's state.
type Status struct {
	RunID   int64     `json:"run_id"`
	Active  int       `json:"active"` // cohorts at work now
	Waiting []Waiting `json:"waiting,omitempty"`
	Stats   Stats     `json:"stats"`
}

// Waiting is a sleeping cohort: on its way to Step at WakeAt, or waiting for
// an event at Step until Deadline.
type Waiting struct {
	Step     string    `json:"step"`
	Users    int64     `json:"users"`
	WakeAt   time.Time `json:"wake_at,omitzero"`
	Deadline time.Time `json:"deadline,omitzero"`
}

// Phases of a token at a wait for an event.
const (
	resumeWaiting = "waiting" // asleep until the deadline, taking arrivals
	resumeCollect = "collect" // take the arrivals so far on to the next step
	resumeTimeout = "timeout" // the deadline passed: arrivals on, the rest the timeout way
	// resumeDeferred: a push step again for users quiet hours held back.
	resumeDeferred = "deferred"
)
