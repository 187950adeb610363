package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/reports"
)

// holesCanvas prints the owner's name bare (a hole when the owner is not in
// the staff directory), the user's name with a default, and hands each
// owner a task that prints the staff member's grid bare.
const holesCanvas = `id: holes
trigger: {manual: {}}
audience: 'user.id in ["u001", "u002", "u003", "u004"]'
steps:
  - id: coupon
    push: {channel: wecom.customer, text: "好久不见！{{ .owner.name }}为您准备了回归礼包"}
  - id: named
    push: {channel: sms, template: SMS_1, params: {opens: "{{ .user.traits.app_opens_7d | default \"没有\" }}"}}
  - id: brief
    staff_task:
      text: "{{ .staff.grid }}今日推荐：会员日专属权益已上线"
      deadline: 9h
`

// TestMissingFieldIsNotSent follows the trap: profiles imported,
// the staff directory not (only one member of it, without a grid). The
// message that prints the owner's name bare is not sent to anyone whose
// owner is unknown: suppressed with reason missing_data, counted in the
// report; a defaulted field sends; a task with a hole is not created.
func TestMissingFieldIsNotSent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	cfg := exampleConfig(t, dir, map[string]string{"holes.yaml": holesCanvas}, nil, nil)
	app := startAppIn(t, cfg, dir)
	schema, err := cfg.Schema()
	require.NoError(t, err)
	profiles, err := examples.FS.Open("profiles.jsonl")
	require.NoError(t, err)
	_, err = ingest.ImportProfiles(ctx, app.Store(), schema, profiles, ingest.Options{})
	require.NoError(t, err)
	// u001's owner lina is in the directory with a name but no grid; the
	// owners of u002..u004 are not in it at all.
	_, err = ingest.ImportStaff(ctx, app.Store(), strings.NewReader(`{"userid": "lina", "name": "李娜"}`+"\n"))
	require.NoError(t, err)

	started, err := app.StartRun(ctx, "holes", nil)
	require.NoError(t, err)
	res, err := app.WaitRun(ctx, started.WorkflowID)
	require.NoError(t, err, "a hole is no reason for the run to fail")
	require.Equal(t, int64(4), res.Stats.Entered)

	msgs, err := app.Store().Outbox(ctx, "holes", 100)
	require.NoError(t, err)
	coupons := 0
	for _, m := range msgs {
		text := string(m.Message)
		require.NotContains(t, text, "好久不见！为您", "never a message with a hole")
		if m.StepID == "coupon" {
			coupons++
			require.Equal(t, "u001", m.UserID, "only the customer whose owner has a name")
			require.Contains(t, text, "好久不见！李娜为您准备了回归礼包")
		}
		if m.StepID == "named" {
			require.Contains(t, text, `"opens":"没有"`, "a default fills the gap (no events: no traits)")
		}
		require.NotEqual(t, "brief", m.StepID, "lina has no grid; the other owners are unknown to the directory")
	}
	require.Equal(t, 1, coupons)

	rep, err := reports.Build(ctx, app.Store(), "holes", 0)
	require.NoError(t, err)
	steps := map[string]int64{}
	for _, s := range rep.Steps {
		steps[s.StepID+"/sent"] = s.Sent
		steps[s.StepID+"/missing"] = s.Suppressed[canvases.ReasonMissingData]
	}
	require.Equal(t, map[string]int64{
		"coupon/sent": 1, "coupon/missing": 3,
		"named/sent": 4, "named/missing": 0,
		"brief/sent": 0, "brief/missing": 0,
	}, steps)
	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	require.Contains(t, text.String(), "missing_data 3", "the report names the reason")

	// lina has no grid, the other owners no directory entry at all: no
	// task is recorded with a hole in it; each fails with the reason.
	tasks, err := app.Store().StaffTasks(ctx, res.RunID, "brief")
	require.NoError(t, err)
	require.Len(t, tasks, 4)
	for _, task := range tasks {
		require.Equal(t, "failed", task.State, task.Staff)
		require.Equal(t, canvases.ReasonMissingData, task.Reason, task.Staff)
	}
	staff, err := reports.BuildStaff(ctx, app.Store(), "holes", 0, reports.ByStaff)
	require.NoError(t, err)
	require.Equal(t, int64(4), staff.Total.Failed)
}
