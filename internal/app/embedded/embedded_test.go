package embedded_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/app/embedded"
)

// testLogger writes server warnings to stderr rather than t.Log: server
// goroutines may still log after a test has returned.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func startServer(t testing.TB, dir string) *embedded.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	srv, err := embedded.Start(ctx, embedded.Options{DataDir: dir, Logger: testLogger()})
	require.NoError(t, err)
	t.Logf("server ready at %s after %s", srv.HostPort(), time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() { require.NoError(t, srv.Stop()) })
	return srv
}

func dial(t testing.TB, srv *embedded.Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  srv.HostPort(),
		Namespace: srv.Namespace(),
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func runWorker(t testing.TB, c client.Client, queue string, opts worker.Options, register func(worker.Registry)) {
	t.Helper()
	w := worker.New(c, queue, opts)
	register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}

func Greet(_ context.Context, name string) (string, error) { return "hello " + name, nil }

func GreetWorkflow(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, Greet, name).Get(ctx, &out)
	return out, err
}

func TestWorkflowWithActivity(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "temporal") // created by Start
	srv := startServer(t, dir)
	require.Equal(t, "default", srv.Namespace())
	require.FileExists(t, filepath.Join(dir, embedded.DBFile))
	c := dial(t, srv)
	runWorker(t, c, "greet", worker.Options{}, func(r worker.Registry) {
		r.RegisterWorkflow(GreetWorkflow)
		r.RegisterActivity(Greet)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "greet"}, GreetWorkflow, "huabu")
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "hello huabu", out)
}

func TestInMemory(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	c := dial(t, srv)
	runWorker(t, c, "mem", worker.Options{}, func(r worker.Registry) {
		r.RegisterWorkflow(GreetWorkflow)
		r.RegisterActivity(Greet)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "mem"}, GreetWorkflow, "memory")
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "hello memory", out)
}

func TestStartRejectsSecondServerOnSameDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir)
	_, err := embedded.Start(context.Background(), embedded.Options{DataDir: dir, Logger: testLogger()})
	require.ErrorContains(t, err, "already running")
	require.NoError(t, srv.Stop())
	require.NoError(t, srv.Stop(), "Stop is idempotent")
}

func TestStartFailsOnBusyPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, err = embedded.Start(context.Background(), embedded.Options{
		DataDir:      t.TempDir(),
		FrontendPort: l.Addr().(*net.TCPAddr).Port,
		Logger:       testLogger(),
	})
	require.ErrorContains(t, err, "frontend port")
}

// Schedules run on the server's internal per-namespace worker; this proves it
// is up and polling.
func TestScheduleStartsWorkflows(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := dial(t, srv)
	runs := make(chan string, 16)
	record := func(_ context.Context, name string) (string, error) {
		runs <- name
		return name, nil
	}
	runWorker(t, c, "sched", worker.Options{}, func(r worker.Registry) {
		r.RegisterWorkflow(GreetWorkflow)
		r.RegisterActivityWithOptions(record, activityName("Greet"))
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:                 "every-second",
		Spec:               client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Second}}},
		TriggerImmediately: true,
		Action: &client.ScheduleWorkflowAction{
			ID:        "scheduled",
			Workflow:  GreetWorkflow,
			Args:      []any{"schedule"},
			TaskQueue: "sched",
		},
	})
	require.NoError(t, err)
	defer func() { _ = h.Delete(context.Background()) }()

	// The immediate trigger plus at least one interval firing.
	for i := range 2 {
		select {
		case name := <-runs:
			require.Equal(t, "schedule", name)
		case <-ctx.Done():
			t.Fatalf("scheduled run %d did not happen: %v", i+1, ctx.Err())
		}
	}
	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, desc.Info.NumActions, 1)
}

func activityName(name string) activity.RegisterOptions {
	return activity.RegisterOptions{Name: name}
}

const (
	sleepyID    = "sleepy"
	sleepyQueue = "sleepy"
	sleepyTimer = 3 * time.Second
)

func SleepyWorkflow(ctx workflow.Context, name string) (string, error) {
	if err := workflow.Sleep(ctx, sleepyTimer); err != nil {
		return "", err
	}
	return GreetWorkflow(ctx, name)
}

// TestTimerSurvivesRestart starts a workflow that waits on a timer in a child
// process, which stops its server and exits while the timer is pending. This
// process then opens the same DataDir (a fresh SQLite connection, so only what
// reached the file counts), lets the workflow finish, and restarts once more
// in-process to show a Stop/Start cycle in one process keeps the data too.
func TestTimerSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartSleepy$", "-test.v")
	cmd.Env = append(os.Environ(), "HUABU_EMBEDDED_HELPER_DIR="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child process:\n%s", out)
	require.Contains(t, string(out), "timer pending, stopping", "child process:\n%s", out)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	{
		srv, err := embedded.Start(ctx, embedded.Options{DataDir: dir, Logger: testLogger()})
		require.NoError(t, err)
		c := dial(t, srv)
		w := worker.New(c, sleepyQueue, worker.Options{})
		w.RegisterWorkflow(SleepyWorkflow)
		w.RegisterActivity(Greet)
		require.NoError(t, w.Start())
		var got string
		require.NoError(t, c.GetWorkflow(ctx, sleepyID, "").Get(ctx, &got))
		require.Equal(t, "hello restart", got)
		w.Stop()
		c.Close()
		require.NoError(t, srv.Stop())
	}

	srv := startServer(t, dir)
	c := dial(t, srv)
	desc, err := c.DescribeWorkflowExecution(ctx, sleepyID, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.WorkflowExecutionInfo.Status)
	var got string
	require.NoError(t, c.GetWorkflow(ctx, sleepyID, "").Get(ctx, &got))
	require.Equal(t, "hello restart", got)
}

// TestHelperStartSleepy is the child half of TestTimerSurvivesRestart.
func TestHelperStartSleepy(t *testing.T) {
	dir := os.Getenv("HUABU_EMBEDDED_HELPER_DIR")
	if dir == "" {
		t.Skip("helper for TestTimerSurvivesRestart")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Options{DataDir: dir, Logger: testLogger()})
	require.NoError(t, err)
	c := dial(t, srv)
	w := worker.New(c, sleepyQueue, worker.Options{})
	w.RegisterWorkflow(SleepyWorkflow)
	w.RegisterActivity(Greet)
	require.NoError(t, w.Start())

	_, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: sleepyID, TaskQueue: sleepyQueue}, SleepyWorkflow, "restart")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return timerStarted(ctx, c, sleepyID) }, 10*time.Second, 20*time.Millisecond)
	fmt.Println("timer pending, stopping")
	w.Stop()
	c.Close()
	require.NoError(t, srv.Stop())
}

func timerStarted(ctx context.Context, c client.Client, id string) bool {
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return false
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED {
			return true
		}
	}
	return false
}
