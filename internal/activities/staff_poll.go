package activities

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/store"
)

// StaffProgress is how many tasks are still open.
type StaffProgress struct {
	Open int `json:"open"`
	Done int `json:"done"`
}

// StaffPollInput polls a step's tasks; Final also refetches results of
// tasks done earlier whose customers still have none.
type StaffPollInput struct {
	StaffInput
	Final bool `json:"final,omitempty"`
}

// StaffPoll asks WeCom which staff members have sent their tasks
// (get_groupmsg_task) and, for those, each customer's result
// (get_groupmsg_send_result). Briefs are acknowledged by callback, so for
// them it only counts.
func (a *StaffActivities) StaffPoll(ctx context.Context, in StaffPollInput) (StaffProgress, error) {
	var res StaffProgress
	st, err := a.staffStore()
	if err != nil {
		return res, err
	}
	tasks, err := staffTasksOf(ctx, st, in.StepInput)
	if err != nil {
		return res, err
	}
	api := a.staffAPI()
	var mu sync.Mutex
	var firstErr error
	var failed, asked int
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, t := range tasks {
		if t.State != store.StaffTaskCreated {
			continue
		}
		if !t.DoneAt.IsZero() {
			mu.Lock() // the pollers below count into res too
			res.Done++
			mu.Unlock()
			if in.Final && t.Kind == canvases.StaffToCustomers && api != nil {
				if ids, err := st.StaffTaskExternalIDs(ctx, t.StaffTaskKey); err == nil && len(ids) > 0 {
					_ = a.fetchResults(ctx, st, api, t)
				}
			}
			continue
		}
		if t.Kind == canvases.StaffToStaff || api == nil {
			mu.Lock()
			res.Open++
			mu.Unlock()
			continue
		}
		asked++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			done, err := a.pollTask(ctx, st, api, t)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed++
				res.Open++
				if firstErr == nil {
					firstErr = err
				}
			case done:
				res.Done++
			default:
				res.Open++
			}
		}()
		activity.RecordHeartbeat(ctx, t.Staff)
	}
	wg.Wait()
	if asked > 0 && failed == asked {
		// Not one answer: WeCom is down or refusing. Try again (a missed
		// poll is only a later one).
		return res, firstErr
	}
	if firstErr != nil {
		a.logger().Warn("staff poll: some tasks could not be read", "run", in.RunID, "step", in.StepID, "failed", failed, "err", firstErr)
	}
	return res, nil
}

// pollTask reads one task's status; true when its staff member has sent it.
func (a *StaffActivities) pollTask(ctx context.Context, st StaffTaskStore, api StaffAPI, t store.StaffTask) (bool, error) {
	staff, err := api.MassTaskStaff(ctx, t.Ref)
	if err != nil {
		return false, err
	}
	var sentAt time.Time
	sent := false
	for _, s := range staff {
		if strings.EqualFold(s.UserID, t.Staff) && s.Sent {
			sent, sentAt = true, s.SendTime
		}
	}
	if !sent {
		return false, nil
	}
	if err := a.fetchResults(ctx, st, api, t); err != nil {
		return false, err
	}
	if sentAt.IsZero() {
		sentAt = a.now()
	}
	return true, st.MarkStaffDone(ctx, t.StaffTaskKey, sentAt)
}

func (a *StaffActivities) fetchResults(ctx context.Context, st StaffTaskStore, api StaffAPI, t store.StaffTask) error {
	results, err := api.MassTaskResults(ctx, t.Ref, t.Staff)
	if err != nil {
		return err
	}
	out := make([]store.StaffCustomerResult, 0, len(results))
	for _, r := range results {
		status := ""
		switch r.Status {
		case wecom.MassSent:
			status = store.CustomerSent
		case wecom.MassNotFriend:
			status = store.CustomerNotFriend
		case wecom.MassOverQuota:
			status = store.CustomerOverQuota
		default:
			continue // not sent (yet): decided when the step finishes
		}
		out = append(out, store.StaffCustomerResult{ExternalUserID: r.ExternalUserID, Status: status, SendTime: r.SendTime})
	}
	return st.RecordStaffResults(ctx, t.StaffTaskKey, out)
}
