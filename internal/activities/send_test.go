package activities

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"
)

// TestSendAttempts: a regular attempt of Send is named by its run, activity
// id and attempt number (a retry is a new attempt); a local one re-run by a
// retried workflow task has the same three, so each run of it must still
// get a name of its own, or it would resend what the dead run left pending.
func TestSendAttempts(t *testing.T) {
	info := activity.Info{WorkflowExecution: workflow.Execution{ID: "wf", RunID: "r1"}, ActivityID: "5", Attempt: 1}
	require.Equal(t, "r1/5/1", sendAttempt(info))
	require.Equal(t, sendAttempt(info), sendAttempt(info), "the same regular attempt, the same name")
	info.Attempt = 2
	require.Equal(t, "r1/5/2", sendAttempt(info))

	info.IsLocalActivity, info.Attempt = true, 1
	first, again := sendAttempt(info), sendAttempt(info)
	require.NotEqual(t, first, again)
	require.Regexp(t, `^r1/5/1/[0-9a-f]{16}$`, first)
}
