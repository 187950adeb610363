package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/store"
)

// TestContinueAsNewWithStaffTaskInFlight (issue 11, defect 4): with a
// staff task's child running for the rest of the working day, a run told to
// continue as new does so as soon as nothing else runs — the cohort that
// wakes meanwhile is sent to at once — and carries the child across: the
// new run takes the cohort on when the child reports its end.
func TestContinueAsNewWithStaffTaskInFlight(t *testing.T) {
	h := newStaffHarness(t, "")
	h.customers(customer{"c01", "zhangwei", "wm01"}, customer{"c02", "lina", "wm02"}, customer{"c03", "", ""})
	plan := h.deploy(`
id: sop-and-wait
trigger: {manual: {}}
steps:
  - id: route
    branch:
      - {when: 'user.owner != ""', goto: task}
      - {else: pause}
  - id: task
    staff_task: {text: 今日推荐, deadline: 9h}
    next: after-task
  - id: pause
    wait: 1h
  - id: hello
    push: {channel: outbox, text: 你好}
    next: done
  - id: after-task
    tag: {add: [sop-done]}
  - id: done
    exit: {}
`)
	start := at(t, "2026-03-02", "09:00")
	env := h.newEnv()
	env.SetStartTime(start)
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, 10*time.Minute)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "expected continue-as-new, got %v", env.GetWorkflowError())
	// (The test environment runs the abandoned child to its end before
	// returning, so its clock says nothing about when the run continued.)
	require.Len(t, h.outbox("sop-and-wait"), 1, "the cohort that woke was sent to before continuing")

	var next RunInput
	require.NoError(t, decodeCAN(can, &next))
	require.Len(t, next.Tokens, 1)
	staff := next.Tokens[0]
	require.Equal(t, "task", staff.Step)
	require.Equal(t, resumeStaff, staff.Resume, "the run did not wait for the staff task to end")
	require.NotEmpty(t, staff.Child)
	require.Equal(t, int64(2), staff.Cohort.Size)
	require.Len(t, h.fake.TasksFor("zhangwei"), 1, "the task was created before")

	// The new run: the child (here, its signal) reports at the deadline.
	env2 := h.newEnv()
	env2.SetStartTime(env.Now())
	env2.RegisterDelayedCallback(func() {
		env2.SignalWorkflow(StaffDoneSignal, StaffDone{Child: staff.Child, Outcome: activities.StaffOutcome{Sent: 1, Unsent: 1}})
	}, 8*time.Hour)
	env2.ExecuteWorkflow(Run, next)
	require.NoError(t, env2.GetWorkflowError())
	var res RunResult
	require.NoError(t, env2.GetWorkflowResult(&res))
	require.Equal(t, int64(1+1), res.Stats.Sent, "hello, and the customer the staff member sent to")
	require.Equal(t, int64(1), res.Stats.Failed, "the one not sent")
	c := h.counts("sop-and-wait", res.RunID)
	require.Equal(t, int64(2), c["after-task"].Entered, "the staff task's cohort went on")
	require.Equal(t, int64(3), c["done"].Exited)
	p, err := h.store.ProfileByID(context.Background(), "c01")
	require.NoError(t, err)
	require.Contains(t, string(p.Doc), "sop-done")
}

// TestStaffTaskInOneRun: a staff task that ends within the run that
// started it moves its cohort on (its end seen through the child's future
// or its signal, whichever comes first, once).
func TestStaffTaskInOneRun(t *testing.T) {
	h := newStaffHarness(t, "")
	h.customers(customer{"c01", "zhangwei", "wm01"}, customer{"c02", "lina", "wm02"})
	plan := h.deploy(`
id: sop-one-run
trigger: {manual: {}}
steps:
  - id: task
    staff_task: {text: 今日推荐, deadline: 2h}
  - id: after-task
    tag: {add: [sop-done]}
`)
	h.fake.AutoConfirm("zhangwei", 30*time.Minute)
	res := h.start(plan, at(t, "2026-03-02", "09:00"), nil)
	require.Equal(t, int64(1), res.Stats.Sent)
	c := h.counts("sop-one-run", res.RunID)
	require.Equal(t, int64(2), c["after-task"].Entered)
}

// TestArrivalsMergeAndStayBounded (issue 11, defect 5): arrivals signals
// that come together are one collection, cohorts that wake at a step in
// the same slot go on as one, and what a run carries across continue-as-new
// stays a handful of tokens however many signals came.
func TestArrivalsMergeAndStayBounded(t *testing.T) {
	const users, buyers = 60, 40
	h := newHarness(t)
	h.profiles(users, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: trickle
trigger: {manual: {}}
steps:
  - id: give
    push: {channel: outbox, text: 券已到账}
  - id: wait-use
    wait: {event: coupon_used, timeout: 3d, on_timeout: remind}
  - id: later
    wait: 1d
  - id: thanks
    push: {channel: outbox, text: 感谢使用}
    next: done
  - id: remind
    push: {channel: outbox, text: 券快过期了}
  - id: done
    exit: {}
`)
	h.faults = newFaultInjector("", "") // counts activities, injects nothing
	env := h.newEnv()
	// Ten users at the same moment, each with its own signal, then the
	// others one every ten seconds.
	env.RegisterDelayedCallback(func() {
		for i := 0; i < 10; i++ {
			h.arriveAt(env, "trickle", "coupon_used", fmt.Sprintf("u%03d", i))
		}
	}, time.Hour)
	for i := 10; i < buyers; i++ {
		user := fmt.Sprintf("u%03d", i)
		env.RegisterDelayedCallback(func() { h.arriveAt(env, "trickle", "coupon_used", user) }, time.Hour+time.Duration(i)*10*time.Second)
	}
	env.RegisterDelayedCallback(func() {
		env.SetContinueAsNewSuggested(true)
		env.SignalWorkflow(ArrivalsSignal, nil) // a workflow task, as the suggestion comes with one
	}, 2*time.Hour)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "expected continue-as-new, got %v", env.GetWorkflowError())
	seen, _ := h.faults.counts()
	t.Logf("%d collections for %d arrivals signals", seen["CollectArrivals"], buyers+1)

	var next RunInput
	require.NoError(t, decodeCAN(can, &next))
	var waiting, later int
	for _, tok := range next.Tokens {
		switch {
		case tok.Step == "wait-use" && tok.Resume == resumeWaiting:
			waiting++
		case tok.Step == "thanks":
			later++
			require.LessOrEqual(t, len(tok.Merge)+1, maxMergedCohorts)
		default:
			t.Fatalf("unexpected token %+v", tok)
		}
	}
	require.Equal(t, 1, waiting)
	require.LessOrEqual(t, later, 4, "%d collections woke in one or two slots: a few merged tokens, not one each", buyers-9)
	b, err := json.Marshal(next)
	require.NoError(t, err)
	require.Less(t, len(b), 16<<10, "what is carried stays small")

	h.faults = nil
	env2 := h.newEnv()
	env2.SetStartTime(env.Now())
	env2.ExecuteWorkflow(Run, next)
	require.NoError(t, env2.GetWorkflowError())
	var res RunResult
	require.NoError(t, env2.GetWorkflowResult(&res))
	got := map[string]map[string]int{}
	for _, m := range h.outbox("trickle") {
		if got[m.StepID] == nil {
			got[m.StepID] = map[string]int{}
		}
		got[m.StepID][m.UserID]++
	}
	require.Len(t, got["give"], users)
	require.Len(t, got["thanks"], buyers)
	require.Len(t, got["remind"], users-buyers)
	for step, per := range got {
		for u, n := range per {
			require.Equal(t, 1, n, "%s got %s %d times", u, step, n)
		}
	}
	c := h.counts("trickle", res.RunID)
	require.Equal(t, int64(buyers), c["thanks"].Entered)
	require.Equal(t, int64(users), c["done"].Exited)
}

// finishFails fails FinishRun a few times, as a busy store would.
type finishFails struct {
	activities.Store
	left int
}

func (f *finishFails) FinishRun(ctx context.Context, runID int64, state, errMsg string) error {
	if f.left > 0 {
		f.left--
		return errors.New("database is locked (SQLITE_BUSY)")
	}
	return f.Store.FinishRun(ctx, runID, state, errMsg)
}

// TestCancelledRunIsFinished (issue 11, defect 10): a run cancelled while
// it waits for an event is recorded as cancelled, even when recording
// fails at first; its waits are gone, so events no longer reach it.
func TestCancelledRunIsFinished(t *testing.T) {
	h := newHarness(t)
	h.profiles(5, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: cancel-me
trigger: {manual: {}}
steps:
  - id: give
    push: {channel: outbox, text: 券已到账}
  - id: wait-use
    wait: {event: coupon_used, timeout: 3d}
  - id: thanks
    push: {channel: outbox, text: 感谢使用}
`)
	h.acts.Store = &finishFails{Store: h.store, left: 2}
	env := h.newEnv()
	ctx := context.Background()
	var waitsBefore int
	env.RegisterDelayedCallback(func() {
		runs, err := h.store.Runs(ctx, "cancel-me", 1)
		require.NoError(t, err)
		waits, err := h.store.WaitsIn(ctx, []int64{runs[0].ID}, "coupon_used")
		require.NoError(t, err)
		waitsBefore = len(waits)
		env.CancelWorkflow()
	}, time.Hour)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.Error(t, env.GetWorkflowError())
	require.True(t, temporal.IsCanceledError(env.GetWorkflowError()), "got %v", env.GetWorkflowError())
	require.Equal(t, 1, waitsBefore)

	runs, err := h.store.Runs(ctx, "cancel-me", 1)
	require.NoError(t, err)
	require.Equal(t, store.RunCancelled, runs[0].State)
	require.False(t, runs[0].FinishedAt.IsZero())
	waits, err := h.store.WaitsIn(ctx, []int64{runs[0].ID}, "coupon_used")
	require.NoError(t, err)
	require.Empty(t, waits, "an ended run waits for nothing")
	ids, err := h.store.UIDs(ctx, []string{"u001"})
	require.NoError(t, err)
	ms, err := h.store.MembershipsOf(ctx, []int64{ids["u001"]}, time.Time{})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.NotEqual(t, store.RunRunning, ms[0].State, "the router routes only to running runs")
}
