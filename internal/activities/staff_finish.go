package activities

import (
	"context"

	"github.com/huabu/huabu/internal/store"
)

// StaffFinishInput ends a step execution's tracking.
type StaffFinishInput struct {
	StaffInput
}

// StaffOutcome is what a staff_task step execution came to.
type StaffOutcome struct {
	Tasks     int   `json:"tasks"`
	OnTime    int   `json:"on_time"`
	Late      int   `json:"late"`
	NotDone   int   `json:"not_done"`
	Failed    int   `json:"failed"`
	Unknown   int   `json:"unknown"`
	Customers int64 `json:"customers"`
	Sent      int64 `json:"sent"`
	NotFriend int64 `json:"not_friend"`
	OverQuota int64 `json:"over_quota"`
	Unsent    int64 `json:"unsent"`
	Left      int64 `json:"left_out"` // no owner, no address, removed: never in a task
	// Customers of tasks WeCom refused, or that a crash left unknown.
	CustomersFailed  int64 `json:"customers_failed,omitempty"`
	CustomersUnknown int64 `json:"customers_unknown,omitempty"`
}

// StaffFinish decides each task's result and each waiting customer's, and
// returns the totals.
func (a *StaffActivities) StaffFinish(ctx context.Context, in StaffFinishInput) (StaffOutcome, error) {
	var out StaffOutcome
	st, err := a.staffStore()
	if err != nil {
		return out, err
	}
	scope, err := st.StaffScope(ctx, in.RunID, in.StepID, in.Cohort.ID)
	if err != nil {
		return out, err
	}
	if err := st.FinishStaffTasks(ctx, in.RunID, in.StepID, scope, in.Schedule.Tracked); err != nil {
		return out, err
	}
	tasks, err := staffTasksIn(ctx, st, in.StepInput, scope)
	if err != nil {
		return out, err
	}
	for _, t := range tasks {
		out.Tasks++
		switch t.Result {
		case store.StaffOnTime:
			out.OnTime++
		case store.StaffLate:
			out.Late++
		case store.StaffNotDone:
			out.NotDone++
		case store.StaffTaskFailed:
			out.Failed++
		case store.StaffTaskUnknown:
			out.Unknown++
		}
	}
	counts, err := st.StaffCustomerCounts(ctx, in.RunID, in.StepID, scope)
	if err != nil {
		return out, err
	}
	for status, n := range counts {
		out.Customers += n
		switch status {
		case store.CustomerSent:
			out.Sent += n
		case store.CustomerNotFriend:
			out.NotFriend += n
		case store.CustomerOverQuota:
			out.OverQuota += n
		case store.CustomerUnsent:
			out.Unsent += n
		case store.CustomerNoOwner, store.CustomerNoAddress, store.CustomerRemoved:
			out.Left += n
		case store.CustomerFailed:
			out.CustomersFailed += n
		case store.CustomerUnknown:
			out.CustomersUnknown += n
		}
	}
	return out, nil
}
