package triggers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
)

// begin records the run of a started window as the interpreter's BeginRun
// does (under the workflow id and a Temporal run id).
func (f *windowsFixture) begin(wf string) {
	f.t.Helper()
	f.temporal.mu.Lock()
	run := f.temporal.started[wf]
	f.temporal.mu.Unlock()
	require.NotEmpty(f.t, run.WorkflowID, "the window's run was started")
	_, err := f.st.BeginRun(context.Background(), wf+"/temporal-run", run.CanvasID, run.PlanHash, canvases.TriggerEvent)
	require.NoError(f.t, err)
}

// closesAt is the stored closes_at of the canvas's window whose run is wf.
func (f *windowsFixture) closesAt(wf string) time.Time {
	f.t.Helper()
	ws, err := f.st.EntryWindows(context.Background(), "welcome")
	require.NoError(f.t, err)
	for _, w := range ws {
		if w.WorkflowID == wf {
			return w.ClosesAt
		}
	}
	f.t.Fatalf("no window %s", wf)
	return time.Time{}
}

func (f *windowsFixture) backPressured() *Router {
	o := f.options()
	o.BackPressure = true
	return f.loaded(o)
}

// TestBackPressuredWindows (ADR 035): with back-pressure a window starts
// after an eighth of its time once the run of its canvas's previous window
// has begun (or there was none), gathers for its whole time while that run
// has not begun, and never starts early while an older window of its canvas
// is unstarted; the stored window says when it really closed.
func TestBackPressuredWindows(t *testing.T) {
	ctx := context.Background()

	t.Run("windows close when the canvas's last run has begun", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.backPressured()
		first := f.signups("u1", "u2")
		opened := f.clock.now()
		require.NoError(t, r.Route(ctx, first))
		f.clock.advance(100 * time.Millisecond)
		require.Zero(t, r.StartWindows(ctx, false), "an eighth of the window has not passed")
		f.clock.advance(50 * time.Millisecond)
		require.Equal(t, 1, r.StartWindows(ctx, false), "no run of the canvas is on its way: the window starts after an eighth")
		wf1 := workflowID("welcome", first[0].ID)
		require.Equal(t, []string{"u1", "u2"}, f.temporal.users()[wf1])
		require.True(t, opened.Add(150*time.Millisecond).Equal(f.closesAt(wf1)), "the window closed when it started, before its time")

		// The first run has not begun: the next window gathers its whole time.
		second := f.signups("u3")
		opened = f.clock.now()
		require.NoError(t, r.Route(ctx, second))
		f.clock.advance(500 * time.Millisecond)
		require.NoError(t, r.Route(ctx, f.signups("u4")))
		require.Zero(t, r.StartWindows(ctx, false), "the canvas's last run has not begun")
		f.clock.advance(500 * time.Millisecond)
		require.Equal(t, 1, r.StartWindows(ctx, false), "its time is up")
		wf2 := workflowID("welcome", second[0].ID)
		require.Equal(t, []string{"u3", "u4"}, f.temporal.users()[wf2])
		require.True(t, opened.Add(time.Second).Equal(f.closesAt(wf2)), "it closed at its time")

		// The first run begins: that is not the canvas's last one.
		f.begin(wf1)
		third := f.signups("u5")
		require.NoError(t, r.Route(ctx, third))
		f.clock.advance(200 * time.Millisecond)
		require.Zero(t, r.StartWindows(ctx, false), "the second run, the canvas's last, has not begun")
		f.begin(wf2)
		require.Equal(t, 1, r.StartWindows(ctx, false), "the last run has begun")
		require.Equal(t, []string{"u5"}, f.temporal.users()[workflowID("welcome", third[0].ID)])
	})

	t.Run("an older unstarted window holds the newer one to its time", func(t *testing.T) {
		f := newWindowsFixture(t)
		held := &heldStarts{runs: f.temporal, hold: map[string]chan struct{}{}, waiting: make(chan string, 1)}
		o := f.options()
		o.Runs = held
		o.BackPressure = true
		r := f.refreshed(o)
		first := f.signups("u1")
		release := make(chan struct{})
		held.hold[workflowID("welcome", first[0].ID)] = release
		require.NoError(t, r.Route(ctx, first))
		f.clock.advance(200 * time.Millisecond)
		started := make(chan int, 1)
		go func() { started <- r.StartWindows(ctx, false) }()
		<-held.waiting // the first window's start hangs

		second := f.signups("u2")
		require.NoError(t, r.Route(ctx, second))
		f.clock.advance(200 * time.Millisecond)
		require.Zero(t, r.StartWindows(ctx, false), "the canvas's previous window is still starting")
		close(release)
		require.Equal(t, 1, <-started)
		require.Zero(t, r.StartWindows(ctx, false), "started, its run has not begun")
		f.begin(workflowID("welcome", first[0].ID))
		require.Equal(t, 1, r.StartWindows(ctx, false))
		require.Equal(t, []string{"u2"}, f.temporal.users()[workflowID("welcome", second[0].ID)])
	})

	t.Run("Run starts a waiting window as soon as the last run begins", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.backPressured()
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); r.Run(rctx) }()
		defer func() { stop(); <-done }()

		first := f.signups("u1")
		require.NoError(t, r.Route(ctx, first))
		f.clock.advance(200 * time.Millisecond)
		wf1 := workflowID("welcome", first[0].ID)
		require.Eventually(t, func() bool { return len(f.temporal.users()[wf1]) == 1 }, 30*time.Second, 5*time.Millisecond,
			"the first window starts after an eighth of its time")

		second := f.signups("u2")
		require.NoError(t, r.Route(ctx, second))
		f.clock.advance(200 * time.Millisecond) // of the window's 1 s: only its canvas's last run holds it
		f.begin(wf1)
		require.Eventually(t, func() bool { return len(f.temporal.users()) == 2 }, 30*time.Second, 5*time.Millisecond,
			"the loop looks whether the last run began and starts the window")
		require.Equal(t, []string{"u2"}, f.temporal.users()[workflowID("welcome", second[0].ID)])
	})
}
