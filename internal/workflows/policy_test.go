package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
)

// TestQuietHoursDelay: a push at 23:00 Shanghai time waits for 08:00; a
// user in New York (11:00 there) gets it at once.
func TestQuietHoursDelay(t *testing.T) {
	h := newHarness(t)
	h.acts.Policy = activities.Policy{QuietHours: &canvases.QuietHours{From: "21:00", To: "08:00", Action: "delay"}}
	h.profiles(4, func(i int) map[string]any {
		if i == 3 {
			return map[string]any{"timezone": "America/New_York"}
		}
		return map[string]any{}
	})
	plan := h.deploy(`
id: late
trigger: {manual: {}}
steps:
  - id: promo
    push: {channel: outbox, text: 限时优惠}
  - id: after
    tag: {add: [promo-done]}
`)
	env := h.newEnv()
	start := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC) // 23:00 in Shanghai
	env.SetStartTime(start)
	h.acts.Now = env.Now
	var sentEarly int
	env.RegisterDelayedCallback(func() { sentEarly = len(h.outbox("late")) }, time.Hour)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 1, sentEarly, "only the New York user is outside quiet hours")
	require.Len(t, h.outbox("late"), 4, "the others at 08:00")
	require.Equal(t, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), env.Now().UTC(), "08:00 Shanghai")
	var res RunResult
	require.NoError(t, env.GetWorkflowResult(&res))
	c := h.counts("late", res.RunID)
	require.Equal(t, int64(4), c["promo"].Entered, "deferred users are not counted twice")
	require.Equal(t, int64(4), c["promo"].Sent)
	require.Equal(t, int64(4), c["after"].Entered, "and they go on to the next step")
}

func TestQuietHoursDropAndTransactional(t *testing.T) {
	h := newHarness(t)
	h.acts.Policy = activities.Policy{QuietHours: &canvases.QuietHours{From: "21:00", To: "08:00", Action: "drop"}}
	h.profiles(3, func(int) map[string]any { return map[string]any{} })
	marketing := h.deploy("id: m\ntrigger: {manual: {}}\nsteps: [{id: p, push: {channel: outbox, text: 优惠}}]\n")
	receipt := h.deploy("id: r\ntrigger: {manual: {}}\npolicy: {kind: transactional}\nsteps: [{id: p, push: {channel: outbox, text: 订单已发货}}]\n")
	for _, plan := range []*canvases.Plan{marketing, receipt} {
		env := h.newEnv()
		env.SetStartTime(time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC))
		h.acts.Now = env.Now
		env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
		require.NoError(t, env.GetWorkflowError())
	}
	require.Empty(t, h.outbox("m"))
	c := h.counts("m", 0)
	require.Equal(t, map[string]int64{"quiet_hours": 3}, c["p"].Suppressed)
	require.Len(t, h.outbox("r"), 3, "transactional messages ignore quiet hours")
}

func TestFrequencyCaps(t *testing.T) {
	h := newHarness(t)
	h.acts.Policy = activities.Policy{Frequency: []canvases.FrequencyRule{
		{Channel: "sms", Max: 1, Per: canvases.Duration(24 * time.Hour)},
		{Channel: "any", Max: 2, Per: canvases.Duration(7 * 24 * time.Hour)},
	}}
	h.profiles(2, func(i int) map[string]any { return map[string]any{"phone": fmt.Sprintf("1380000000%d", i)} })
	sms := h.deploy("id: s\ntrigger: {manual: {}}\nsteps: [{id: p, push: {channel: sms, template: SMS_1}}]\n")
	other := h.deploy("id: o\ntrigger: {manual: {}}\nsteps: [{id: p, push: {channel: outbox, text: 你好}}]\n")
	h.run(sms)
	h.run(sms) // the same day: capped
	h.run(other)
	h.run(other) // a third message this week: capped
	require.Len(t, h.outbox("s"), 2)
	require.Len(t, h.outbox("o"), 2)
	cs := h.counts("s", 0)
	require.Equal(t, map[string]int64{"frequency_cap": 2}, cs["p"].Suppressed)
	co := h.counts("o", 0)
	require.Equal(t, map[string]int64{"frequency_cap": 2}, co["p"].Suppressed)
	_ = context.Background
}
