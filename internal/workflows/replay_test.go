package workflows

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays histories recorded from real runs on
// the embedded server (go test ./internal/app -run 'TestRecordReplayHistories|
// TestRunCarriesWorkAcrossContinueAsNew' -record-histories): every step
// kind before and after loopChange (replay-all-steps*.json), and a run that
// continued as new again and again with a staff task's child, a waiting
// cohort and arrivals in flight, its signals and the child itself
// (carry-across-*.json), and a run stopped (stop signal, cancellation)
// with cohorts asleep and waiting for an event (stopped-run.json, from
// go test ./internal/app -run TestStopSignalAndCancelEndRunOnServer
// -record-histories). A change to the interpreter that would break
// running workflows fails here; guard such changes with workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	// The workflow id each history ran under (workflows name their children
	// after it); histories not listed replay under the replayer's default.
	ids := map[string]string{}
	if b, err := os.ReadFile(filepath.Join("testdata", "workflow-ids.json")); err == nil {
		require.NoError(t, json.Unmarshal(b, &ids))
	}
	for _, f := range files {
		if filepath.Base(f) == "workflow-ids.json" {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(Run, workflowOptions())
			r.RegisterWorkflowWithOptions(SendOne, SendOneOptions())
			r.RegisterWorkflowWithOptions(StaffTaskLoop, StaffTaskLoopOptions())
			file, err := os.Open(f)
			require.NoError(t, err)
			defer file.Close()
			hist, err := client.HistoryFromJSON(file, client.HistoryJSONOptions{})
			require.NoError(t, err)
			opts := worker.ReplayWorkflowHistoryOptions{}
			opts.OriginalExecution.ID = ids[filepath.Base(f)]
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, hist, opts))
		})
	}
}
