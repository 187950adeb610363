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

// text renders the task's content for one staff member.
func (d *dispatch) text(t store.StaffTask) (*canvases.Message, error) {
	return d.a.staffText(d.cp, d.task, t)
}

// notice renders the notice for one staff member's tasks: how many
// customers, the deadline, and the start of the task's text.
func (d *dispatch) notice(t store.StaffTask, customers int, text string) (string, error) {
	a, task, cp := d.a, d.task, d.cp
	src := task.Notice
	if src == "" {
		if task.To == canvases.StaffToStaff {
			return "", nil
		}
		src = "{{ .staff.name }}，您有一个客户群发任务：{{ .task.customers }} 位客户，请在 {{ .task.deadline | date \"01-02 15:04\" }} 前在企业微信中确认发送。内容：" + summarize(text, 60)
	}
	taskDoc := map[string]any{"customers": customers, "deadline": d.in.Schedule.Deadline.In(a.zone())}
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
	cp, step, err := a.planStep(ctx, in.StepInput)
	if err != nil {
		return StaffDispatched{}, err
	}
	st, err := a.staffStore()
	if err != nil {
		return StaffDispatched{}, err
	}
	d := &dispatch{a: a, st: st, cp: cp, task: step.StaffTask, in: in}
	tasks, err := staffTasksOf(ctx, st, in.StepInput)
	if err != nil {
		return d.res, err
	}
	if !in.Schedule.Tracked {
		return d.res, d.recordTasks(ctx, tasks)
	}
	if d.api = a.staffAPI(); d.api == nil {
		return d.res, temporal.NewNonRetryableApplicationError("WeCom is no longer configured", "WeComUnavailable", nil)
	}
	info := activity.GetInfo(ctx)
	d.attempt = fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt)
	defer heartbeatEvery(ctx, dispatchHeartbeat)()
	var retry error
	for _, t := range tasks {
		var err error
		switch {
		case t.Kind == canvases.StaffToStaff && (t.State == store.StaffTaskNew || t.State == store.StaffTaskPending):
			err = d.sendBrief(ctx, t)
		case t.State == store.StaffTaskPending:
			err = d.resolvePending(ctx, t)
		case t.State == store.StaffTaskNew:
			err = d.createTask(ctx, t)
		}
		if err != nil {
			var fatal *temporal.ApplicationError
			if errors.As(err, &fatal) && fatal.NonRetryable() {
				return d.res, err
			}
			if retry == nil {
				retry = err
			}
		}
		activity.RecordHeartbeat(ctx, t.Staff)
	}
	if err := d.notifyStaff(ctx); err != nil && retry == nil {
		retry = err
	}
	return d.res, retry
}

// dispatch is one StaffDispatch attempt: what creating, adopting, briefing
// and notifying each staff member's task share, and the counts of what it
// did.
type dispatch struct {
	a    *StaffActivities
	st   StaffTaskStore
	api  StaffAPI // nil when the tasks are not tracked (recordTasks)
	cp   *compiledPlan
	task *canvases.StaffTask // the step's
	in   StaffInput
	// attempt names this activity attempt on the rows it marks pending,
	// so a later attempt knows the row was left by another.
	attempt string
	res     StaffDispatched
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
