package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/directory"
)

// StaffTaskLoopName is the workflow type of a staff_task step execution.
const StaffTaskLoopName = "StaffTaskLoop"

// staffLoopChange versions the interpreter's staff_task case: runs recorded
// before it (DefaultVersion) keep calling the outbox stub activity.
const staffLoopChange = "staff-sop-loop"

// StaffTaskInput starts (or continues) the loop of one staff_task step for
// one cohort. Keep it backwards compatible: old histories replay with it.
type StaffTaskInput struct {
	Step activities.StepInput `json:"step"`
	// Set when continuing as new.
	Schedule     *activities.StaffSchedule `json:"schedule,omitempty"`
	NextReminder int                       `json:"next_reminder,omitempty"`
	Escalated    bool                      `json:"escalated,omitempty"`
	// Parent is the workflow id of the run to tell (StaffDoneSignal) when
	// the loop ends; empty for children that their run awaited directly.
	Parent string `json:"parent,omitempty"`
}

// staffTask runs a staff_task step as a child workflow: the loop waits for
// hours on timers, and its polls would otherwise fill the run's history.
// One child per step execution (not per staff member): the tasks live in
// the store, and every activity handles all of them.
func (r *runner) staffTask(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) error {
	id := fmt.Sprintf("%s/staff/%s/%d", workflow.GetInfo(ctx).WorkflowExecution.ID, step.ID, t.Cohort.ID)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, WaitForCancellation: true})
	var out activities.StaffOutcome
	if err := workflow.ExecuteChildWorkflow(cctx, StaffTaskLoopName, StaffTaskInput{Step: in}).Get(ctx, &out); err != nil {
		return err
	}
	r.countStaff(out)
	return nil
}

func (r *runner) countStaff(out activities.StaffOutcome) {
	r.stats.Sent += out.Sent
	r.stats.Failed += out.NotFriend + out.OverQuota + out.Unsent + out.CustomersFailed
	r.stats.Unknown += out.CustomersUnknown
	r.stats.Suppressed += out.Left
}

// startStaffTask starts a staff_task step's child workflow and returns its
// id once it runs. The child outlives the run that started it (a run may
// continue as new many times during a task's day); it reports its end with
// StaffDoneSignal to whatever run of the workflow is current then.
func (r *runner) startStaffTask(ctx workflow.Context, step *canvases.Step, t Token, in activities.StepInput) (string, error) {
	parent := workflow.GetInfo(ctx).WorkflowExecution.ID
	id := fmt.Sprintf("%s/staff/%s/%d", parent, step.ID, t.Cohort.ID)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, ParentClosePolicy: enums.PARENT_CLOSE_POLICY_ABANDON})
	f := workflow.ExecuteChildWorkflow(cctx, StaffTaskLoopName, StaffTaskInput{Step: in, Parent: parent})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return "", err
	}
	if r.startedChild != nil {
		r.startedChild(id, f)
	}
	return id, nil
}

var staffNonRetryable = []string{"PlanUnavailable", "PlanMismatch", "RenderError", "StaffStoreUnavailable", "WeComUnavailable", "NoChannel"}

// staffActivity: polls, reminders and escalations are retried for a while;
// a missed one is only a later one, so the loop goes on without it.
var staffActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 10 * time.Minute,
	HeartbeatTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		MaximumAttempts: 8, NonRetryableErrorTypes: staffNonRetryable},
}

// staffAssignActivity pages through the cohort, like the engine's.
var staffAssignActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Minute,
	HeartbeatTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
		NonRetryableErrorTypes: staffNonRetryable},
}

// StaffTaskLoop is one staff_task step execution: assign the cohort to
// staff members, create their tasks and tell them, then — between timers,
// at a poll interval — fetch results, remind at the configured times, tell
// leaders what is not done at the deadline, and keep tracking for the late
// window, so a task done late counts as late. Without WeCom it records the
// tasks in the outbox and ends.
func StaffTaskLoop(ctx workflow.Context, in StaffTaskInput) (activities.StaffOutcome, error) {
	out, err := staffTaskLoop(ctx, in)
	if in.Parent == "" || workflow.IsContinueAsNewError(err) || ctx.Err() != nil {
		return out, err
	}
	done := StaffDone{Child: workflow.GetInfo(ctx).WorkflowExecution.ID, Outcome: out}
	if err != nil {
		done.Error = err.Error()
	}
	// A run that has ended (failed, cancelled) cannot be told; nothing else
	// waits for this.
	if serr := workflow.SignalExternalWorkflow(ctx, in.Parent, "", StaffDoneSignal, done).Get(ctx, nil); serr != nil {
		workflow.GetLogger(ctx).Warn("staff tasks: the run that started them has ended", "run", in.Parent, "error", serr)
	}
	return out, err
}

func staffTaskLoop(ctx workflow.Context, in StaffTaskInput) (activities.StaffOutcome, error) {
	var out activities.StaffOutcome
	log := workflow.GetLogger(ctx)
	actx := workflow.WithActivityOptions(ctx, staffActivity)
	var sched activities.StaffSchedule
	if in.Schedule != nil {
		sched = *in.Schedule
	} else {
		pctx := workflow.WithActivityOptions(ctx, staffAssignActivity)
		if err := workflow.ExecuteActivity(pctx, sa.StaffAssign, in.Step).Get(ctx, &sched); err != nil {
			return out, err
		}
		// Creating tasks is worth retrying until the deadline; after that a
		// task nobody could act on is failed (or unknown) in the report.
		opts := staffActivity
		opts.StartToCloseTimeout = 30 * time.Minute
		// The activity heartbeats every 2 s whatever it waits for, so a
		// worker killed mid-dispatch is noticed, and its tasks looked up
		// by the next attempt, within seconds rather than a minute.
		opts.HeartbeatTimeout = 15 * time.Second
		opts.ScheduleToCloseTimeout = max(sched.Deadline.Sub(workflow.Now(ctx)), 5*time.Minute)
		opts.RetryPolicy = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: staffNonRetryable}
		dctx := workflow.WithActivityOptions(ctx, opts)
		var d activities.StaffDispatched
		if err := workflow.ExecuteActivity(dctx, sa.StaffDispatch, activities.StaffInput{StepInput: in.Step, Schedule: sched}).Get(ctx, &d); err != nil {
			if isPlanError(err) {
				return out, err
			}
			log.Warn("staff tasks: dispatch gave up; what is left is failed or unknown", "step", in.Step.StepID, "error", err)
		}
	}
	sin := activities.StaffInput{StepInput: in.Step, Schedule: sched}
	if sched.Tracked && sched.Tasks > 0 {
		next, escalated := in.NextReminder, in.Escalated
		end := sched.Deadline.Add(sched.LateWindow)
		for {
			now := workflow.Now(ctx)
			wake := now.Add(sched.PollEvery)
			if !escalated && sched.Deadline.Before(wake) {
				wake = sched.Deadline
			}
			if next < len(sched.Reminders) && sched.Reminders[next].Before(wake) {
				wake = sched.Reminders[next]
			}
			if end.Before(wake) {
				wake = end
			}
			if d := wake.Sub(now); d > 0 {
				if err := workflow.Sleep(ctx, d); err != nil {
					return out, err
				}
			}
			now = workflow.Now(ctx)
			var p activities.StaffProgress
			if err := workflow.ExecuteActivity(actx, sa.StaffPoll, activities.StaffPollInput{StaffInput: sin}).Get(ctx, &p); err != nil {
				log.Warn("staff tasks: poll failed; trying again at the next one", "step", in.Step.StepID, "error", err)
				p.Open = 1
			}
			if p.Open == 0 {
				break
			}
			// Reminders that fell due (several, after an outage) are one.
			due := -1
			for next < len(sched.Reminders) && !sched.Reminders[next].After(now) {
				due = next
				next++
			}
			if due >= 0 && !escalated {
				rin := activities.StaffRemindInput{StaffInput: sin, At: sched.Reminders[due]}
				if err := workflow.ExecuteActivity(actx, sa.StaffRemind, rin).Get(ctx, nil); err != nil {
					log.Warn("staff tasks: reminder failed", "step", in.Step.StepID, "error", err)
				}
			}
			if !escalated && !now.Before(sched.Deadline) {
				escalated = true
				if err := workflow.ExecuteActivity(actx, sa.StaffEscalate, sin).Get(ctx, nil); err != nil {
					log.Warn("staff tasks: escalation failed", "step", in.Step.StepID, "error", err)
				}
			}
			if !now.Before(end) {
				break
			}
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return out, workflow.NewContinueAsNewError(ctx, StaffTaskLoopName, StaffTaskInput{Step: in.Step, Schedule: &sched, NextReminder: next, Escalated: escalated, Parent: in.Parent})
			}
		}
		_ = workflow.ExecuteActivity(actx, sa.StaffPoll, activities.StaffPollInput{StaffInput: sin, Final: true}).Get(ctx, nil)
	}
	fopts := staffActivity
	fopts.RetryPolicy = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, NonRetryableErrorTypes: staffNonRetryable}
	fctx := workflow.WithActivityOptions(ctx, fopts)
	err := workflow.ExecuteActivity(fctx, sa.StaffFinish, activities.StaffFinishInput{StaffInput: sin}).Get(ctx, &out)
	return out, err
}

func isPlanError(err error) bool {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Type() {
	case "PlanUnavailable", "PlanMismatch", "RenderError", "StaffStoreUnavailable":
		return true
	}
	return false
}

// StaffTaskLoopOptions registers StaffTaskLoop under its name.
func StaffTaskLoopOptions() workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: StaffTaskLoopName}
}

// SyncDirectoryName is the workflow the directory-sync schedule starts.
const SyncDirectoryName = "SyncWeComDirectory"

// SyncDirectory runs the WeCom directory sync once.
func SyncDirectory(ctx workflow.Context) (directory.SyncSummary, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 5},
	})
	var sum directory.SyncSummary
	err := workflow.ExecuteActivity(ctx, sa.SyncWeComDirectory).Get(ctx, &sum)
	return sum, err
}
