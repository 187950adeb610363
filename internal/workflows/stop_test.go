package workflows

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/store"
)

// TestStoppedRunExitsEveryone: a run cancelled after a stop signal ends at
// once, and every user it still held exits with the stop's reason where
// they were — waiting for an event (those whose arrival was recorded but
// not yet collected too), asleep in a wait, at a staff task whose child is
// cancelled — while users who finished before keep their exit; the run is
// recorded as cancelled with who stopped it.
func TestStoppedRunExitsEveryone(t *testing.T) {
	h := newStaffHarness(t, "")
	var cs []customer
	for i := 0; i < 30; i++ {
		cs = append(cs, customer{id: fmt.Sprintf("c%02d", i), owner: "lina", external: fmt.Sprintf("wmEXT%02d", i)})
	}
	h.customers(cs...)
	plan := h.deploy(`
id: stop-me
trigger: {manual: {}}
steps:
  - id: give
    push: {channel: outbox, text: 券已到账}
  - id: three-ways
    split: [{weight: 34, goto: wait-use}, {weight: 33, goto: nap}, {weight: 33, goto: task}]
  - id: wait-use
    wait: {event: coupon_used, timeout: 3d}
  - id: thanks
    push: {channel: outbox, text: 感谢使用}
    next: done
  - id: nap
    wait: 2d
  - id: later
    push: {channel: outbox, text: 两天后}
    next: done
  - id: task
    staff_task:
      text: 请转发
      deadline: 2d
  - id: done
    exit: {reason: done}
`)
	ctx := context.Background()
	env := h.newEnv()
	env.SetStartTime(at(t, "2027-03-01", "09:00"))
	waiting := func() []int64 { // members of the run's event wait
		runs, err := h.store.Runs(ctx, "stop-me", 1)
		require.NoError(t, err)
		waits, err := h.store.WaitsIn(ctx, []int64{runs[0].ID}, "coupon_used")
		require.NoError(t, err)
		require.Len(t, waits, 1)
		c, err := h.store.GetCohort(ctx, waits[0].CohortID)
		require.NoError(t, err)
		pages, err := h.store.Pages(ctx, c.ID, 0, c.PageSpan)
		require.NoError(t, err)
		var uids []int64
		for _, p := range pages {
			uids = append(uids, p.Members...)
		}
		return append([]int64{c.ID}, uids...)
	}
	var collected, uncollected int
	env.RegisterDelayedCallback(func() { // two arrive and are taken on
		w := waiting()
		require.Greater(t, len(w), 5)
		_, err := h.store.RecordArrivals(ctx, w[0], w[1:3], env.Now())
		require.NoError(t, err)
		collected = 2
		env.SignalWorkflow(ArrivalsSignal, nil)
	}, time.Hour)
	env.RegisterDelayedCallback(func() { // two more arrive; the stop comes before their collection
		w := waiting()
		_, err := h.store.RecordArrivals(ctx, w[0], w[3:5], env.Now())
		require.NoError(t, err)
		uncollected = 2
		env.SignalWorkflow(StopSignal, Stop{Reason: "stopped", By: "alice"})
		env.CancelWorkflow()
	}, 3*time.Hour)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.True(t, env.IsWorkflowCompleted())
	require.True(t, temporal.IsCanceledError(env.GetWorkflowError()), "got %v", env.GetWorkflowError())
	require.Equal(t, 2, collected)
	require.Equal(t, 2, uncollected)

	runs, err := h.store.Runs(ctx, "stop-me", 1)
	require.NoError(t, err)
	run := runs[0]
	require.Equal(t, store.RunCancelled, run.State)
	require.Equal(t, "stopped by alice", run.Error)
	c := h.counts("stop-me", run.ID)
	require.Equal(t, int64(30), c["give"].Entered)
	require.Equal(t, int64(2), c["thanks"].Sent)
	require.Zero(t, c["later"].Entered)

	// Each user exits exactly once: the two who arrived in time at done,
	// everyone else stopped where they were.
	outcomes := userOutcomes(t, h, run.ID, store.RunCancelled)
	byReason := map[string]int{}
	for u, items := range outcomes {
		if strings.HasPrefix(u, "staff:") {
			continue
		}
		var exits []string
		for _, it := range items {
			if strings.HasPrefix(it, "finished ") {
				exits = append(exits, it)
			}
		}
		require.Len(t, exits, 1, "user %s: %q", u, items)
		byReason[exits[0]]++
	}
	require.Equal(t, 2, byReason["finished done done"])
	require.Equal(t, int(c["wait-use"].Entered)-2, byReason["finished wait-use stopped"], "waiting users, arrived but uncollected ones too")
	require.Equal(t, int(c["nap"].Entered), byReason["finished nap stopped"])
	require.Equal(t, int(c["task"].Entered), byReason["finished task stopped"])
	require.Positive(t, c["task"].Entered)
	require.Positive(t, c["nap"].Entered)
	require.Equal(t, int64(28), c["wait-use"].Exited+c["nap"].Exited+c["task"].Exited, "reports count the stopped users as exits")

	tasks, err := h.store.StaffTasks(ctx, run.ID, "task")
	require.NoError(t, err)
	require.NotEmpty(t, tasks, "the task's users were at a staff task when it stopped")
}
