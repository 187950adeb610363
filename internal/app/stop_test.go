package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

const stopCanvas = `
id: stop-on-server
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: sms, template: SMS_HELLO}
  - id: two-ways
    split: [{weight: 50, goto: wait-use}, {weight: 50, goto: nap}]
  - id: wait-use
    wait: {event: coupon_used, timeout: 3d}
  - id: thanks
    push: {channel: sms, template: SMS_THANKS}
  - id: nap
    wait: 2d
  - id: later
    push: {channel: sms, template: SMS_LATER}
`

// TestStopSignalAndCancelEndRunOnServer: on the real (embedded) server, a
// run asleep on timers and waiting for an event ends when cancelled after
// a stop signal: its users exit with the stop's reason where they were,
// and the run is recorded as cancelled. With -record-histories its history
// is kept for the replay test (internal/workflows/testdata/stopped-run.json).
func TestStopSignalAndCancelEndRunOnServer(t *testing.T) {
	app := startExampleApp(t, map[string]string{"stop.yaml": stopCanvas})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started, err := app.StartRun(ctx, "stop-on-server", nil)
	require.NoError(t, err)
	// Once both cohorts sleep (the status lists them), stop the run.
	require.Eventually(t, func() bool {
		v, err := app.Client().QueryWorkflow(ctx, started.WorkflowID, "", workflows.StatusQuery)
		if err != nil {
			return false
		}
		var st workflows.Status
		return v.Get(&st) == nil && len(st.Waiting) == 2 && st.Active == 0
	}, time.Minute, 50*time.Millisecond)
	require.NoError(t, app.Client().SignalWorkflow(ctx, started.WorkflowID, "", workflows.StopSignal, workflows.Stop{Reason: "stopped", By: "ops"}))
	require.NoError(t, app.Client().CancelWorkflow(ctx, started.WorkflowID, ""))
	_, err = app.WaitRun(ctx, started.WorkflowID)
	require.Error(t, err, "a cancelled run ends as cancelled")

	run, err := app.Store().RunByWorkflow(ctx, started.WorkflowID)
	require.NoError(t, err)
	require.Equal(t, store.RunCancelled, run.State)
	require.Equal(t, "stopped by ops", run.Error)
	counts, _, err := app.Store().Counts(ctx, "stop-on-server", run.ID)
	require.NoError(t, err)
	entered := counts["hello"].Entered
	require.Positive(t, entered)
	require.Equal(t, entered, counts["wait-use"].Exited+counts["nap"].Exited, "every user exits, where they were")
	require.Equal(t, counts["wait-use"].Entered, counts["wait-use"].Exited)
	require.Equal(t, counts["nap"].Entered, counts["nap"].Exited)

	if *recordHistories {
		desc, err := app.Client().DescribeWorkflowExecution(ctx, started.WorkflowID, "")
		require.NoError(t, err)
		path := filepath.Join("..", "workflows", "testdata", "stopped-run.json")
		writeHistory(t, path, started.WorkflowID, history(t, ctx, app.Client(), started.WorkflowID, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()))
	}
}
