package activities

import (
	"context"
	"fmt"
	"strings"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// StaffEscalate tells each leader, in one app message, which of their staff
// members have not done the task by the deadline. Tasks are marked
// escalated after the message, so a retry within WeCom's duplicate-check
// interval is dropped by WeCom rather than repeated.
func (a *StaffActivities) StaffEscalate(ctx context.Context, in StaffInput) (int, error) {
	cp, step, err := a.planStep(ctx, in.StepInput)
	if err != nil {
		return 0, err
	}
	if step.StaffTask.EscalateTo == "none" {
		return 0, nil
	}
	st, err := a.staffStore()
	if err != nil {
		return 0, err
	}
	tasks, err := staffTasksOf(ctx, st, in.StepInput)
	if err != nil {
		return 0, err
	}
	type line struct {
		name      string
		customers int
	}
	byLeader := map[string][]line{}
	keys := map[string][]store.StaffTaskKey{}
	var leaders []string
	seen := map[string]int{} // staff → index in their leader's lines (parts add up)
	for _, t := range tasks {
		if t.State != store.StaffTaskCreated || !t.DoneAt.IsZero() || !t.EscalatedAt.IsZero() {
			continue
		}
		if t.Leader == "" {
			a.logger().Info("staff task not done and no leader to tell", "run", in.RunID, "step", in.StepID, "staff", t.Staff)
			continue
		}
		if _, ok := byLeader[t.Leader]; !ok {
			leaders = append(leaders, t.Leader)
		}
		if i, ok := seen[t.Staff]; ok {
			byLeader[t.Leader][i].customers += t.Customers
		} else {
			seen[t.Staff] = len(byLeader[t.Leader])
			byLeader[t.Leader] = append(byLeader[t.Leader], line{t.Name, t.Customers})
		}
		keys[t.Leader] = append(keys[t.Leader], t.StaffTaskKey)
	}
	if len(leaders) == 0 {
		return 0, nil
	}
	title := cp.plan.Name
	if title == "" {
		title = cp.plan.ID
	}
	deadline := in.Schedule.Deadline.In(a.zone()).Format("01-02 15:04")
	var ds []channels.Delivery
	for _, l := range leaders {
		var b strings.Builder
		if step.StaffTask.To == canvases.StaffToStaff {
			fmt.Fprintf(&b, "【%s】截至 %s，以下成员尚未确认：", title, deadline)
			for i, x := range byLeader[l] {
				if i > 0 {
					b.WriteString("、")
				}
				b.WriteString(x.name)
			}
		} else {
			fmt.Fprintf(&b, "【%s】截至 %s，以下成员的客户群发任务未完成：", title, deadline)
			for _, x := range byLeader[l] {
				fmt.Fprintf(&b, "\n%s：%d 位客户未发送", x.name, x.customers)
			}
		}
		ds = append(ds, channels.Delivery{Recipient: channels.Recipient{UserID: l, Address: l}, Message: &canvases.Message{Text: b.String()}})
	}
	sent, err := a.appMessages(ctx, in.StepInput, "escalate", ds)
	n := 0
	var done []store.StaffTaskKey
	for _, l := range leaders {
		if sent[l] {
			n++
			done = append(done, keys[l]...)
		}
	}
	if merr := st.MarkStaffEscalated(ctx, done, a.now()); merr != nil {
		return n, merr
	}
	return n, err
}
