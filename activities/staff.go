package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/channels"
	"github.com/huabu/huabu/channels/wecom"
	"github.com/huabu/huabu/store"
)

// The staff SOP loop's activities. The StaffTaskLoop workflow calls them in
// order: StaffAssign groups the cohort by staff member into task rows;
// StaffDispatch creates one WeCom mass-send task per staff member (or sends
// the staff brief as a template card) and notifies them; StaffPoll and
// StaffRemind run between workflow timers until the deadline;
// StaffEscalate tells leaders what is not done; StaffFinish records on
// time / late / not done. Every step reads and writes the staff task ledger
// (store.StaffTask rows), so each activity may be retried.

// StaffStore is the persistence the staff loop needs; *store.SQLite has it.
// It is separate from Store so the engine's interface stays as it was; the
// activities find it on the same store value.
type StaffStore interface {
	AssignStaffCustomers(ctx context.Context, runID int64, stepID string, rows []store.StaffCustomer) error
	SplitStaffParts(ctx context.Context, runID int64, stepID string, max int) error
	StaffAssignments(ctx context.Context, runID int64, stepID string) ([]store.StaffAssignment, error)
	EnsureStaffTasks(ctx context.Context, tasks []store.StaffTask) error
	StaffTasks(ctx context.Context, runID int64, stepID string) ([]store.StaffTask, error)
	StaffScope(ctx context.Context, runID int64, stepID string, cohort int64) (int64, error)
	StaffTaskExternalIDs(ctx context.Context, k store.StaffTaskKey) ([]string, error)
	MarkStaffTaskPending(ctx context.Context, k store.StaffTaskKey, attempt string, at time.Time) (bool, error)
	ReleaseStaffTask(ctx context.Context, k store.StaffTaskKey) error
	SettleStaffTask(ctx context.Context, k store.StaffTaskKey, st store.StaffTaskSettlement) error
	RefsInUse(ctx context.Context, refs []string) (map[string]bool, error)
	MarkStaffNotified(ctx context.Context, keys []store.StaffTaskKey, at time.Time) error
	MarkStaffEscalated(ctx context.Context, keys []store.StaffTaskKey, at time.Time) error
	MarkStaffDone(ctx context.Context, k store.StaffTaskKey, at time.Time) error
	AddStaffReminder(ctx context.Context, k store.StaffTaskKey, at time.Time) (bool, int, error)
	RemoveStaffReminder(ctx context.Context, k store.StaffTaskKey, at time.Time) error
	RecordStaffResults(ctx context.Context, k store.StaffTaskKey, results []store.StaffCustomerResult) error
	FinishStaffTasks(ctx context.Context, runID int64, stepID string, cohort int64, tracked bool) error
	StaffCustomerCounts(ctx context.Context, runID int64, stepID string, cohort int64) (map[string]int64, error)
	ScreenContacts(ctx context.Context, pairs []channels.ContactPair, now time.Time) (channels.ContactScreen, error)
}

// StaffAPI is the WeCom API the loop calls; *wecom.API has it.
type StaffAPI interface {
	Settings() wecom.StaffSettings
	CreateMassTask(ctx context.Context, sender string, msg *canvases.Message, externalIDs []string) (wecom.MassTask, error)
	FindMassTasks(ctx context.Context, from, to time.Time) ([]wecom.MassTaskRecord, error)
	MassTaskStaff(ctx context.Context, msgID string) ([]wecom.MassTaskStaff, error)
	MassTaskResults(ctx context.Context, msgID, userID string) ([]wecom.MassTaskResult, error)
	RemindMassTask(ctx context.Context, msgID string) error
	SendTemplateCard(ctx context.Context, userID string, card wecom.TemplateCard) error
}

// Defaults when WeCom is not configured (nothing is polled then anyway).
const (
	defaultStaffPoll = 15 * time.Minute
	defaultStaffLate = 6 * time.Hour
	maxTaskCustomers = 10000 // add_msg_template's external_userid limit
	// listingDelay is how long after creating a task get_groupmsg_list_v2
	// is trusted to list it.
	listingDelay = 2 * time.Second
	// dispatchHeartbeat is how often StaffDispatch heartbeats, whatever it
	// is waiting for, so a worker that dies is noticed within the
	// activity's heartbeat timeout.
	dispatchHeartbeat = 2 * time.Second
)

// pendingSettle is how old a pending row must be before its lookup can
// decide. The attempt that marked it may still be alive (its heartbeat
// lost, not its process): its create call reaches WeCom, if ever, within
// four call timeouts (token, a create refused for an expired token, token
// again, create). Only after that, and after the listing caught up, does
// "not on WeCom" mean "never created".
func pendingSettle(api StaffAPI) time.Duration {
	call := api.Settings().CallTimeout
	if call <= 0 {
		call = 10 * time.Second
	}
	return 4*call + listingDelay
}

func (a *Activities) staffStore() (StaffStore, error) {
	if a.Staff == nil {
		return nil, temporal.NewNonRetryableApplicationError("the activities were built without a staff task ledger (Activities.Staff)", "StaffStoreUnavailable", nil)
	}
	return a.Staff, nil
}

// staffAPI is the WeCom client the app passed in, or nil when WeCom is
// not configured (the outbox stands in, and nothing is tracked).
func (a *Activities) staffAPI() StaffAPI {
	if a.WeCom == nil {
		return nil
	}
	return a.WeCom
}

// StaffSchedule is decided once per step execution and kept by the
// workflow: when the task is due and when to remind.
type StaffSchedule struct {
	Kind       string        `json:"kind"`    // customers | staff
	Tracked    bool          `json:"tracked"` // WeCom is configured: results are polled
	CreatedAt  time.Time     `json:"created_at"`
	Deadline   time.Time     `json:"deadline"`
	Reminders  []time.Time   `json:"reminders,omitempty"`
	PollEvery  time.Duration `json:"poll_every"`
	LateWindow time.Duration `json:"late_window"`
	Tasks      int           `json:"tasks"`
	Customers  int64         `json:"customers"`
}

// staffTasksOf lists the tasks of one step execution: its cohort's (see
// store.StaffScope), not those of other cohorts that reached the step.
func staffTasksOf(ctx context.Context, st StaffStore, in StepInput) ([]store.StaffTask, error) {
	scope, err := st.StaffScope(ctx, in.RunID, in.StepID, in.Cohort.ID)
	if err != nil {
		return nil, err
	}
	return staffTasksIn(ctx, st, in, scope)
}

// staffTasksIn lists the tasks of the step execution keyed by scope.
func staffTasksIn(ctx context.Context, st StaffStore, in StepInput, scope int64) ([]store.StaffTask, error) {
	all, err := st.StaffTasks(ctx, in.RunID, in.StepID)
	if err != nil {
		return nil, err
	}
	var out []store.StaffTask
	for _, t := range all {
		if t.Cohort == scope {
			out = append(out, t)
		}
	}
	return out, nil
}

// StaffInput names a step execution with its schedule.
type StaffInput struct {
	StepInput
	Schedule StaffSchedule `json:"schedule"`
}

// StaffAssign reads the cohort page by page and records who does what: for
// to: customers, each customer under their owner (left out, with the reason,
// when they have no owner, no external userid, or removed the owner); for
// to: staff, each member under their WeCom userid. Then one task row per
// staff member (and per 10,000 customers).
func (a *Activities) StaffAssign(ctx context.Context, in StepInput) (StaffSchedule, error) {
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
		rows, err := a.Store.Profiles(ctx, p.Members)
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
	if err := st.SplitStaffParts(ctx, in.RunID, in.StepID, maxTaskCustomers); err != nil {
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
	directory, err := a.Store.StaffByIDs(ctx, ids)
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

func (a *Activities) zone() *time.Location {
	if loc, err := canvases.LoadLocation(a.Compiler.Options().Timezone); err == nil {
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
func (a *Activities) staffNotice(cp *compiledPlan, task *canvases.StaffTask, t store.StaffTask, customers int, deadline time.Time, text string) (string, error) {
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
func (a *Activities) StaffDispatch(ctx context.Context, in StaffInput) (StaffDispatched, error) {
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

// createTask marks a new row pending, calls add_msg_template and settles.
func (a *Activities) createTask(ctx context.Context, st StaffStore, api StaffAPI, cp *compiledPlan, step *canvases.Step, in StaffInput, t store.StaffTask, attempt string, res *StaffDispatched) error {
	msg, err := a.staffText(cp, step.StaffTask, t)
	if missingData(err) {
		res.Failed++
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
	ok, err := st.MarkStaffTaskPending(ctx, t.StaffTaskKey, attempt, a.now())
	if err != nil || !ok {
		return err // !ok: another attempt took it meanwhile
	}
	mt, err := api.CreateMassTask(ctx, t.Staff, msg, ids)
	if err == nil {
		res.Created++
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskCreated, Ref: mt.MsgID, NotFound: mt.FailList, At: in.Schedule.CreatedAt})
	}
	return a.createFailed(ctx, st, t, err, res)
}

// settleMissingData fails a staff member's task whose text would print a
// field they do not have: no task with a hole in it.
func (a *Activities) settleMissingData(ctx context.Context, st StaffStore, t store.StaffTask, err error) error {
	a.logger().Warn("staff task not created: its text prints a missing field", "run", t.RunID, "step", t.StepID, "staff", t.Staff, "err", err)
	return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskFailed, Reason: canvases.ReasonMissingData})
}

func (a *Activities) createFailed(ctx context.Context, st StaffStore, t store.StaffTask, err error, res *StaffDispatched) error {
	ce := channels.Classify(err)
	switch ce.Class {
	case channels.Permanent:
		res.Failed++
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
func (a *Activities) resolvePending(ctx context.Context, st StaffStore, api StaffAPI, cp *compiledPlan, step *canvases.Step, in StaffInput, t store.StaffTask, attempt string, res *StaffDispatched) error {
	now := a.now()
	if wait := pendingSettle(api) - now.Sub(t.PendingAt); wait > 0 {
		return temporal.NewApplicationErrorWithOptions("waiting for WeCom to list a task that may exist", "LookupTooEarly", temporal.ApplicationErrorOptions{NextRetryDelay: wait})
	}
	msg, err := a.staffText(cp, step.StaffTask, t)
	if err != nil {
		return err
	}
	records, err := api.FindMassTasks(ctx, t.PendingAt.Add(-2*time.Minute), now.Add(time.Minute))
	if err != nil {
		if channels.Classify(err).Class == channels.Permanent {
			// No way to look (permission, old API): do not guess.
			res.Unknown++
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
		return a.createTask(ctx, st, api, cp, step, in, t, attempt, res)
	case 1:
		res.Adopted++
		a.logger().Info("staff task found on WeCom after an interrupted create; adopted", "run", t.RunID, "step", t.StepID, "staff", t.Staff, "msgid", matches[0])
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskCreated, Ref: matches[0], At: in.Schedule.CreatedAt})
	}
	res.Unknown++
	return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskUnknown, Reason: "ambiguous_lookup"})
}

// briefTaskID is the template card's task_id: stable for the row, so a
// resend after an ambiguous answer is the same card.
func briefTaskID(k store.StaffTaskKey) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%s\x00%s", k.RunID, k.StepID, k.Staff)))
	return fmt.Sprintf("hb_%d_%s", k.RunID, hex.EncodeToString(sum[:8]))
}

// sendBrief sends a staff brief as a template card with a confirm button.
// WeCom's duplicate check drops a resend of the same card, so an ambiguous
// answer is retried rather than looked up.
func (a *Activities) sendBrief(ctx context.Context, st StaffStore, api StaffAPI, cp *compiledPlan, step *canvases.Step, in StaffInput, t store.StaffTask, res *StaffDispatched) error {
	msg, err := a.staffText(cp, step.StaffTask, t)
	if missingData(err) {
		res.Failed++
		return a.settleMissingData(ctx, st, t, err)
	}
	if err != nil {
		return err
	}
	title := cp.plan.Name
	if title == "" {
		title = cp.plan.ID
	}
	id := briefTaskID(t.StaffTaskKey)
	err = api.SendTemplateCard(ctx, t.Staff, wecom.TemplateCard{TaskID: id, Title: title, Description: msg.Text, ButtonText: "确认收到", ButtonKey: "ack"})
	if err == nil {
		res.Created++
		if err := st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskCreated, Ref: id, At: in.Schedule.CreatedAt}); err != nil {
			return err
		}
		return st.MarkStaffNotified(ctx, []store.StaffTaskKey{t.StaffTaskKey}, in.Schedule.CreatedAt)
	}
	if ce := channels.Classify(err); ce.Class == channels.Permanent {
		res.Failed++
		return st.SettleStaffTask(ctx, t.StaffTaskKey, store.StaffTaskSettlement{State: store.StaffTaskFailed, Reason: ce.Reason})
	}
	return temporal.NewApplicationError("template card for "+t.Staff+": "+err.Error(), "BriefNotSent")
}

// notifyStaff sends each staff member with a created task, not yet told,
// an app message about it (one per member, however many parts).
func (a *Activities) notifyStaff(ctx context.Context, st StaffStore, cp *compiledPlan, step *canvases.Step, in StaffInput, res *StaffDispatched) error {
	if step.StaffTask.To == canvases.StaffToStaff {
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
		msg, err := a.staffText(cp, step.StaffTask, m.first)
		if err != nil {
			return err
		}
		text, err := a.staffNotice(cp, step.StaffTask, m.first, m.customers, in.Schedule.Deadline, msg.Text)
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
			res.Notified++
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
func (a *Activities) appMessages(ctx context.Context, in StepInput, kind string, ds []channels.Delivery) (map[string]bool, error) {
	sent := map[string]bool{}
	if len(ds) == 0 {
		return sent, nil
	}
	ch, ok := a.Channels.Get("wecom.app")
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

// recordStaffTasks is the loop without WeCom: each staff member's task
// (content and notice) is recorded in the outbox, one record per member,
// and nothing is tracked.
func (a *Activities) recordStaffTasks(ctx context.Context, cp *compiledPlan, step *canvases.Step, in StaffInput, tasks []store.StaffTask) error {
	st, err := a.staffStore()
	if err != nil {
		return err
	}
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
		msg, err := a.staffText(cp, step.StaffTask, t)
		var notice string
		if err == nil {
			notice, err = a.staffNotice(cp, step.StaffTask, t, customers[s], in.Schedule.Deadline, msg.Text)
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
	if err := a.Store.WriteOutbox(ctx, records); err != nil {
		return err
	}
	for _, k := range keys {
		if err := st.SettleStaffTask(ctx, k, store.StaffTaskSettlement{State: store.StaffTaskRecorded, At: in.Schedule.CreatedAt}); err != nil {
			return err
		}
	}
	return nil
}

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
func (a *Activities) StaffPoll(ctx context.Context, in StaffPollInput) (StaffProgress, error) {
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
func (a *Activities) pollTask(ctx context.Context, st StaffStore, api StaffAPI, t store.StaffTask) (bool, error) {
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

func (a *Activities) fetchResults(ctx context.Context, st StaffStore, api StaffAPI, t store.StaffTask) error {
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
func (a *Activities) StaffRemind(ctx context.Context, in StaffRemindInput) (StaffReminded, error) {
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

// StaffEscalate tells each leader, in one app message, which of their staff
// members have not done the task by the deadline. Tasks are marked
// escalated after the message, so a retry within WeCom's duplicate-check
// interval is dropped by WeCom rather than repeated.
func (a *Activities) StaffEscalate(ctx context.Context, in StaffInput) (int, error) {
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
func (a *Activities) StaffFinish(ctx context.Context, in StaffFinishInput) (StaffOutcome, error) {
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

// StaffTask is the staff_task step as runs started before the staff SOP
// loop ran it: one outbox record per owner, nothing tracked. It stays
// registered so those runs replay and finish; new runs use StaffAssign and
// the StaffTaskLoop workflow.
func (a *Activities) StaffTask(ctx context.Context, in StepInput) (int64, error) {
	cp, step, err := a.planStep(ctx, in)
	if err != nil {
		return 0, err
	}
	counts := map[string]int64{}
	var cur pageCursor
	err = a.eachPage(ctx, cp, in, &cur, func(p store.Page) error {
		rows, err := a.Store.Profiles(ctx, p.Members)
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
	staff, err := a.Store.StaffByIDs(ctx, staffIDs)
	if err != nil {
		return 0, err
	}
	env := a.Compiler.Env()
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
	if err := a.Store.WriteOutbox(ctx, records); err != nil {
		return 0, err
	}
	return int64(len(records)), nil
}
