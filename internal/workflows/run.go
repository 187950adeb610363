package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
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

// EventRunInput is the input of an entry window's run: the users who
// entered an event-triggered canvas version together, filtered again by its
// audience and re-entry rules when the run begins.
func EventRunInput(canvasID, planHash string, userIDs []string) RunInput {
	return RunInput{CanvasID: canvasID, PlanHash: planHash, Trigger: canvases.TriggerEvent, UserIDs: userIDs, ApplyAudience: true}
}

// Token is a cohort at a step.
type Token struct {
	Cohort activities.CohortRef `json:"cohort"`
	Step   string               `json:"step"`
	// WakeAt: asleep until then, then runs Step (a wait's next step).
	WakeAt time.Time `json:"wake_at,omitzero"`
	// From is the wait step a sleeping token's users are in until WakeAt
	// (where they exit if the run stops).
	From string `json:"from,omitempty"`
	// MergeFrom is From of each of Merge (sleepers merge across waits).
	MergeFrom []string `json:"merge_from,omitempty"`
	// Deadline: awaiting an event at the wait step Step until then.
	Deadline time.Time `json:"deadline,omitzero"`
	// Resume says the token comes back to a step it already entered:
	// "waiting" while it waits for an event, "collect" to take arrivals on,
	// "timeout" when the wait's timeout fired.
	Resume string `json:"resume,omitempty"`
	// Seq numbers the collections of an event wait's arrivals, so that
	// each collection (retried or not) makes its own, stable child cohort.
	Seq int `json:"seq,omitempty"`
	// Merge are cohorts that go on with Cohort as one (they woke at the
	// same step at the same time): the step unites them first.
	Merge []activities.CohortRef `json:"merge,omitempty"`
	// Child is the workflow of a staff_task step the token awaits
	// (Resume "staff"); Staff is what it reported (Resume "staff-done").
	Child string                   `json:"child,omitempty"`
	Staff *activities.StaffOutcome `json:"staff,omitempty"`
	// Visits counts, for the steps on loops, how often the cohort's users
	// entered them before: each visit has its own deliveries.
	Visits map[string]int `json:"visits,omitempty"`
	// StepRecorded: the cohort's entry into Step is recorded already
	// (BeginEnter recorded the entry cohort's): the step does not again.
	StepRecorded bool `json:"step_recorded,omitempty"`
	// EnterAfter and EnterHead (Resume "enter-rest"): the rest of the
	// audience is the profiles after uid EnterAfter; the head entered
	// EnterHead users.
	EnterAfter int64 `json:"enter_after,omitempty"`
	EnterHead  int64 `json:"enter_head,omitempty"`
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

// Method values name activities; never called.
var (
	a  *activities.Activities
	sa *activities.StaffActivities
)

// finishOnCancelChange versions recording a cancelled run's end (runs
// recorded before it ended without a word to the store).
const finishOnCancelChange = "finish-on-cancel"

// Run is the interpreter workflow.
func Run(ctx workflow.Context, in RunInput) (RunResult, error) {
	r := &runner{in: in, stats: in.Stats}
	res, err := r.run(ctx)
	if err == nil || r.runID == 0 || workflow.IsContinueAsNewError(err) {
		return res, err
	}
	// The run ends here, failed or cancelled: say so in the store (the
	// router stops routing events to it, its waits are dropped) and stop
	// the staff_task children it awaits, even though ctx is cancelled.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	state, msg := store.RunFailed, err.Error()
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		if workflow.GetVersion(dctx, finishOnCancelChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return res, err
		}
		state, msg = store.RunCancelled, ""
	}
	if r.children != nil {
		for _, id := range r.children() {
			// The child may have ended meanwhile: nothing to stop then.
			_ = workflow.RequestCancelExternalWorkflow(dctx, id, "").Get(dctx, nil)
		}
	}
	if state == store.RunCancelled && r.stopped {
		// Every user the run still held exits with the stop's reason.
		stop := stopOf(dctx)
		if serr := r.exitEveryone(dctx, r.remaining, stop.Reason); serr != nil {
			workflow.GetLogger(ctx).Error("recording the exits of a stopped run failed", "run", r.runID, "error", serr)
		}
		if stop.By != "" {
			msg = stop.Reason + " by " + stop.By
		}
		res = RunResult{RunID: r.runID, Stats: r.stats}
	}
	fctx := workflow.WithActivityOptions(dctx, shortActivity)
	if ferr := workflow.ExecuteActivity(fctx, a.FinishRun, activities.FinishInput{RunID: r.runID, State: state, Error: msg}).Get(fctx, nil); ferr != nil {
		workflow.GetLogger(ctx).Error("recording the end of a run failed", "run", r.runID, "state", state, "error", ferr)
		if state == store.RunFailed {
			err = errors.Join(err, fmt.Errorf("recording the end of run %d: %w", r.runID, ferr))
		}
	}
	return res, err
}

// livenessTimeout is how soon Temporal gives a dead worker's activity to
// another worker (a SIGKILL, a lost machine): the worker heartbeats every
// activity every few seconds while it lives (internal/liveness), so the
// heartbeat timeout, not the start-to-close timeout, notices the death.
// Only activity options change, so replaying older histories is unaffected.
const livenessTimeout = 20 * time.Second

// shortActivity is a single store write or two.
var shortActivity = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	HeartbeatTimeout:    livenessTimeout,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
}

// pageActivity runs over cohort pages: long, heartbeating, retried with backoff.
var pageActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Minute,
	HeartbeatTimeout:    livenessTimeout,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
		NonRetryableErrorTypes: []string{"PlanUnavailable", "PlanMismatch", "RenderError"},
	},
}

// sendActivity is Send's: pageActivity (Send also heartbeats by itself
// every few seconds while a page runs).
var sendActivity = pageActivity

type runner struct {
	in    RunInput
	plan  *canvases.Plan
	loops map[string]bool // steps on a loop: visits are counted
	runID int64
	stats Stats
	// v1: the run uses loop (not loopV0) and its ways of waiting.
	v1 bool
	// children lists the staff_task children the run awaits (loop sets
	// it); startedChild hands loop the future of a child a step started.
	children     func() []string
	startedChild func(id string, f workflow.ChildWorkflowFuture)
	// local: BeginRun, Enter, Exit, FinishRun and whole-cohort sends are
	// local activities (localRunChange).
	local bool
	// stopped: the run was cancelled (stopChange) holding remaining.
	stopped   bool
	remaining []Token
}

func (r *runner) run(ctx workflow.Context) (RunResult, error) {
	// A plan that is not stored fails at once (PlanUnavailable); a store that
	// cannot answer for now is retried until it can.
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	if err := workflow.ExecuteLocalActivity(lctx, a.LoadPlan, r.in.PlanHash).Get(lctx, &r.plan); err != nil {
		return RunResult{}, fmt.Errorf("load plan %s: %w", r.in.PlanHash, err)
	}
	r.loops = r.plan.LoopSteps()
	r.runID = r.in.RunID
	tokens := r.in.Tokens
	if r.runID == 0 {
		if len(r.in.UserIDs) > maxUserIDsInInput {
			return RunResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%d users named; at most %d per run", len(r.in.UserIDs), maxUserIDsInInput), "TooManyUsers", nil)
		}
		// A run of named users (an entry window, a manual run with
		// --profiles) is small: it begins, enters and ends in local
		// activities (localRunChange).
		r.local = len(r.in.UserIDs) > 0 && workflow.GetVersion(ctx, localRunChange, workflow.DefaultVersion, 1) == 1
		begin := activities.BeginInput{CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash, Trigger: r.in.Trigger, Users: int64(len(r.in.UserIDs))}
		var err error
		if r.local && workflow.GetVersion(ctx, beginEnterChange, workflow.DefaultVersion, 1) == 1 {
			tokens, err = r.beginEnter(ctx, begin)
		} else {
			tokens, err = r.beginThenEnter(ctx, begin)
		}
		if err != nil {
			return RunResult{}, err
		}
	}
	var err error
	if r.v1 = workflow.GetVersion(ctx, loopChange, workflow.DefaultVersion, 1) == 1; r.v1 {
		tokens, err = r.loop(ctx, tokens)
	} else {
		tokens, err = r.loopV0(ctx, tokens)
	}
	if err != nil {
		return RunResult{RunID: r.runID, Stats: r.stats}, err
	}
	if tokens != nil { // Temporal suggested continuing as new
		next := r.in
		next.RunID, next.Tokens, next.Stats, next.UserIDs = r.runID, tokens, r.stats, nil
		return RunResult{}, workflow.NewContinueAsNewError(ctx, Run, next)
	}
	if err := r.short(ctx, a.FinishRun, activities.FinishInput{RunID: r.runID, State: store.RunCompleted}).Get(ctx, nil); err != nil {
		return RunResult{}, err
	}
	return RunResult{RunID: r.runID, Stats: r.stats}, nil
}

// beginThenEnter records the run (BeginRun), then enters its users: an
// audience run, or a run of named users recorded before beginEnterChange.
func (r *runner) beginThenEnter(ctx workflow.Context, begin activities.BeginInput) ([]Token, error) {
	if err := r.short(ctx, a.BeginRun, begin).Get(ctx, &r.runID); err != nil {
		return nil, err
	}
	if r.in.UserIDs == nil && workflow.GetVersion(ctx, enterHeadChange, workflow.DefaultVersion, 1) == 1 {
		return r.enterHead(ctx)
	}
	return r.enter(ctx)
}

// beginEnterChange versions how a run of named users begins: from version
// 1 one local activity, BeginEnter, records the run, its entry cohort and
// the cohort's entry into the first step in one store transaction (ADR
// 044), where BeginRun, Enter and the first step's EnterStep took three
// local activities and seven write transactions. Runs recorded before
// begin the old way.
const beginEnterChange = "begin-enter"

// beginEnter begins a run of named users and enters them (BeginEnter): the
// entry token's step entry is recorded already.
func (r *runner) beginEnter(ctx workflow.Context, begin activities.BeginInput) ([]Token, error) {
	in := activities.BeginEnterInput{BeginInput: begin, UserIDs: r.in.UserIDs, ApplyAudience: r.in.ApplyAudience}
	var res activities.BeginEnterResult
	if err := localFirst(ctx, localActivity, pageActivity, a.BeginEnter, in).Get(ctx, &res); err != nil {
		return nil, err
	}
	r.runID = res.RunID
	r.stats.Entered = res.Cohort.Size
	if res.Cohort.Size == 0 {
		return nil, nil
	}
	return []Token{{Cohort: res.Cohort, Step: r.plan.Start(), StepRecorded: true}}, nil
}

// enterHeadChange versions entering an audience in two parts: EnterHead
// (the first chunk of profiles), whose cohort starts on the first step at
// once, and EnterRest beside it. Runs recorded before entered with Enter.
const enterHeadChange = "enter-head"

// enter writes the run's entry cohort whole (named users; audience runs
// recorded before enterHeadChange).
func (r *runner) enter(ctx workflow.Context) ([]Token, error) {
	var entry activities.CohortRef
	var f workflow.Future
	if r.local {
		f = localFirst(ctx, localActivity, pageActivity, a.Enter, r.enterInput())
	} else {
		f = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, pageActivity), a.Enter, r.enterInput())
	}
	if err := f.Get(ctx, &entry); err != nil {
		return nil, err
	}
	r.stats.Entered = entry.Size
	if entry.Size == 0 {
		return nil, nil
	}
	return []Token{{Cohort: entry, Step: r.plan.Start()}}, nil
}

// enterHead enters the audience among the first chunk of profiles; the
// rest follows as a token of its own (resumeEnterRest) that the loop runs
// beside the head's first step, so the first messages do not wait for the
// whole audience to be scanned.
func (r *runner) enterHead(ctx workflow.Context) ([]Token, error) {
	var head activities.EnterHeadResult
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	if err := workflow.ExecuteActivity(pctx, a.EnterHead, r.enterInput()).Get(pctx, &head); err != nil {
		return nil, err
	}
	r.stats.Entered = head.Cohort.Size
	var tokens []Token
	if head.Cohort.Size > 0 {
		tokens = append(tokens, Token{Cohort: head.Cohort, Step: r.plan.Start()})
	}
	if !head.Done {
		tokens = append(tokens, Token{Step: r.plan.Start(), Resume: resumeEnterRest, EnterAfter: head.LastUID, EnterHead: head.Cohort.Size})
	}
	return tokens, nil
}

// enterRest enters the rest of the audience (after the head's profiles) and
// sends it to the first step.
func (r *runner) enterRest(ctx workflow.Context, t Token) ([]Token, error) {
	var rest activities.CohortRef
	pctx := workflow.WithActivityOptions(ctx, pageActivity)
	in := activities.EnterRestInput{EnterInput: r.enterInput(), AfterUID: t.EnterAfter, Head: t.EnterHead}
	if err := workflow.ExecuteActivity(pctx, a.EnterRest, in).Get(pctx, &rest); err != nil {
		return nil, err
	}
	r.stats.Entered += rest.Size
	if rest.Size == 0 {
		return nil, nil
	}
	return []Token{{Cohort: rest, Step: t.Step}}, nil
}

func (r *runner) enterInput() activities.EnterInput {
	return activities.EnterInput{
		RunID: r.runID, CanvasID: r.in.CanvasID, PlanHash: r.in.PlanHash,
		UserIDs: r.in.UserIDs, ApplyAudience: r.in.ApplyAudience,
	}
}

// localRunChange versions how a run of named users (an entry window, a
// manual run with --profiles) talks to its activities: from version 1,
// BeginRun, Enter, Exit, FinishRun and a Send covering the whole cohort run
// as local activities, in the workflow task that needs them. Each regular
// activity costs the embedded Temporal server about four persistence
// writes in sequence (scheduled, started, completed, the next workflow task);
// with them an event's run took ~12 such steps before its first message and
// at 2,000 events/s the runs queued behind each other (docs/performance.md).
// Every one of these activities is safe to run twice, which a local
// activity needs too: a worker that dies mid-task has its workflow task
// retried and the local activities whose results were not recorded run
// again. Audience runs keep regular activities: their Enter and Send page
// through cohorts for minutes, heartbeating.
const localRunChange = "local-named-runs"

// localActivity is shortActivity's local counterpart.
var localActivity = workflow.LocalActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy:         shortActivity.RetryPolicy,
}

// short runs a short activity: local first in a local run, else regular.
func (r *runner) short(ctx workflow.Context, activity any, args ...any) workflow.Future {
	if r.local {
		return localFirst(ctx, localActivity, shortActivity, activity, args...)
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortActivity), activity, args...)
}

// localFirst runs an activity as a local activity — the fast path — and,
// when that fails, once more as a regular activity with the same input:
// a local activity's retries end with its start-to-close timeout (the SDK
// makes that its schedule-to-close too), so a store unavailable for a
// minute, a paused canvas or a provider's hourly quota would otherwise fail
// the run and lose its users. The regular activity retries for as long as
// the run lives, heartbeats and resumes; every activity here is safe to
// run twice (the ledger, sealed cohorts, recorded runs), so running it
// again after a local attempt that may have done part of the work is too.
func localFirst(ctx workflow.Context, local workflow.LocalActivityOptions, regular workflow.ActivityOptions, activity any, args ...any) workflow.Future {
	f, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		lf := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, local), activity, args...)
		if err := lf.Get(ctx, nil); err == nil || temporal.IsCanceledError(err) {
			set.Chain(lf)
			return
		}
		set.Chain(workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, regular), activity, args...))
	})
	return f
}

// stepDone is a finished step execution.
type stepDone struct {
	id   int // of the execution, to find its token
	next []Token
	err  error
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
	// A staff_task step: its child workflow runs (resumeStaff), then the
	// cohort goes on with what the child reported (resumeStaffDone).
	resumeStaff     = "staff"
	resumeStaffDone = "staff-done"
	// resumeEnterRest: the rest of an audience to enter after its head
	// (enterHeadChange); the token has no cohort yet.
	resumeEnterRest = "enter-rest"
)
