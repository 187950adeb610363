package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/store"
)

// Runs of named users talk to their activities locally first (ADR 032); a
// local activity's retries end with its timeout, so what it cannot finish
// goes on as the regular activity (localFirst). These are the cases a local
// activity alone lost the run on (found in review): each runs for an
// audience run and for a run of named users, which must behave alike.

func namedOrNot(named bool, users int) []string {
	if !named {
		return nil
	}
	ids := make([]string, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%03d", i)
	}
	return ids
}

// beginFails fails the first n BeginRun (or BeginRunEntry) calls, as a store unavailable for a
// couple of minutes would.
type beginFails struct {
	activities.Store
	mu sync.Mutex
	n  int
}

func (s *beginFails) BeginRun(ctx context.Context, key, canvas, hash, trigger string) (store.Run, error) {
	s.mu.Lock()
	s.n--
	fail := s.n >= 0
	s.mu.Unlock()
	if fail {
		return store.Run{}, errors.New("injected: store unavailable")
	}
	return s.Store.BeginRun(ctx, key, canvas, hash, trigger)
}

// BeginRunEntry fails as BeginRun does: runs of named users begin with it
// (BeginEnter).
func (s *beginFails) BeginRunEntry(ctx context.Context, e store.RunEntry) (store.Run, store.Cohort, error) {
	s.mu.Lock()
	s.n--
	fail := s.n >= 0
	s.mu.Unlock()
	if fail {
		return store.Run{}, store.Cohort{}, errors.New("injected: store unavailable")
	}
	return s.Store.BeginRunEntry(ctx, e)
}

// TestRunWaitsOutAStoreOutageAtItsStart: the store refuses BeginRun for
// about two minutes of retries; the run begins once it answers.
func TestRunWaitsOutAStoreOutageAtItsStart(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) {
			h := newHarness(t)
			h.profiles(5, func(int) map[string]any { return nil })
			plan := h.deploy("id: late\ntrigger: {manual: {}}\nsteps:\n  - {id: hello, push: {channel: outbox, text: \"hi\"}}\n")
			h.acts.Store = &beginFails{Store: h.store, n: 8}
			env := h.newEnv()
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "outage-run", WorkflowExecutionTimeout: 48 * time.Hour})
			env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual", UserIDs: namedOrNot(named, 5)})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			require.Len(t, h.outbox("late"), 5)
		})
	}
}

// pausedFor: the canvas is paused for the first n looks, then active.
type pausedFor struct {
	*store.SQLite
	mu    sync.Mutex
	looks int
	n     int
}

func (c *pausedFor) ControlOf(context.Context, string) (store.CanvasControl, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.looks++
	if c.looks <= c.n {
		return store.CanvasControl{State: store.CanvasPaused}, nil
	}
	return store.CanvasControl{State: store.CanvasActive, Since: time.Now()}, nil
}

// TestRunHoldsThroughALongPause: a canvas paused for 8 minutes while a run
// is at its push step (longer than a local Send may take; the test
// environment gives regular activities 10 minutes, a real server as long
// as the run lives): the run holds, then sends when it is resumed.
func TestRunHoldsThroughALongPause(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) {
			activities.PauseRecheck = time.Minute
			t.Cleanup(func() { activities.PauseRecheck = 5 * time.Second })
			h := newHarness(t)
			h.profiles(5, func(int) map[string]any { return nil })
			plan := h.deploy("id: late\ntrigger: {manual: {}}\nsteps:\n  - {id: hello, push: {channel: outbox, text: \"hi\"}}\n")
			controls := &pausedFor{SQLite: h.store, n: 8}
			h.acts.Controls = controls
			h.acts.ResumeGrace = 24 * time.Hour
			env := h.newEnv()
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "pause-run", WorkflowExecutionTimeout: 48 * time.Hour})
			env.SetTestTimeout(5 * time.Minute)
			env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual", UserIDs: namedOrNot(named, 5)})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			require.Greater(t, controls.looks, 8, "held until the pause ended")
			require.Len(t, h.outbox("late"), 5)
		})
	}
}

// TestNamedRunsExpiredSendStaysExpired: a run of named users at its push
// step while the canvas is paused; it is resumed past resume_grace. The
// local Send holds, the regular Send it goes on as is a fresh activity
// (attempt 1, no heartbeat — as a local Send re-run after a crash is): it
// must find the hold by the send's key and decide it expired, and its retry
// after a failed settle must not send either.
func TestNamedRunsExpiredSendStaysExpired(t *testing.T) {
	activities.PauseRecheck = 10 * time.Millisecond
	t.Cleanup(func() { activities.PauseRecheck = 5 * time.Second })
	h := newHarness(t)
	h.profiles(1500, func(int) map[string]any { return nil })
	plan := h.deploy("id: late\ntrigger: {manual: {}}\nsteps:\n  - {id: hello, push: {channel: outbox, text: \"hi\"}}\n")
	failing := &settleFailsOnce{Store: h.store}
	h.acts.Store = failing
	var decisions []bool
	h.acts.Controls = &scriptedControls{SQLite: h.store, resumedAt: time.Now().Add(2 * time.Hour),
		decided: func(expired bool) { decisions = append(decisions, expired); failing.arm() }}
	h.acts.ResumeGrace = time.Hour
	env := h.newEnv()
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual", UserIDs: namedOrNot(true, 1500)})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res RunResult
	require.NoError(t, env.GetWorkflowResult(&res))

	require.Equal(t, []bool{true}, decisions, "one decision: expired")
	require.Empty(t, h.outbox("late"), "nothing sent")
	c := h.counts("late", res.RunID)["hello"]
	require.Zero(t, c.Sent)
	require.Equal(t, int64(1500), c.Suppressed[activities.ReasonExpired]+c.Unknown)
}

// gateOnce admits the first run it is asked about and refuses every later
// question, as a canvas stopped right after its run began.
type gateOnce struct{ asked atomic.Int32 }

func (g *gateOnce) RunRefusal(context.Context, string, string, int64) (string, error) {
	if g.asked.Add(1) > 1 {
		return "canvas stopped", nil
	}
	return "", nil
}

// TestRetriedBeginDoesNotAskTheGateAgain (review-1930 M1, review-2015 L1):
// the run's begin commits, its completion is lost, and the canvas is stopped
// before the retry: the retry returns the run it recorded, so the run goes on
// and ends instead of failing with the run never finished (and, for named
// users, its users entered). Named runs begin with BeginEnter, audience runs
// with BeginRun.
func TestRetriedBeginDoesNotAskTheGateAgain(t *testing.T) {
	for _, tc := range []struct {
		named    bool
		activity string
	}{{true, "BeginEnter"}, {false, "BeginRun"}} {
		t.Run(tc.activity, func(t *testing.T) {
			h := newHarness(t)
			h.profiles(5, func(int) map[string]any { return nil })
			plan := h.deploy("id: gated\ntrigger: {manual: {}}\nsteps:\n  - {id: hello, push: {channel: outbox, text: \"hi\"}}\n")
			gate := &gateOnce{}
			h.acts.Gate = gate
			h.faults = newFaultInjector(tc.activity, loseCompletion)
			env := h.newEnv()
			env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual", UserIDs: namedOrNot(tc.named, 5)})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			_, injected := h.faults.counts()
			require.Positive(t, injected[tc.activity], "no completion was lost")
			require.EqualValues(t, 1, gate.asked.Load(), "the retry asked the gate again")
			var res RunResult
			require.NoError(t, env.GetWorkflowResult(&res))
			run, err := h.store.GetRun(context.Background(), res.RunID)
			require.NoError(t, err)
			require.Equal(t, store.RunCompleted, run.State)
			require.Len(t, h.outbox("gated"), 5)
		})
	}
}
