package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWaitForEventArrivals: users who send the awaited event leave the wait
// at once by the event path; the rest take the timeout path at the deadline.
func TestWaitForEventArrivals(t *testing.T) {
	h := newHarness(t)
	h.profiles(10, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: coupon-flow
trigger: {manual: {}}
steps:
  - id: give
    push: {channel: outbox, text: 券已到账}
  - id: wait-use
    wait: {event: coupon_used, timeout: 3d, on_timeout: remind}
  - id: thanks
    tag: {add: [used-coupon]}
    next: done
  - id: remind
    push: {channel: outbox, text: 券快过期了}
  - id: done
    exit: {}
`)
	env := h.newEnv()
	ctx := context.Background()
	arrive := func(users ...string) {
		runs, err := h.store.Runs(ctx, "coupon-flow", 1)
		require.NoError(t, err)
		waits, err := h.store.WaitsIn(ctx, []int64{runs[0].ID}, "coupon_used")
		require.NoError(t, err)
		require.Len(t, waits, 1)
		ids, err := h.store.UIDs(ctx, users)
		require.NoError(t, err)
		var uids []int64
		for _, u := range users {
			uids = append(uids, ids[u])
		}
		n, err := h.store.RecordArrivals(ctx, waits[0].CohortID, uids, time.Now())
		require.NoError(t, err)
		require.Equal(t, int64(len(users)), n)
		env.SignalWorkflow(ArrivalsSignal, nil)
	}
	var thanksAt time.Duration
	env.RegisterDelayedCallback(func() { arrive("u001", "u002") }, time.Hour)
	env.RegisterDelayedCallback(func() { arrive("u003") }, 2*time.Hour)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(StatusQuery)
		require.NoError(t, err)
		var st Status
		require.NoError(t, v.Get(&st))
		thanksAt = 3 * time.Hour
		require.Len(t, st.Waiting, 1, "the rest still wait")
		require.Equal(t, int64(10), st.Waiting[0].Users, "the waiting cohort is the whole one; arrivals left as children")
	}, 3*time.Hour)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 3*time.Hour, thanksAt)

	var res RunResult
	require.NoError(t, env.GetWorkflowResult(&res))
	c := h.counts("coupon-flow", res.RunID)
	require.Equal(t, int64(3), c["thanks"].Entered, "the three who used the coupon")
	require.Equal(t, int64(7), c["remind"].Entered, "the others at the timeout")
	require.Equal(t, int64(10), c["done"].Exited)
	for i := 1; i <= 3; i++ {
		p, _ := h.store.ProfileByID(ctx, fmt.Sprintf("u%03d", i))
		require.Contains(t, string(p.Doc), "used-coupon")
	}
	p, _ := h.store.ProfileByID(ctx, "u004")
	require.NotContains(t, string(p.Doc), "used-coupon")

	runs, _ := h.store.Runs(ctx, "coupon-flow", 1)
	waits, err := h.store.WaitsIn(ctx, []int64{runs[0].ID}, "coupon_used")
	require.NoError(t, err)
	require.Empty(t, waits, "a resolved wait takes no more arrivals")
}

// TestExitEventSkipsRemainingSteps: users who left through the exit event
// get nothing more.
func TestExitEventSkipsRemainingSteps(t *testing.T) {
	h := newHarness(t)
	h.profiles(5, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: exit-flow
trigger: {manual: {}}
exit: {event: purchase}
steps:
  - id: first
    push: {channel: outbox, text: 一}
  - id: pause
    wait: 1d
  - id: second
    push: {channel: outbox, text: 二}
`)
	env := h.newEnv()
	ctx := context.Background()
	env.RegisterDelayedCallback(func() {
		runs, err := h.store.Runs(ctx, "exit-flow", 1)
		require.NoError(t, err)
		ids, _ := h.store.UIDs(ctx, []string{"u000", "u001"})
		require.NoError(t, h.store.RecordExits(ctx, runs[0].ID, "", "exit_event", []int64{ids["u000"], ids["u001"]}))
	}, time.Hour)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.NoError(t, env.GetWorkflowError())
	var res RunResult
	require.NoError(t, env.GetWorkflowResult(&res))
	c := h.counts("exit-flow", res.RunID)
	require.Equal(t, int64(5), c["first"].Sent)
	require.Equal(t, int64(3), c["second"].Sent, "the two who purchased left")
	require.Equal(t, int64(3), c["second"].Exited)
}
