package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// StaffRemindInput is one reminder slot of the schedule.
type StaffRemindInput struct {
	StaffInput
	At time.Time `json:"at"`
}

// StaffReminded counts one reminder slot's outcome.
type StaffReminded struct {
	Reminded int `json:"reminded"`
	Capped   int `json:"capped"` // three reminders in 24 hours already
	Failed   int `json:"failed"`
}

// StaffRemind reminds the staff members whose tasks are still open: WeCom's
// remind_groupmsg_send for mass-send tasks, a second app message for
// briefs. Each slot is recorded on the task before the call (a retried
// attempt skips it), and at most three reminders per task fall in any 24
// hours, the limit WeCom enforces.
func (a *StaffActivities) StaffRemind(ctx context.Context, in StaffRemindInput) (StaffReminded, error) {
	var res StaffReminded
	cp, step, err := a.planStep(ctx, in.StepInput)
	if err != nil {
		return res, err
	}
	st, err := a.staffStore()
	if err != nil {
		return res, err
	}
	tasks, err := staffTasksOf(ctx, st, in.StepInput)
	if err != nil {
		return res, err
	}
	api := a.staffAPI()
	if api == nil {
		return res, nil
	}
	var retry error
	var briefs []channels.Delivery
	briefKeys := map[string]store.StaffTaskKey{}
	for _, t := range tasks {
		if t.State != store.StaffTaskCreated || !t.DoneAt.IsZero() {
			continue
		}
		added, recent, err := st.AddStaffReminder(ctx, t.StaffTaskKey, in.At)
		if err != nil {
			return res, err
		}
		if !added {
			if recent >= 3 {
				res.Capped++
			}
			continue
		}
		if t.Kind == canvases.StaffToStaff {
			msg, err := a.staffText(cp, step.StaffTask, t)
			if err != nil {
				return res, err
			}
			text := fmt.Sprintf("提醒：请在 %s 前确认总部通知「%s」（点击卡片上的“确认收到”）。", in.Schedule.Deadline.In(a.zone()).Format("01-02 15:04"), summarize(msg.Text, 40))
			briefs = append(briefs, channels.Delivery{Recipient: channels.Recipient{UserID: t.Staff, Address: t.Staff}, Message: &canvases.Message{Text: text}})
			briefKeys[t.Staff] = t.StaffTaskKey
			continue
		}
		err = api.RemindMassTask(ctx, t.Ref)
		if err == nil {
			res.Reminded++
			continue
		}
		if rerr := st.RemoveStaffReminder(ctx, t.StaffTaskKey, in.At); rerr != nil {
			return res, rerr
		}
		switch ce := channels.Classify(err); {
		case ce.Reason == channels.ReasonOverQuota:
			res.Capped++
		case ce.Class == channels.Permanent:
			res.Failed++
			a.logger().Warn("staff reminder refused", "run", in.RunID, "step", in.StepID, "staff", t.Staff, "reason", ce.Reason, "errcode", ce.Code)
		default:
			if retry == nil {
				retry = temporal.NewApplicationErrorWithOptions("remind "+t.Staff+": "+ce.Error(), string(ce.Class), temporal.ApplicationErrorOptions{NextRetryDelay: ce.RetryAfter})
			}
		}
	}
	if len(briefs) > 0 {
		sent, err := a.appMessages(ctx, in.StepInput, "remind-"+in.At.UTC().Format("20060102T1504"), briefs)
		for to, k := range briefKeys {
			if sent[to] {
				res.Reminded++
			} else if rerr := st.RemoveStaffReminder(ctx, k, in.At); rerr != nil {
				return res, rerr
			}
		}
		if err != nil && retry == nil {
			retry = err
		}
	}
	return res, retry
}
