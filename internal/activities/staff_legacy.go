package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// StaffTask is the staff_task step as runs started before the staff SOP
// loop ran it: one outbox record per owner, nothing tracked. It stays
// registered so those runs replay and finish; new runs use StaffAssign and
// the StaffTaskLoop workflow.
func (a *StaffActivities) StaffTask(ctx context.Context, in StepInput) (int64, error) {
	cp, step, err := a.planStep(ctx, in)
	if err != nil {
		return 0, err
	}
	counts := map[string]int64{}
	var cur pageCursor
	err = a.eachPage(ctx, cp, in, &cur, func(p store.Page) error {
		rows, err := a.Engine.Store.Profiles(ctx, p.Members)
		if err != nil {
			return err
		}
		for _, r := range rows {
			var doc struct {
				Owner string `json:"owner"`
			}
			_ = json.Unmarshal(r.Doc, &doc)
			if step.StaffTask.To == canvases.StaffToStaff {
				counts[r.ID]++
			} else if doc.Owner != "" {
				counts[doc.Owner]++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	staffIDs := sortedKeys(counts)
	staff, err := a.Engine.Store.StaffByIDs(ctx, staffIDs)
	if err != nil {
		return 0, err
	}
	env := a.Engine.Compiler.Env()
	var records []channels.OutboxRecord
	cache := newTemplateCache()
	for _, id := range staffIDs {
		member := staff[id]
		member.UserID = id
		taskDoc := map[string]any{"customers": counts[id], "deadline": time.Time{}}
		r := &renderer{cache: cache,
			data: map[string]any{"staff": env.Normalize("staff", staffDoc(member)), "task": taskDoc},
			raw:  map[string]any{"staff": staffDoc(member), "task": taskDoc},
		}
		msg, err := r.message(&canvases.Message{Text: step.StaffTask.Text, Description: step.StaffTask.Notice, Attachments: step.StaffTask.Attachments})
		if missingData(err) {
			a.logger().Warn("staff task not recorded: it prints a field this staff member does not have", "run", in.RunID, "step", step.ID, "staff", id, "err", err)
			continue
		}
		if err != nil {
			return 0, temporal.NewNonRetryableApplicationError("staff task text: "+err.Error(), "RenderError", err)
		}
		records = append(records, channels.OutboxRecord{
			CanvasID: in.CanvasID, RunID: fmt.Sprint(in.RunID), StepID: step.ID, Channel: "staff_task",
			Recipient: channels.Recipient{UserID: id, Address: id}, Message: *msg, At: a.now(),
		})
	}
	// One record per staff member and step: a retry rewrites nothing twice
	// because the run's step is recorded once the activity completes.
	if err := a.Engine.Store.WriteOutbox(ctx, records); err != nil {
		return 0, err
	}
	return int64(len(records)), nil
}
