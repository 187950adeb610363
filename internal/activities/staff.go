package activities

import (
	"context"
	"log/slog"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/directory"
	"github.com/huabu/huabu/internal/store"
)

// The staff SOP loop's activities. The StaffTaskLoop workflow calls them in
// order: StaffAssign groups the cohort by staff member into task rows;
// StaffDispatch creates one WeCom mass-send task per staff member (or sends
// the staff brief as a template card) and notifies them; StaffPoll and
// StaffRemind run between workflow timers until the deadline;
// StaffEscalate tells leaders what is not done; StaffFinish records on
// time / late / not done. Every step reads and writes the staff task ledger
// (store.StaffTask rows), so each activity may be retried.

// StaffActivities are the staff_task step's activities (the loop's six and
// the pre-loop stub StaffTask) and the WeCom directory sync they rely on.
// The app builds it with exactly what they need beyond the engine: the
// staff task ledger, the directory store and the WeCom client. Register it
// with the Temporal worker beside Activities (its method names are the
// activity names, as when they hung off Activities).
type StaffActivities struct {
	// Engine is what every activity shares: compiled plans, the cohorts'
	// pages, profiles, the channels (wecom.app), the outbox, clock and
	// logger. (A field, not embedded: the worker would register its
	// methods twice.)
	Engine *Activities
	// Store is the staff task ledger and contact book; Directory is where
	// the WeCom directory sync writes (*store.SQLite is both).
	Store     StaffTaskStore
	Directory directory.Store
	// WeCom is the client staff tasks and the directory sync call
	// (*wecom.API), nil when channels.wecom is not configured: the outbox
	// stands in for tasks then, and nothing is tracked.
	WeCom WeComClient
}

// WeComClient is what staff tasks and the directory sync use of WeCom.
type WeComClient interface {
	StaffAPI
	directory.WeCom
}

func (a *StaffActivities) now() time.Time                             { return a.Engine.now() }
func (a *StaffActivities) logger() *slog.Logger                       { return a.Engine.logger() }
func (a *StaffActivities) staffData(t store.StaffTask) map[string]any { return a.Engine.staffData(t) }
func (a *StaffActivities) staffText(cp *compiledPlan, task *canvases.StaffTask, t store.StaffTask) (*canvases.Message, error) {
	return a.Engine.staffText(cp, task, t)
}
func (a *StaffActivities) planStep(ctx context.Context, in StepInput) (*compiledPlan, *canvases.Step, error) {
	return a.Engine.planStep(ctx, in)
}
func (a *StaffActivities) eachPage(ctx context.Context, cp *compiledPlan, in StepInput, cur *pageCursor, fn func(store.Page) error) error {
	return a.Engine.eachPage(ctx, cp, in, cur, fn)
}

// StaffTaskStore is the persistence the staff loop needs; *store.SQLite has it.
// It is separate from Store so the engine's interface stays as it was; the
// app passes it in as StaffActivities.Store (the same store value).
type StaffTaskStore interface {
	AssignStaffCustomers(ctx context.Context, runID int64, stepID string, rows []store.StaffCustomer) error
	SplitStaffParts(ctx context.Context, runID int64, stepID string, scope int64, max int) error
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

func (a *StaffActivities) staffStore() (StaffTaskStore, error) {
	if a.Store == nil {
		return nil, temporal.NewNonRetryableApplicationError("the staff activities were built without a staff task ledger (StaffActivities.Store)", "StaffStoreUnavailable", nil)
	}
	return a.Store, nil
}

// staffAPI is the WeCom client the app passed in, or nil when WeCom is
// not configured (the outbox stands in, and nothing is tracked).
func (a *StaffActivities) staffAPI() StaffAPI {
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
func staffTasksOf(ctx context.Context, st StaffTaskStore, in StepInput) ([]store.StaffTask, error) {
	scope, err := st.StaffScope(ctx, in.RunID, in.StepID, in.Cohort.ID)
	if err != nil {
		return nil, err
	}
	return staffTasksIn(ctx, st, in, scope)
}

// staffTasksIn lists the tasks of the step execution keyed by scope.
func staffTasksIn(ctx context.Context, st StaffTaskStore, in StepInput, scope int64) ([]store.StaffTask, error) {
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
