package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// StaffAssign reads the cohort page by page and records who does what: for
// to: customers, each customer under their owner (left out, with the reason,
// when they have no owner, no external userid, or removed the owner); for
// to: staff, each member under their WeCom userid. Then one task row per
// staff member (and per 10,000 customers).
func (a *StaffActivities) StaffAssign(ctx context.Context, in StepInput) (StaffSchedule, error) {
	cp, step, err := a.planStep(ctx, in)
	if err != nil {
		return StaffSchedule{}, err
	}
	st, err := a.staffStore()
	if err != nil {
		return StaffSchedule{}, err
	}
	task := step.StaffTask
	if task == nil {
		return StaffSchedule{}, temporal.NewNonRetryableApplicationError("step "+step.ID+" is not a staff_task", "PlanMismatch", nil)
	}
	now := in.Now
	if now.IsZero() {
		now = a.now()
	}
	loc := a.zone()
	sched := StaffSchedule{Kind: task.To, CreatedAt: now, PollEvery: defaultStaffPoll, LateWindow: defaultStaffLate}
	if sched.Kind == "" {
		sched.Kind = canvases.StaffToCustomers
	}
	if api := a.staffAPI(); api != nil {
		sched.Tracked = true
		if s := api.Settings(); s.PollInterval > 0 {
			sched.PollEvery, sched.LateWindow = s.PollInterval, s.LateWindow
		}
	}
	sched.Deadline = staffDeadline(task, now, loc)
	sched.Reminders = staffReminders(task, now, sched.Deadline, loc)
	// Cohorts that reach the step at different times (branches meeting at
	// it) each get their own tasks.
	scope, err := st.StaffScope(ctx, in.RunID, in.StepID, in.Cohort.ID)
	if err != nil {
		return StaffSchedule{}, err
	}

	var cur pageCursor
	err = a.eachPage(ctx, cp, in, &cur, func(p store.Page) error {
		rows, err := a.Engine.Store.Profiles(ctx, p.Members)
		if err != nil {
			return err
		}
		out := make([]store.StaffCustomer, 0, len(rows))
		var pairs []channels.ContactPair
		for _, r := range rows {
			var doc struct {
				Owner    string `json:"owner"`
				External string `json:"wecom_external_userid"`
				UserID   string `json:"wecom_userid"`
			}
			_ = json.Unmarshal(r.Doc, &doc)
			c := store.StaffCustomer{Cohort: scope, UID: r.UID, Status: store.CustomerAssigned}
			switch {
			case sched.Kind == canvases.StaffToStaff && doc.UserID == "":
				c.Status = store.CustomerNoAddress
			case sched.Kind == canvases.StaffToStaff:
				c.Staff = doc.UserID
			case doc.Owner == "":
				c.Status = store.CustomerNoOwner
			case doc.External == "" && sched.Tracked:
				c.Staff, c.Status = doc.Owner, store.CustomerNoAddress
			case doc.External == "":
				// The outbox shows what the owner would be asked to do.
				c.Staff = doc.Owner
			default:
				c.Staff, c.ExternalUserID = doc.Owner, doc.External
				pairs = append(pairs, channels.ContactPair{Staff: doc.Owner, ExternalUserID: doc.External})
			}
			out = append(out, c)
		}
		if len(pairs) > 0 {
			sc, err := st.ScreenContacts(ctx, pairs, now)
			if err != nil {
				return err
			}
			for i := range out {
				if sc.Unreachable[channels.ContactPair{Staff: out[i].Staff, ExternalUserID: out[i].ExternalUserID}] {
					out[i].Status = store.CustomerRemoved
				}
			}
		}
		return st.AssignStaffCustomers(ctx, in.RunID, in.StepID, out)
	})
	if err != nil {
		return StaffSchedule{}, err
	}
	if err := st.SplitStaffParts(ctx, in.RunID, in.StepID, scope, maxTaskCustomers); err != nil {
		return StaffSchedule{}, err
	}
	all, err := st.StaffAssignments(ctx, in.RunID, in.StepID)
	if err != nil {
		return StaffSchedule{}, err
	}
	var assigned []store.StaffAssignment
	for _, as := range all {
		if as.Cohort == scope {
			assigned = append(assigned, as)
		}
	}
	ids := make([]string, 0, len(assigned))
	for _, as := range assigned {
		if as.Part == 0 {
			ids = append(ids, as.Staff)
		}
	}
	directory, err := a.Engine.Store.StaffByIDs(ctx, ids)
	if err != nil {
		return StaffSchedule{}, err
	}
	tasks := make([]store.StaffTask, 0, len(assigned))
	for _, as := range assigned {
		m := directory[as.Staff]
		name := m.Name
		if name == "" {
			name = as.Staff
		}
		tasks = append(tasks, store.StaffTask{
			StaffTaskKey: store.StaffTaskKey{RunID: in.RunID, StepID: in.StepID, Cohort: scope, Staff: as.Staff, Part: as.Part},
			CanvasID:     in.CanvasID, Kind: sched.Kind, Customers: as.Customers,
			Name: name, Grid: m.Grid, Leader: m.Leader, CreatedAt: now, Deadline: sched.Deadline,
		})
		sched.Customers += int64(as.Customers)
	}
	sched.Tasks = len(tasks)
	return sched, st.EnsureStaffTasks(ctx, tasks)
}

func (a *StaffActivities) zone() *time.Location {
	if loc, err := canvases.LoadLocation(a.Engine.Compiler.Options().Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// nextClock is the first HH:MM in loc strictly after t.
func nextClock(clock string, t time.Time, loc *time.Location) time.Time {
	hh, mm := 0, 0
	fmt.Sscanf(clock, "%d:%d", &hh, &mm)
	local := t.In(loc)
	at := time.Date(local.Year(), local.Month(), local.Day(), hh, mm, 0, 0, loc)
	if !at.After(t) {
		at = time.Date(local.Year(), local.Month(), local.Day()+1, hh, mm, 0, 0, loc)
	}
	return at
}

// staffDeadline: a duration after creation, or the next HH:MM.
func staffDeadline(t *canvases.StaffTask, now time.Time, loc *time.Location) time.Time {
	switch {
	case t.DeadlineAt != "":
		return nextClock(t.DeadlineAt, now, loc)
	case t.Deadline > 0:
		return now.Add(t.Deadline.Std())
	}
	return now.Add(24 * time.Hour)
}

// staffReminders lists the reminder times before the deadline: offsets
// from creation, and every occurrence of a time of day. A reminder that
// would be the fourth within 24 hours is dropped: WeCom refuses it.
func staffReminders(t *canvases.StaffTask, now, deadline time.Time, loc *time.Location) []time.Time {
	var at []time.Time
	for _, r := range t.Remind {
		if len(r) == 5 && r[2] == ':' {
			for x := nextClock(r, now, loc); x.Before(deadline); x = nextClock(r, x, loc) {
				at = append(at, x)
			}
			continue
		}
		d, err := canvases.ParseDuration(r)
		if err != nil {
			continue
		}
		if x := now.Add(d.Std()); x.After(now) && x.Before(deadline) {
			at = append(at, x)
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	var out []time.Time
	for _, x := range at {
		if len(out) > 0 && out[len(out)-1].Equal(x) {
			continue
		}
		recent := 0
		for _, y := range out {
			if x.Sub(y) < 24*time.Hour {
				recent++
			}
		}
		if recent < 3 {
			out = append(out, x)
		}
	}
	return out
}
