package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/huabu/huabu/store"
)

// AwaitInput registers a cohort waiting for an event until a deadline.
type AwaitInput struct {
	StepInput
	Event    string    `json:"event"`
	Deadline time.Time `json:"deadline"`
}

// AwaitEvent registers the cohort, so events its members send are recorded
// as arrivals and the workflow is signalled.
func (a *Activities) AwaitEvent(ctx context.Context, in AwaitInput) error {
	return a.Store.RegisterWait(ctx, store.Wait{
		CohortID: in.Cohort.ID, RunID: in.RunID, CanvasID: in.CanvasID, PlanHash: in.PlanHash,
		StepID: in.StepID, Event: in.Event, WorkflowID: activity.GetInfo(ctx).WorkflowExecution.ID, Deadline: in.Deadline,
	})
}

// CollectInput takes a waiting cohort's arrivals on.
type CollectInput struct {
	StepInput
	Seq   int  `json:"seq"`   // chosen by the workflow: the same seq returns the same children
	Final bool `json:"final"` // the timeout fired: the rest go the timeout way
}

// Collected are the cohorts a collection made.
type Collected struct {
	Arrived  CohortRef `json:"arrived"`
	TimedOut CohortRef `json:"timed_out"`
}

// CollectArrivals moves a waiting cohort's arrivals into a child cohort (and,
// when final, everyone else into another).
func (a *Activities) CollectArrivals(ctx context.Context, in CollectInput) (Collected, error) {
	waiting, err := a.Store.GetCohort(ctx, in.Cohort.ID)
	if err != nil {
		return Collected{}, err
	}
	c, err := a.Store.CollectArrivals(ctx, waiting, in.Seq, in.Final)
	if err != nil {
		return Collected{}, err
	}
	return Collected{Arrived: refOf(c.Arrived), TimedOut: refOf(c.TimedOut)}, nil
}
