package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/huabu/huabu/internal/store"
)

// WaitStore registers a cohort's wait for an event and splits it, when it
// ends, into who arrived and who timed out (AwaitEvent, CollectArrivals).
type WaitStore interface {
	RegisterWait(ctx context.Context, w store.Wait) error
	ChildCohort(ctx context.Context, waiting store.Cohort, suffix string) (store.Cohort, error)
	EndWait(ctx context.Context, cohortID int64) error
	CollectArrivalsPage(ctx context.Context, waitingID, childID int64) (int, error)
	WriteRemainderPages(ctx context.Context, waitingID, childID, from, to int64) error
}

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

// collectCursor is CollectArrivals' heartbeat: the remainder's pages below
// NextPage are written.
type collectCursor struct {
	NextPage int64 `json:"next_page"`
}

// CollectArrivals moves a waiting cohort's arrivals into a child cohort (and,
// when final, everyone else into another). Both are written a page at a
// time, each page in its own transaction, so a million-user wait is
// collected in bounded memory and a retry resumes where the last attempt
// stopped.
func (a *Activities) CollectArrivals(ctx context.Context, in CollectInput) (Collected, error) {
	waiting, err := a.Store.GetCohort(ctx, in.Cohort.ID)
	if err != nil {
		return Collected{}, err
	}
	if in.Final {
		// First: no arrival is taken after the deadline, so the two
		// children split the members exactly.
		if err := a.Store.EndWait(ctx, waiting.ID); err != nil {
			return Collected{}, err
		}
	}
	arrived, err := a.Store.ChildCohort(ctx, waiting, fmt.Sprint("arrived", in.Seq))
	if err != nil {
		return Collected{}, err
	}
	if !arrived.Sealed {
		for {
			n, err := a.Store.CollectArrivalsPage(ctx, waiting.ID, arrived.ID)
			if err != nil {
				return Collected{}, err
			}
			activity.RecordHeartbeat(ctx, collectCursor{})
			if n < store.PageSize {
				break
			}
		}
		if arrived, err = a.Store.SealCohort(ctx, arrived.ID, 0); err != nil {
			return Collected{}, err
		}
	}
	out := Collected{Arrived: refOf(arrived)}
	if !in.Final {
		return out, nil
	}
	rest, err := a.Store.ChildCohort(ctx, waiting, "timeout")
	if err != nil {
		return Collected{}, err
	}
	if !rest.Sealed {
		var cur collectCursor
		if activity.HasHeartbeatDetails(ctx) {
			_ = activity.GetHeartbeatDetails(ctx, &cur)
		}
		const pagesAtOnce = 16
		for cur.NextPage < waiting.PageSpan {
			to := min(cur.NextPage+pagesAtOnce, waiting.PageSpan)
			if err := a.Store.WriteRemainderPages(ctx, waiting.ID, rest.ID, cur.NextPage, to); err != nil {
				return Collected{}, err
			}
			cur.NextPage = to
			activity.RecordHeartbeat(ctx, cur)
		}
		if rest, err = a.Store.SealCohort(ctx, rest.ID, waiting.PageSpan); err != nil {
			return Collected{}, err
		}
	}
	out.TimedOut = refOf(rest)
	return out, nil
}
