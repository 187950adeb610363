package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/store"
)

// OutboxStore records messages the outbox stands in for: staff tasks and
// briefs when WeCom is not configured.
type OutboxStore interface {
	WriteOutbox(ctx context.Context, records []channels.OutboxRecord) error
}

// sendBrief sends a staff brief as a template card with a confirm button.
// WeCom's duplicate check drops a resend of the same card, so an ambiguous
// answer is retried rather than looked up.
func (d *dispatch) sendBrief(ctx context.Context, t store.StaffTask) error {
	a, st := d.a, d.st
	msg, err := d.text(t)
	if missingData(err) {
		d.res.Failed++
		return a.settleMissingData(ctx, st, t, err)
	}
	if err != nil {
		return err
	}
	title := d.cp.plan.Name
	if title == "" {
		title = d.cp.plan.ID
	}
	id := briefTaskID(t.StaffTaskKey)
	err = d.api.SendTemplateCard(ctx, t.Staff, wecom.TemplateCard{TaskID: id, Title: title, Description: msg.Text, ButtonText: "确认收到", ButtonKey: "ack"})
	if err == nil {
		d.res.Created++
		if err := st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskCreated, Ref: id, At: d.in.Schedule.CreatedAt}); err != nil {
			return err
		}
		return st.MarkStaffNotified(ctx, []store.StaffTaskKey{t.StaffTaskKey}, d.in.Schedule.CreatedAt)
	}
	if ce := channels.Classify(err); ce.Class == channels.Permanent {
		d.res.Failed++
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskFailed, Reason: ce.Reason})
	}
	return temporal.NewApplicationError("template card for "+t.Staff+": "+err.Error(), "BriefNotSent")
}

// notifyStaff sends each staff member with a created task, not yet told,
// an app message about it (one per member, however many parts).
func (d *dispatch) notifyStaff(ctx context.Context) error {
	a, st, in := d.a, d.st, d.in
	if d.task.To == canvases.StaffToStaff {
		return nil // the card is the notice
	}
	tasks, err := staffTasksOf(ctx, st, in.StepInput)
	if err != nil {
		return err
	}
	type member struct {
		first     store.StaffTask
		keys      []store.StaffTaskKey
		customers int
	}
	var order []string
	byStaff := map[string]*member{}
	for _, t := range tasks {
		if t.State != store.StaffTaskCreated || !t.NotifiedAt.IsZero() {
			continue
		}
		m := byStaff[t.Staff]
		if m == nil {
			m = &member{first: t}
			byStaff[t.Staff] = m
			order = append(order, t.Staff)
		}
		m.keys = append(m.keys, t.StaffTaskKey)
		m.customers += t.Customers
	}
	if len(order) == 0 {
		return nil
	}
	var ds []channels.Delivery
	for _, s := range order {
		m := byStaff[s]
		msg, err := d.text(m.first)
		if err != nil {
			return err
		}
		text, err := d.notice(m.first, m.customers, msg.Text)
		if missingData(err) {
			a.logger().Warn("staff notice not sent: it prints a field this staff member does not have", "run", m.first.RunID, "step", m.first.StepID, "staff", s, "err", err)
			continue
		}
		if err != nil {
			return err
		}
		ds = append(ds, channels.Delivery{Recipient: channels.Recipient{UserID: s, Address: s}, Message: &canvases.Message{Text: text}})
	}
	sent, err := a.appMessages(ctx, in.StepInput, "notice", ds)
	var keys []store.StaffTaskKey
	for _, s := range order {
		if sent[s] {
			keys = append(keys, byStaff[s].keys...)
			d.res.Notified++
		}
	}
	if merr := st.MarkStaffNotified(ctx, keys, a.now()); merr != nil {
		return merr
	}
	return err
}

// appMessages sends app messages through the wecom.app channel (pacing and
// WeCom's duplicate check, which makes a retried notice harmless) and
// returns who got theirs. A retryable failure comes back as the error.
func (a *StaffActivities) appMessages(ctx context.Context, in StepInput, kind string, ds []channels.Delivery) (map[string]bool, error) {
	sent := map[string]bool{}
	if len(ds) == 0 {
		return sent, nil
	}
	ch, ok := a.Engine.Channels.Get("wecom.app")
	if !ok {
		return sent, temporal.NewNonRetryableApplicationError("no wecom.app channel", "NoChannel", nil)
	}
	outs, err := ch.Send(ctx, channels.Batch{Key: fmt.Sprintf("%d/%s/%s", in.RunID, in.StepID, kind), CanvasID: in.CanvasID,
		RunID: fmt.Sprint(in.RunID), StepID: in.StepID, Deliveries: ds})
	if err != nil {
		ce := channels.Classify(err)
		if ce.Class == channels.Permanent {
			a.logger().Warn("staff "+kind+" not sent", "run", in.RunID, "step", in.StepID, "reason", ce.Reason, "errcode", ce.Code)
			return sent, nil
		}
		return sent, temporal.NewApplicationErrorWithOptions("staff "+kind+": "+ce.Error(), string(ce.Class), temporal.ApplicationErrorOptions{NextRetryDelay: ce.RetryAfter})
	}
	var retry error
	for i, o := range outs {
		to := ds[i].Recipient.UserID
		switch {
		case o.Status == channels.Sent:
			sent[to] = true
		case o.Class == channels.RetryNow || o.Class == channels.RetryLater:
			retry = temporal.NewApplicationErrorWithOptions("staff "+kind+" to "+to+": "+o.Reason, string(o.Class), temporal.ApplicationErrorOptions{NextRetryDelay: o.RetryAfter})
		default:
			a.logger().Warn("staff "+kind+" not delivered", "run", in.RunID, "step", in.StepID, "staff", to, "reason", o.Reason)
		}
	}
	return sent, retry
}

// recordTasks is the loop without WeCom: each staff member's task
// (content and notice) is recorded in the outbox, one record per member,
// and nothing is tracked.
func (d *dispatch) recordTasks(ctx context.Context, tasks []store.StaffTask) error {
	a, st, in := d.a, d.st, d.in
	customers := map[string]int{}
	var order []string
	first := map[string]store.StaffTask{}
	for _, t := range tasks {
		if _, ok := first[t.Staff]; !ok {
			first[t.Staff] = t
			order = append(order, t.Staff)
		}
		customers[t.Staff] += t.Customers
	}
	var records []channels.OutboxRecord
	var keys []store.StaffTaskKey
	holes := map[string]error{} // staff members whose task would print a missing field
	for _, s := range order {
		t := first[s]
		if t.State != store.StaffTaskNew {
			continue // recorded by an earlier attempt
		}
		msg, err := d.text(t)
		var notice string
		if err == nil {
			notice, err = d.notice(t, customers[s], msg.Text)
		}
		if missingData(err) {
			holes[s] = err
			continue
		}
		if err != nil {
			return err
		}
		msg.Description = notice
		records = append(records, channels.OutboxRecord{CanvasID: in.CanvasID, RunID: fmt.Sprint(in.RunID), StepID: in.StepID, Channel: "staff_task",
			Recipient: channels.Recipient{UserID: s, Address: s}, Message: *msg, At: a.now()})
	}
	for _, t := range tasks {
		if t.State != store.StaffTaskNew {
			continue
		}
		if err := holes[t.Staff]; err != nil {
			if err := a.settleMissingData(ctx, st, t, err); err != nil {
				return err
			}
			continue
		}
		keys = append(keys, t.StaffTaskKey)
	}
	if err := a.Engine.Store.WriteOutbox(ctx, records); err != nil {
		return err
	}
	for _, k := range keys {
		if err := st.SettleStaffTask(ctx, k, store.StaffTaskSettlement{State: store.StaffTaskRecorded, At: in.Schedule.CreatedAt}); err != nil {
			return err
		}
	}
	return nil
}
