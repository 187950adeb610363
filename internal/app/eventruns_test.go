package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/app/embedded"
	"github.com/huabu/huabu/internal/triggers"
	"github.com/huabu/huabu/internal/workflows"
)

func TestRunErrorsInTheRoutersTerms(t *testing.T) {
	already := serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "", "")
	notFound := serviceerror.NewNotFound("workflow not found")
	down := serviceerror.NewUnavailable("temporal is restarting")
	for _, tc := range []struct {
		name string
		got  error
		// what the router sees
		start, signal error // the sentinel errors.Is must find, or nil
	}{
		{"no error", nil, nil, nil},
		{"already started", already, triggers.ErrRunStarted, nil},
		{"not found", notFound, nil, triggers.ErrNoRun},
		{"unavailable", down, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				err, want error
			}{{startError(tc.got), tc.start}, {signalError(tc.got), tc.signal}} {
				if tc.got == nil {
					require.NoError(t, c.err)
					continue
				}
				require.Error(t, c.err)
				require.ErrorIs(t, c.err, tc.got, "Temporal's error stays in the chain")
				for _, sentinel := range []error{triggers.ErrRunStarted, triggers.ErrNoRun} {
					require.Equal(t, sentinel == c.want, errors.Is(c.err, sentinel), sentinel.Error())
				}
			}
		})
	}
}

// TestTemporalRunsOnTheServer: the router's Runs over the real (embedded)
// server — an entry window's run starts under its id with the event run's
// input; a second start under that id, running or finished, answers
// ErrRunStarted; a signal reaches a running run and answers ErrNoRun once
// it ended or when it never existed.
func TestTemporalRunsOnTheServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := embeddedClient(ctx, t)
	// No worker polls the queue: the run stays open until terminated.
	runs := temporalRuns{client: c, taskQueue: "event-runs-test"}
	run := triggers.EventRun{WorkflowID: "huabu-welcome-event-7", CanvasID: "welcome", PlanHash: "0123456789abcdef", Users: []string{"u1", "u2"}}

	require.NoError(t, runs.StartEventRun(ctx, run))
	started := c.GetWorkflowHistory(ctx, run.WorkflowID, "", false, 0)
	require.True(t, started.HasNext())
	first, err := started.Next()
	require.NoError(t, err)
	attrs := first.GetWorkflowExecutionStartedEventAttributes()
	require.Equal(t, workflows.RunName, attrs.GetWorkflowType().GetName())
	require.Equal(t, "event-runs-test", attrs.GetTaskQueue().GetName())
	var in workflows.RunInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in))
	require.Equal(t, workflows.EventRunInput("welcome", "0123456789abcdef", []string{"u1", "u2"}), in)

	require.ErrorIs(t, runs.StartEventRun(ctx, run), triggers.ErrRunStarted, "running")
	require.NoError(t, runs.SignalArrivals(ctx, run.WorkflowID))

	require.NoError(t, c.TerminateWorkflow(ctx, run.WorkflowID, "", "test"))
	require.ErrorIs(t, runs.StartEventRun(ctx, run), triggers.ErrRunStarted, "finished: the id is not reused")
	require.ErrorIs(t, runs.SignalArrivals(ctx, run.WorkflowID), triggers.ErrNoRun, "ended")
	require.ErrorIs(t, runs.SignalArrivals(ctx, "huabu-welcome-event-never"), triggers.ErrNoRun, "never started")
}

// TestEventRunsStartEagerly: with a worker of the task queue on the same
// client, as in every Huabu process, the server accepts the start eagerly —
// the run's first workflow task comes back in the start's answer instead of
// through the server's transfer queue and matching (ADR 045).
func TestEventRunsStartEagerly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := embeddedClient(ctx, t)
	// The interpreter itself is not under test: a run that ends at once
	// under its name stands in for it.
	w := worker.New(c, "event-runs-eager", worker.Options{})
	w.RegisterWorkflowWithOptions(func(workflow.Context, workflows.RunInput) error { return nil },
		workflow.RegisterOptions{Name: workflows.RunName})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	runs := temporalRuns{client: c, taskQueue: "event-runs-eager"}
	run := triggers.EventRun{WorkflowID: "huabu-welcome-event-8", CanvasID: "welcome", PlanHash: "0123456789abcdef", Users: []string{"u1"}}
	require.NoError(t, runs.StartEventRun(ctx, run))
	require.NoError(t, c.GetWorkflow(ctx, run.WorkflowID, "").Get(ctx, nil), "the run ran on the worker")
	history := c.GetWorkflowHistory(ctx, run.WorkflowID, "", false, 0)
	first, err := history.Next()
	require.NoError(t, err)
	require.True(t, first.GetWorkflowExecutionStartedEventAttributes().GetEagerExecutionAccepted(),
		"the server handed the first workflow task back with the start")
}

// embeddedClient starts the embedded Temporal server and dials it; both end
// with the test.
func embeddedClient(ctx context.Context, t *testing.T) client.Client {
	t.Helper()
	srv, err := embedded.Start(ctx, embedded.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Stop()) })
	c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace(),
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}
