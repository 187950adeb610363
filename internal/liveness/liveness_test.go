package liveness

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// silent runs longer than its heartbeat timeout without heartbeating, as
// a single slow store write does.
func silent(ctx context.Context) (string, error) {
	select {
	case <-time.After(1500 * time.Millisecond):
		return "done", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// resumable records a cursor, then fails; its second attempt fails after
// a while without heartbeating; the third returns the cursor it was given.
func resumable(ctx context.Context) (string, error) {
	switch activity.GetInfo(ctx).Attempt {
	case 1:
		activity.RecordHeartbeat(ctx, "page-5")
		return "", errors.New("transient")
	case 2:
		time.Sleep(600 * time.Millisecond) // liveness heartbeats go out meanwhile
		return "", errors.New("transient again")
	}
	var cursor string
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &cursor)
	}
	return cursor, nil
}

func run(t *testing.T, act any, interceptors []interceptor.WorkerInterceptor, attempts int32) (string, error) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: interceptors})
	env.RegisterActivityWithOptions(act, activity.RegisterOptions{Name: "act"})
	wf := func(ctx workflow.Context) (string, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute, HeartbeatTimeout: 500 * time.Millisecond,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Millisecond, MaximumAttempts: attempts},
		})
		var out string
		err := workflow.ExecuteActivity(ctx, "act").Get(ctx, &out)
		return out, err
	}
	env.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: "wf"})
	env.ExecuteWorkflow("wf")
	require.True(t, env.IsWorkflowCompleted())
	var out string
	err := env.GetWorkflowError()
	if err == nil {
		require.NoError(t, env.GetWorkflowResult(&out))
	}
	return out, err
}

func TestLivenessHeartbeats(t *testing.T) {
	live := []interceptor.WorkerInterceptor{Interceptor(100 * time.Millisecond)}
	t.Run("a silent activity outlives its heartbeat timeout while its worker lives", func(t *testing.T) {
		out, err := run(t, silent, live, 1)
		require.NoError(t, err)
		require.Equal(t, "done", out)
	})
	t.Run("without the interceptor it times out (the test can fail)", func(t *testing.T) {
		_, err := run(t, silent, nil, 1)
		var timeout *temporal.TimeoutError
		require.ErrorAs(t, err, &timeout)
	})
	t.Run("a liveness heartbeat keeps the previous attempt's cursor", func(t *testing.T) {
		out, err := run(t, resumable, live, 3)
		require.NoError(t, err)
		require.Equal(t, "page-5", out)
	})
}
