package triggers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// signals records the signals the router sends (as "workflow-id arrivals").
type signals struct {
	mu  sync.Mutex
	got []string
	err error // what every signal answers
}

func (s *signals) StartEventRun(context.Context, EventRun) error { return nil }

func (s *signals) SignalArrivals(_ context.Context, workflowID string) error {
	s.mu.Lock()
	s.got = append(s.got, workflowID+" arrivals")
	s.mu.Unlock()
	return s.err
}

// TestEndedRunsGetNoEvents (issue 11, defect 10, the router's side): the
// exit event and the awaited event of a user reach a running run — an
// exit, an arrival and a signal — but nothing reaches a run that ended
// (completed, failed or cancelled): its end is recorded and its waits are
// gone (FinishRun), and the router routes only to running runs.
func TestEndedRunsGetNoEvents(t *testing.T) {
	ctx := context.Background()
	f := newWindowsFixture(t)
	plan, problems := f.comp.Compile("coupon.yaml", []byte(`
id: coupon
trigger: {manual: {}}
exit: {event: unsubscribe}
steps:
  - id: wait-use
    wait: {event: coupon_used, timeout: 1d}
  - id: thanks
    push: {channel: outbox, text: 谢谢}
`))
	require.False(t, problems.HasErrors(), problems.Error())
	_, err := f.st.SavePlan(ctx, plan.ID, plan.Hash, plan.JSON(), "coupon.yaml")
	require.NoError(t, err)
	for _, end := range []string{"", store.RunCompleted, store.RunFailed, store.RunCancelled} {
		t.Run("state "+map[string]string{"": "running"}[end]+end, func(t *testing.T) {
			wf := "wf-" + end
			user := "user-" + end // each in a run of their own
			_, err := f.st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: user, Patch: []byte(`{}`)}})
			require.NoError(t, err)
			uids, err := f.st.UIDs(ctx, []string{user})
			require.NoError(t, err)
			uid := uids[user]
			run, err := f.st.BeginRun(ctx, wf, plan.ID, plan.Hash, canvases.TriggerManual)
			require.NoError(t, err)
			c, err := f.st.CreateCohort(ctx, wf+"/entry", run.ID, "", 0, time.Time{})
			require.NoError(t, err)
			require.NoError(t, f.st.WriteEntryChunk(ctx, c.ID, store.EntryChunk{CanvasID: plan.ID, RunID: run.ID, LastUID: uid, ToPage: 1,
				Pages: []store.Page{{No: 0, Members: []int64{uid}}}, RecordEntries: true}))
			require.NoError(t, f.st.RegisterWait(ctx, store.Wait{CohortID: c.ID, RunID: run.ID, CanvasID: plan.ID, PlanHash: plan.Hash,
				StepID: "wait-use", Event: "coupon_used", WorkflowID: wf, Deadline: time.Now().Add(time.Hour)}))
			if end != "" {
				require.NoError(t, f.st.FinishRun(ctx, run.ID, end, ""))
			}
			temporal := &signals{}
			r := New(Options{Store: f.st, Runs: temporal, Compiler: f.comp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(t, r.Refresh(ctx))
			f.nextID += 10
			events := []ingest.Event{
				{ID: f.nextID, UID: uid, UserID: user, Name: "coupon_used", Timestamp: time.Now()},
				{ID: f.nextID + 1, UID: uid, UserID: user, Name: "unsubscribe", Timestamp: time.Now()},
			}
			require.NoError(t, r.Route(ctx, events))
			exited, err := f.st.ExitedAmong(ctx, run.ID, []int64{uid})
			require.NoError(t, err)
			arrived, err := f.st.RecordArrivals(ctx, c.ID, []int64{uid}, time.Now()) // 0 when already recorded or no wait
			require.NoError(t, err)
			if end == "" {
				require.True(t, exited[uid], "the running run's user exits")
				require.Zero(t, arrived, "the arrival was recorded by the router")
				require.Equal(t, []string{fmt.Sprintf("%s %s", wf, "arrivals")}, temporal.got)
				return
			}
			require.False(t, exited[uid], "no exit into an ended run")
			require.Zero(t, arrived, "the ended run's wait is gone: no arrivals")
			require.Empty(t, temporal.got, "no signal to an ended run")
		})
	}
}

// TestSignalToARunThatEnded: a run can end between the arrival the router
// records and the signal that wakes it. Runs answering ErrNoRun (Temporal's
// NotFound, translated by the app) is not an error: the arrival is stored
// and routing goes on. Any other failure to signal fails the batch, so the
// feed routes it again.
func TestSignalToARunThatEnded(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		signal  error
		wantErr string
	}{
		{"signalled", nil, ""},
		{"the run ended meanwhile", fmt.Errorf("%w: %w", ErrNoRun, errors.New("workflow not found for ID: wf")), ""},
		{"Temporal unreachable", errors.New("connection refused"), "signal wf-arrive: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newWindowsFixture(t)
			plan, problems := f.comp.Compile("coupon.yaml", []byte(`
id: coupon
trigger: {manual: {}}
steps:
  - id: wait-use
    wait: {event: coupon_used, timeout: 1d}
`))
			require.False(t, problems.HasErrors(), problems.Error())
			_, err := f.st.SavePlan(ctx, plan.ID, plan.Hash, plan.JSON(), "coupon.yaml")
			require.NoError(t, err)
			_, err = f.st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u1", Patch: []byte(`{}`)}})
			require.NoError(t, err)
			uids, err := f.st.UIDs(ctx, []string{"u1"})
			require.NoError(t, err)
			uid := uids["u1"]
			run, err := f.st.BeginRun(ctx, "wf-arrive", plan.ID, plan.Hash, canvases.TriggerManual)
			require.NoError(t, err)
			c, err := f.st.CreateCohort(ctx, "wf-arrive/entry", run.ID, "", 0, time.Time{})
			require.NoError(t, err)
			require.NoError(t, f.st.WriteEntryChunk(ctx, c.ID, store.EntryChunk{CanvasID: plan.ID, RunID: run.ID, LastUID: uid, ToPage: 1,
				Pages: []store.Page{{No: 0, Members: []int64{uid}}}, RecordEntries: true}))
			require.NoError(t, f.st.RegisterWait(ctx, store.Wait{CohortID: c.ID, RunID: run.ID, CanvasID: plan.ID, PlanHash: plan.Hash,
				StepID: "wait-use", Event: "coupon_used", WorkflowID: "wf-arrive", Deadline: time.Now().Add(time.Hour)}))
			runs := &signals{err: tc.signal}
			r := New(Options{Store: f.st, Runs: runs, Compiler: f.comp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(t, r.Refresh(ctx))

			err = r.Route(ctx, []ingest.Event{{ID: 1, UID: uid, UserID: "u1", Name: "coupon_used", Timestamp: time.Now()}})

			require.Equal(t, []string{"wf-arrive arrivals"}, runs.got)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			again, err := f.st.RecordArrivals(ctx, c.ID, []int64{uid}, time.Now())
			require.NoError(t, err)
			require.Zero(t, again, "the arrival was stored before the signal")
		})
	}
}
