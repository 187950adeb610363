package embedded_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"
)

// Throughput probes for the embedded server on SQLite. Run with a fixed
// count, e.g.
//
//	go test ./internal/app/embedded/ -run '^$' -bench . -benchtime 2000x
//
// Each reports its rate as a custom metric (wf/s, act/s); ns/op is the same
// number upside down. Server start-up is outside the timer.

func Noop(_ context.Context, i int) (int, error) { return i, nil }

func OneActivityWorkflow(ctx workflow.Context, i int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var out int
	err := workflow.ExecuteActivity(ctx, Noop, i).Get(ctx, &out)
	return out, err
}

// FanOutWorkflow runs n activities keeping at most window in flight, the way
// the interpreter works through the pages of a cohort.
func FanOutWorkflow(ctx workflow.Context, n, window int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	sel := workflow.NewSelector(ctx)
	var inFlight, done int
	var firstErr error
	for started := 0; started < n || inFlight > 0; {
		for ; inFlight < window && started < n; started++ {
			inFlight++
			sel.AddFuture(workflow.ExecuteActivity(ctx, Noop, started), func(f workflow.Future) {
				inFlight--
				done++
				if err := f.Get(ctx, nil); err != nil && firstErr == nil {
					firstErr = err
				}
			})
		}
		sel.Select(ctx)
	}
	return done, firstErr
}

// benchWorker is the SDK default on purpose: 2, 8 and 32 pollers measured
// the same here, the server side is the limit.
func benchWorker() worker.Options { return worker.Options{} }

// BenchmarkWorkflows: b.N workflows of one activity each, 200 started at a
// time, through a single worker.
func BenchmarkWorkflows(b *testing.B) {
	srv := startServer(b, b.TempDir())
	c := dial(b, srv)
	runWorker(b, c, "bench-wf", benchWorker(), func(r worker.Registry) {
		r.RegisterWorkflow(OneActivityWorkflow)
		r.RegisterActivity(Noop)
	})
	ctx := context.Background()

	b.ResetTimer()
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(200)
	for i := range b.N {
		g.Go(func() error {
			run, err := c.ExecuteWorkflow(gctx, client.StartWorkflowOptions{
				ID:        fmt.Sprintf("bench-wf-%d-%d", b.N, i),
				TaskQueue: "bench-wf",
			}, OneActivityWorkflow, i)
			if err != nil {
				return err
			}
			return run.Get(gctx, nil)
		})
	}
	require.NoError(b, g.Wait())
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "wf/s")
}

// BenchmarkActivities: one workflow driving b.N activities, 200 in flight.
func BenchmarkActivities(b *testing.B) {
	srv := startServer(b, b.TempDir())
	c := dial(b, srv)
	runWorker(b, c, "bench-act", benchWorker(), func(r worker.Registry) {
		r.RegisterWorkflow(FanOutWorkflow)
		r.RegisterActivity(Noop)
	})
	ctx := context.Background()

	b.ResetTimer()
	began := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        fmt.Sprintf("bench-act-%d", b.N),
		TaskQueue: "bench-act",
	}, FanOutWorkflow, b.N, 200)
	require.NoError(b, err)
	var done int
	require.NoError(b, run.Get(ctx, &done))
	require.Equal(b, b.N, done)
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "act/s")
}
