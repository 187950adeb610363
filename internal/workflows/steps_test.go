package workflows

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/canvases"
)

func shanghai(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	return loc
}

func TestWaitUntilTimeOfDayPerTimezone(t *testing.T) {
	h := newHarness(t)
	zones := []string{"Asia/Shanghai", "America/New_York", ""}
	h.profiles(30, func(i int) map[string]any {
		return map[string]any{"name": "x", "timezone": zones[i%3]}
	})
	plan := h.deploy(`
id: morning
trigger: {manual: {}}
steps:
  - id: at-ten
    wait: {until: "10:00"}
  - id: hello
    push: {channel: outbox, text: 早上好}
`)
	env := h.newEnv()
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) // 20:00 in Shanghai, 07:00 in New York
	env.SetStartTime(start)
	var waiting []Waiting
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(StatusQuery)
		require.NoError(t, err)
		var st Status
		require.NoError(t, v.Get(&st))
		waiting = st.Waiting
	}, time.Minute)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.NoError(t, env.GetWorkflowError())

	// Shanghai (and the config default, Asia/Shanghai) wake at 10:00 the next
	// day; New York at 10:00 the same day: two timers, not thirty.
	require.Len(t, waiting, 2)
	ny, _ := time.LoadLocation("America/New_York")
	require.Equal(t, time.Date(2026, 11, 23, 10, 0, 0, 0, ny).UTC(), waiting[0].WakeAt.UTC())
	require.Equal(t, int64(10), waiting[0].Users)
	require.Equal(t, time.Date(2026, 11, 24, 10, 0, 0, 0, shanghai(t)).UTC(), waiting[1].WakeAt.UTC())
	require.Equal(t, int64(20), waiting[1].Users)
	require.Len(t, h.outbox("morning"), 30)
}

func TestWaitAtAndDuration(t *testing.T) {
	h := newHarness(t)
	h.profiles(5, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: timed
trigger: {manual: {}}
steps:
  - id: a-while
    wait: 36h
  - id: until-then
    wait: {until: "2026-12-25T09:00:00+08:00"}
  - id: hello
    push: {channel: outbox, text: 圣诞快乐}
`)
	env := h.newEnv()
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, time.Date(2026, 12, 25, 1, 0, 0, 0, time.UTC), env.Now().UTC(), "finished when the last timer fired")
	require.Len(t, h.outbox("timed"), 5)
}

func TestWaitForEventTimesOut(t *testing.T) {
	h := newHarness(t)
	h.profiles(10, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: coupon
trigger: {manual: {}}
steps:
  - id: give
    push: {channel: outbox, text: 券已到账}
  - id: wait-use
    wait: {event: coupon_used, timeout: 3d, on_timeout: remind}
  - id: used
    exit: {reason: used}
  - id: remind
    push: {channel: outbox, text: 券快过期了}
`)
	res := h.run(plan)
	require.Equal(t, int64(20), res.Stats.Sent)
	c := h.counts("coupon", res.RunID)
	require.Equal(t, int64(10), c["wait-use"].Entered, "entering a wait is counted once, not again at the timeout")
	require.Equal(t, int64(10), c["remind"].Entered)
	require.Zero(t, c["used"].Entered)
	require.Equal(t, int64(10), c["remind"].Exited)
}

func TestExitStepAndEndOfPath(t *testing.T) {
	h := newHarness(t)
	h.profiles(10, func(i int) map[string]any { return map[string]any{"city": []string{"上海", "北京"}[i%2]} })
	plan := h.deploy(`
id: exits
trigger: {manual: {}}
steps:
  - id: where
    branch:
      - {when: 'user.city == "上海"', goto: stop}
      - {else: tag}
  - id: tag
    tag: {add: [beijing]}
  - id: stop
    exit: {reason: 上海客户}
`)
	res := h.run(plan)
	c := h.counts("exits", res.RunID)
	require.Equal(t, int64(10), c["stop"].Exited, "Beijing flows into stop after its tag step, Shanghai jumps there")
	require.Equal(t, int64(5), c["tag"].Entered)
	require.Equal(t, int64(10), res.Stats.Exited)
}

func TestSplitIsStablePerUser(t *testing.T) {
	h := newHarness(t)
	h.profiles(400, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: ab
trigger: {manual: {}}
steps:
  - id: split
    split: [{weight: 20, goto: a}, {weight: 80, goto: b}]
  - id: a
    tag: {add: [variant-a]}
    next: done
  - id: b
    tag: {add: [variant-b]}
  - id: done
    exit: {}
`)
	first := h.counts("ab", h.run(plan).RunID)
	second := h.counts("ab", h.run(plan).RunID)
	require.Equal(t, first["a"].Entered, second["a"].Entered, "the same users take the same arm in every run")
	require.InDelta(t, 80, first["a"].Entered, 25)
	require.Equal(t, int64(400), first["a"].Entered+first["b"].Entered)
	for i := 0; i < 400; i++ {
		p, err := h.store.ProfileByID(context.Background(), fmt.Sprintf("u%03d", i))
		require.NoError(t, err)
		doc := string(p.Doc)
		require.False(t, contains(doc, "variant-a") && contains(doc, "variant-b"), "user %d is in both arms", i)
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestStaffTaskRecordsOneTaskPerOwner(t *testing.T) {
	h := newHarness(t)
	owners := []string{"zhangwei", "lina"}
	h.profiles(9, func(i int) map[string]any { return map[string]any{"owner": owners[i%2]} })
	plan := h.deploy(`
id: sop
trigger: {manual: {}}
steps:
  - id: task
    staff_task:
      text: "{{ .staff.userid }}：今日推荐"
      notice: "今天有 {{ .task.customers }} 位客户待发送"
      deadline: 9h
`)
	h.run(plan)
	msgs := h.outbox("sop")
	require.Len(t, msgs, 2)
	got := map[string]string{}
	for _, m := range msgs {
		got[m.Address] = string(m.Message)
	}
	require.Contains(t, got["zhangwei"], "今天有 5 位客户待发送")
	require.Contains(t, got["lina"], "今天有 4 位客户待发送")
}

func TestReentryNever(t *testing.T) {
	h := newHarness(t)
	h.profiles(3, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: once
trigger: {manual: {}}
entry: {reentry: never}
steps:
  - id: hello
    push: {channel: outbox, text: 只发一次}
`)
	require.Equal(t, int64(3), h.run(plan).Stats.Entered)
	require.Equal(t, int64(0), h.run(plan).Stats.Entered, "nobody enters twice")
	require.Len(t, h.outbox("once"), 3)
}

func TestContinueAsNewKeepsSleepingCohorts(t *testing.T) {
	h := newHarness(t)
	h.profiles(20, func(i int) map[string]any { return map[string]any{"city": []string{"上海", "北京"}[i%2]} })
	plan := h.deploy(`
id: long
trigger: {manual: {}}
steps:
  - id: one
    push: {channel: outbox, text: 一}
  - id: where
    branch:
      - {when: 'user.city == "上海"', goto: slow}
      - {else: fast}
  - id: slow
    wait: 2d
    next: two
  - id: fast
    wait: 1h
    next: two
  - id: two
    push: {channel: outbox, text: 二}
`)
	env := h.newEnv()
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	// Suggest continuing as new while both cohorts sleep; the workflow
	// notices when the 1h timer wakes it: the woken cohort goes on at once
	// (a run never stalls for continue-as-new), and the run continues as
	// new as soon as nothing runs, with the 2d cohort still asleep.
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, 30*time.Minute)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "expected continue-as-new, got %v", env.GetWorkflowError())
	require.Len(t, h.outbox("long"), 30, "the first push, and the second for the cohort that woke")
	require.Less(t, env.Now().Sub(start), 2*time.Hour, "it continued as new at once, not after the 2d wait")

	var next RunInput
	require.NoError(t, decodeCAN(can, &next))
	require.NotZero(t, next.RunID)
	require.Len(t, next.Tokens, 1)
	require.Equal(t, "two", next.Tokens[0].Step)
	require.Equal(t, wakeAfter(start, 48*time.Hour), next.Tokens[0].WakeAt, "the sleeping cohort keeps its wake time (a 2d wait ends within half an hour after)")

	env2 := h.newEnv()
	env2.SetStartTime(env.Now())
	env2.ExecuteWorkflow(Run, next)
	require.NoError(t, env2.GetWorkflowError())
	var res RunResult
	require.NoError(t, env2.GetWorkflowResult(&res))
	require.Equal(t, next.RunID, res.RunID)
	require.Equal(t, int64(40), res.Stats.Sent, "stats carry across continue-as-new")
	require.Len(t, h.outbox("long"), 40)
}

func decodeCAN(can *workflow.ContinueAsNewError, into *RunInput) error {
	return dataConverter().FromPayloads(can.Input, into)
}

var _ = canvases.StepPush
