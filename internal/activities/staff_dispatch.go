package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// StaffDispatched counts what StaffDispatch did.
type StaffDispatched struct {
	Created  int `json:"created"`
	Adopted  int `json:"adopted"` // found on WeCom after a crash, not created again
	Failed   int `json:"failed"`
	Unknown  int `json:"unknown"`
	Notified int `json:"notified"`
}

// staffText renders the task's content for one staff member.
func (a *Activities) staffText(cp *compiledPlan, task *canvases.StaffTask, t store.StaffTask) (*canvases.Message, error) {
	r := &renderer{cache: cp.templates, data: map[string]any{"staff": a.staffData(t)}, raw: map[string]any{"staff": staffRaw(t)}}
	msg, err := r.message(&canvases.Message{Text: task.Text, Attachments: task.Attachments})
	if err != nil {
		// A missing field (missingData(err)) is settled by the callers that
		// create a task: that member's task fails with reason missing_data.
		return nil, temporal.NewNonRetryableApplicationError("staff task text: "+err.Error(), "RenderError", err)
	}
	return msg, nil
}

func (a *Activities) staffData(t store.StaffTask) map[string]any {
	return a.Compiler.Env().Normalize("staff", staffRaw(t))
}

func staffRaw(t store.StaffTask) map[string]any {
	return staffDoc(store.Staff{UserID: t.Staff, Name: t.Name, Grid: t.Grid, Leader: t.Leader})
}

// staffNotice renders the notice for one staff member's tasks.
func (a *StaffActivities) staffNotice(cp *compiledPlan, task *canvases.StaffTask, t store.StaffTask, customers int, deadline time.Time, text string) (string, error) {
	src := task.Notice
	if src == "" {
		if task.To == canvases.StaffToStaff {
			return "", nil
		}
		src = "{{ .staff.name }}，您有一个客户群发任务：{{ .task.customers }} 位客户，请在 {{ .task.deadline | date \"01-02 15:04\" }} 前在企业微信中确认发送。内容：" + summarize(text, 60)
	}
	taskDoc := map[string]any{"customers": customers, "deadline": deadline.In(a.zone())}
	r := &renderer{cache: cp.templates,
		data: map[string]any{"staff": a.staffData(t), "task": taskDoc},
		raw:  map[string]any{"staff": staffRaw(t), "task": taskDoc},
	}
	out := r.text(src)
	if r.err != nil {
		return "", temporal.NewNonRetryableApplicationError("staff task notice: "+r.err.Error(), "RenderError", r.err)
	}
	return out, nil
}

func summarize(s string, n int) string {
	s = strings.ReplaceAll(s, "{{", "{ {") // the summary is literal text inside a template
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// StaffDispatch creates the step's tasks and tells each staff member.
//
// Creating a mass-send task has no idempotency key at WeCom, so the task
// row goes pending before add_msg_template is called and settles after. A
// row found pending by a later attempt means an earlier one crashed or lost
// the answer: the task may exist. It is looked up (get_groupmsg_list_v2 over
// the minutes around the attempt, same content, this sender per
// get_groupmsg_task, not adopted by another row) and adopted when found;
// created when WeCom certainly has none; marked unknown when the lookup
// cannot decide. So no staff member gets a second task for the same step.
//
// One staff member's failure does not stop the others: a refusal fails
// their row; a transient failure is retried by the next attempt, after the
// rest are done.
func (a *StaffActivities) StaffDispatch(ctx context.Context, in StaffInput) (StaffDispatched, error) {
	var res StaffDispatched
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
	if !in.Schedule.Tracked {
		return res, a.recordStaffTasks(ctx, cp, step, in, tasks)
	}
	api := a.staffAPI()
	if api == nil {
		return res, temporal.NewNonRetryableApplicationError("WeCom is no longer configured", "WeComUnavailable", nil)
	}
	info := activity.GetInfo(ctx)
	attempt := fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt)
	defer heartbeatEvery(ctx, dispatchHeartbeat)()
	var retry error
	for _, t := range tasks {
		var err error
		switch {
		case t.Kind == canvases.StaffToStaff && (t.State == store.StaffTaskNew || t.State == store.StaffTaskPending):
			err = a.sendBrief(ctx, st, api, cp, step, in, t, &res)
		case t.State == store.StaffTaskPending:
			err = a.resolvePending(ctx, st, api, cp, step, in, t, attempt, &res)
		case t.State == store.StaffTaskNew:
			err = a.createTask(ctx, st, api, cp, step, in, t, attempt, &res)
		}
		if err != nil {
			var fatal *temporal.ApplicationError
			if errors.As(err, &fatal) && fatal.NonRetryable() {
				return res, err
			}
			if retry == nil {
				retry = err
			}
		}
		activity.RecordHeartbeat(ctx, t.Staff)
	}
	if err := a.notifyStaff(ctx, st, cp, step, in, &res); err != nil && retry == nil {
		retry = err
	}
	return res, retry
}

// heartbeatEvery heartbeats until the returned stop is called.
func heartbeatEvery(ctx context.Context, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}
