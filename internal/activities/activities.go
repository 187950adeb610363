package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// Store is the engine's store: every interface the activities of
// Activities declare, each in the file of the activities that use it
// (PlanStore here, RunStore in run.go, ProfileStore in audience.go,
// CohortStore in cohorts.go, WaitStore in waits.go, LedgerStore in
// send.go, TouchStore in policy.go, SuppressionStore in optout.go,
// OutboxStore in staff_brief.go: the staff activities use the engine's). The
// app passes the one store that implements them all (*store.SQLite, over
// SQLite or PostgreSQL); a second implementation is checked interface by
// interface where it is assigned.
type Store interface {
	PlanStore
	RunStore
	ProfileStore
	CohortStore
	WaitStore
	LedgerStore
	TouchStore
	SuppressionStore
	OutboxStore
}

// PlanStore gives the plan versions activities compile (compiled).
type PlanStore interface {
	Plan(ctx context.Context, hash string) ([]byte, error)
}

// RunGate decides whether a canvas version may start a run now (approval,
// and the canvas's paused or stopped state). A refusal (why != "") ends the
// run before anyone enters it; an error is retried.
type RunGate interface {
	// users is how many users the run names (0: its audience).
	RunRefusal(ctx context.Context, canvasID, planHash string, users int64) (why string, err error)
}

// ChannelSet gives the channel behind each catalogue name.
type ChannelSet interface {
	Get(name string) (channels.Channel, bool)
}

// Activities carries the dependencies of every activity but the staff
// loop's (StaffActivities). Its methods are registered with the Temporal
// worker.
type Activities struct {
	Store    Store
	Channels ChannelSet
	Compiler *canvases.Compiler
	Logger   *slog.Logger
	Now      func() time.Time
	// Parallel is how many goroutines evaluate conditions and render
	// messages inside one activity (defaults to 4).
	Parallel int
	// Policy is the deployment's quiet hours and frequency caps.
	Policy Policy
	// Metrics, when set, counts deliveries for /metrics.
	Metrics *Metrics
	// Gate, when set, is asked before every run begins.
	Gate RunGate
	// Controls, when set, pauses and stops sends (see control.go);
	// ResumeGrace is how old a held message may be when its canvas resumes.
	Controls    CanvasControls
	ResumeGrace time.Duration

	plans sync.Map // hash → *compiledPlan
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func (a *Activities) parallel() int {
	if a.Parallel > 0 {
		return a.Parallel
	}
	return 4
}

// CohortRef is how workflows hold a cohort: an id, a size and the bound of
// its page numbers, never its members.
type CohortRef struct {
	ID       int64     `json:"id"`
	Size     int64     `json:"size"`
	PageSpan int64     `json:"pages"`
	WakeAt   time.Time `json:"wake_at,omitzero"`
}

func refOf(c store.Cohort) CohortRef {
	return CohortRef{ID: c.ID, Size: c.Size, PageSpan: c.PageSpan, WakeAt: c.WakeAt}
}

// compiledPlan is a plan with its conditions and templates compiled once
// per worker process.
type compiledPlan struct {
	plan       *canvases.Plan
	audience   *canvases.Condition
	branches   map[string][]*canvases.Condition // step id → arm conditions (nil for else)
	exitEvents bool                             // members can leave mid-run: filter exits when reading pages
	// needsEntries: something reads who entered the run (re-entry rules,
	// exit and goal events, waits for an event), so entries are recorded.
	needsEntries bool
	templates    *templateCache
}

// compiled returns a plan version, compiled. A plan that does not exist (or
// that this build cannot read) fails for good with PlanUnavailable; any
// other error, such as a busy or unreachable store, is returned as it is so
// Temporal retries the activity.
func (a *Activities) compiled(ctx context.Context, hash string) (*compiledPlan, error) {
	cp, err := a.compile(ctx, hash)
	var unavailable *planUnavailable
	if errors.As(err, &unavailable) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "PlanUnavailable", err)
	}
	return cp, err
}

// planUnavailable marks the errors no retry can cure.
type planUnavailable struct{ err error }

func (e *planUnavailable) Error() string { return e.err.Error() }
func (e *planUnavailable) Unwrap() error { return e.err }

func (a *Activities) compile(ctx context.Context, hash string) (*compiledPlan, error) {
	if cp, ok := a.plans.Load(hash); ok {
		return cp.(*compiledPlan), nil
	}
	raw, err := a.Store.Plan(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &planUnavailable{fmt.Errorf("plan %s: not stored", hash)}
	}
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", hash, err)
	}
	plan, err := canvases.UnmarshalPlan(raw)
	if err != nil {
		return nil, &planUnavailable{err}
	}
	cp := &compiledPlan{plan: plan, branches: map[string][]*canvases.Condition{}, templates: newTemplateCache()}
	if plan.Audience != "" {
		if cp.audience, err = a.Compiler.CompileCondition(plan.Audience, ""); err != nil {
			return nil, &planUnavailable{fmt.Errorf("plan %s audience: %w", plan.ShortHash(), err)}
		}
	}
	for _, s := range plan.Steps {
		for _, arm := range s.Branch {
			var cond *canvases.Condition
			if arm.When != "" {
				if cond, err = a.Compiler.CompileBranchCondition(arm.When); err != nil {
					return nil, &planUnavailable{fmt.Errorf("plan %s step %s: %w", plan.ShortHash(), s.ID, err)}
				}
			}
			cp.branches[s.ID] = append(cp.branches[s.ID], cond)
		}
	}
	cp.exitEvents = plan.Exit != nil
	cp.needsEntries = plan.Entry.Reentry != canvases.ReentryAlways || plan.Exit != nil || plan.Goal != nil
	for _, s := range plan.Steps {
		if s.Wait != nil && s.Wait.Kind == canvases.WaitEvent {
			cp.needsEntries = true
		}
	}
	actual, _ := a.plans.LoadOrStore(hash, cp)
	return actual.(*compiledPlan), nil
}
