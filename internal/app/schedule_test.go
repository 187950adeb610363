package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/store"
)

// overlapCanvas is a daily canvas whose runs last two days.
func overlapCanvas(id, overlap string) string {
	o := ""
	if overlap != "" {
		o = ", overlap: " + overlap
	}
	return fmt.Sprintf(`id: %s
trigger: {schedule: {cron: "0 10 * * *"%s}}
steps:
  - {id: hello, push: {channel: outbox, text: 早上好}}
  - {id: two-days, wait: 2d}
  - {id: again, push: {channel: outbox, text: 两天后}}
`, id, o)
}

// TestScheduleOverlap (issue 11, defect 8): a daily canvas whose runs
// last two days runs every day by default — each run its own cohort —
// and skips or buffers overlapping runs only when the canvas says so.
// Three days are backfilled through each Temporal Schedule.
func TestScheduleOverlap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startExampleApp(t, map[string]string{
		"overlap-default.yaml": overlapCanvas("overlap-default", ""),
		"overlap-skip.yaml":    overlapCanvas("overlap-skip", "skip"),
		"overlap-buffer.yaml":  overlapCanvas("overlap-buffer", "buffer_one"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		id               string
		policy           enums.ScheduleOverlapPolicy
		running, skipped int
	}{
		{"overlap-default", enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL, 3, 0},
		{"overlap-skip", enums.SCHEDULE_OVERLAP_POLICY_SKIP, 1, 2},
		{"overlap-buffer", enums.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, 1, 1},
	} {
		t.Run(tc.id, func(t *testing.T) {
			h := app.Client().ScheduleClient().GetHandle(ctx, schedulePrefix+tc.id)
			d, err := h.Describe(ctx)
			require.NoError(t, err)
			require.Equal(t, tc.policy, d.Schedule.Policy.Overlap)
			now := time.Now()
			require.NoError(t, h.Backfill(ctx, client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{
				{Start: now.Add(-72 * time.Hour), End: now.Add(-time.Minute)},
			}}))
			var last client.ScheduleInfo
			require.Eventually(t, func() bool {
				d, err := h.Describe(ctx)
				require.NoError(t, err)
				last = d.Info
				if tc.policy == enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL {
					return d.Info.NumActions == 3 // the schedule does not follow runs it may overlap
				}
				return len(d.Info.RunningWorkflows) == tc.running && d.Info.NumActionsSkippedOverlap == tc.skipped
			}, 30*time.Second, 100*time.Millisecond, "schedule: %+v", &last)
			require.Eventually(t, func() bool {
				runs, err := app.Store().Runs(ctx, tc.id, 10)
				require.NoError(t, err)
				running := 0
				for _, r := range runs {
					if r.State == store.RunRunning && r.Entered > 0 {
						running++
					}
				}
				return len(runs) == tc.running && running == tc.running
			}, 30*time.Second, 100*time.Millisecond, "each running run is its own, entered cohort")
		})
	}
}
