package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// createTask marks a new row pending, calls add_msg_template and settles.
func (d *dispatch) createTask(ctx context.Context, t store.StaffTask) error {
	a, st := d.a, d.st
	msg, err := d.text(t)
	if missingData(err) {
		d.res.Failed++
		return a.settleMissingData(ctx, st, t, err)
	}
	if err != nil {
		return err
	}
	ids, err := st.StaffTaskExternalIDs(ctx, t.StaffTaskKey)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskFailed, Reason: "no_customers"})
	}
	ok, err := st.MarkStaffTaskPending(ctx, t.StaffTaskKey, d.attempt, a.now())
	if err != nil || !ok {
		return err // !ok: another attempt took it meanwhile
	}
	mt, err := d.api.CreateMassTask(ctx, t.Staff, msg, ids)
	if err == nil {
		d.res.Created++
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskCreated, Ref: mt.MsgID, NotFound: mt.FailList, At: d.in.Schedule.CreatedAt})
	}
	return d.createFailed(ctx, t, err)
}

// settleMissingData fails a staff member's task whose text would print a
// field they do not have: no task with a hole in it.
func (a *StaffActivities) settleMissingData(ctx context.Context, st StaffTaskStore, t store.StaffTask, err error) error {
	a.logger().Warn("staff task not created: its text prints a missing field", "run", t.RunID, "step", t.StepID, "staff", t.Staff, "err", err)
	return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskFailed, Reason: canvases.ReasonMissingData})
}

func (d *dispatch) createFailed(ctx context.Context, t store.StaffTask, err error) error {
	a, st := d.a, d.st
	ce := channels.Classify(err)
	switch ce.Class {
	case channels.Permanent:
		d.res.Failed++
		reason := ce.Reason
		if ce.Code != "" {
			reason += " " + ce.Code
		}
		a.logger().Warn("staff task refused by WeCom", "run", t.RunID, "step", t.StepID, "staff", t.Staff, "reason", ce.Reason, "errcode", ce.Code)
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskFailed, Reason: reason})
	case channels.Ambiguous:
		// The task may exist: the row stays pending for the lookup.
		return temporal.NewApplicationError("add_msg_template for "+t.Staff+": "+ce.Error(), string(ce.Class))
	}
	if err := st.ReleaseStaffTask(ctx, t.StaffTaskKey); err != nil {
		return err
	}
	return temporal.NewApplicationErrorWithOptions("add_msg_template for "+t.Staff+": "+ce.Error(), string(ce.Class), temporal.ApplicationErrorOptions{NextRetryDelay: ce.RetryAfter})
}

// resolvePending decides a row an earlier attempt left pending.
func (d *dispatch) resolvePending(ctx context.Context, t store.StaffTask) error {
	a, st, api := d.a, d.st, d.api
	now := a.now()
	if wait := pendingSettle(api) - now.Sub(t.PendingAt); wait > 0 {
		return temporal.NewApplicationErrorWithOptions("waiting for WeCom to list a task that may exist", "LookupTooEarly", temporal.ApplicationErrorOptions{NextRetryDelay: wait})
	}
	msg, err := d.text(t)
	if err != nil {
		return err
	}
	records, err := api.FindMassTasks(ctx, t.PendingAt.Add(-2*time.Minute), now.Add(time.Minute))
	if err != nil {
		if channels.Classify(err).Class == channels.Permanent {
			// No way to look (permission, old API): do not guess.
			d.res.Unknown++
			return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskUnknown, Reason: "lookup_failed"})
		}
		return err
	}
	var candidates []string
	for _, r := range records {
		if r.Text == msg.Text && r.Attachments == len(msg.Attachments) && r.CreateType == 0 {
			candidates = append(candidates, r.MsgID)
		}
	}
	inUse, err := st.RefsInUse(ctx, candidates)
	if err != nil {
		return err
	}
	var matches []string
	for _, id := range candidates {
		if inUse[id] {
			continue
		}
		staff, err := api.MassTaskStaff(ctx, id)
		if err != nil {
			return err
		}
		for _, s := range staff {
			if strings.EqualFold(s.UserID, t.Staff) {
				matches = append(matches, id)
				break
			}
		}
	}
	switch len(matches) {
	case 0:
		// WeCom has no such task: the earlier call did not create one.
		if err := st.ReleaseStaffTask(ctx, t.StaffTaskKey); err != nil {
			return err
		}
		t.State = store.StaffTaskNew
		return d.createTask(ctx, t)
	case 1:
		d.res.Adopted++
		a.logger().Info("staff task found on WeCom after an interrupted create; adopted", "run", t.RunID, "step", t.StepID, "staff", t.Staff, "msgid", matches[0])
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskCreated, Ref: matches[0], At: d.in.Schedule.CreatedAt})
	}
	d.res.Unknown++
	return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskUnknown, Reason: "ambiguous_lookup"})
}

// briefTaskID is the template card's task_id: stable for the row, so a
// resend after an ambiguous answer is the same card.
func briefTaskID(k store.StaffTaskKey) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%s\x00%s", k.RunID, k.StepID, k.Staff)))
	return fmt.Sprintf("hb_%d_%s", k.RunID, hex.EncodeToString(sum[:8]))
}
