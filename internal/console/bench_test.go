package console

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// storeBackend reads a store the way app.App does (reports.Build over
// the store), for the page benchmark; what it does not need is not there.
type storeBackend struct {
	*fakeBackend
	st *store.SQLite
}

func (b storeBackend) Canvases(ctx context.Context) ([]server.CanvasInfo, error) {
	list, err := b.st.Canvases(ctx)
	var out []server.CanvasInfo
	for _, c := range list {
		p, err := canvases.UnmarshalPlan(c.Plan)
		if err != nil {
			return nil, err
		}
		out = append(out, server.CanvasInfo{ID: c.ID, Name: p.Name, Plan: p.ShortHash(), Trigger: p.Trigger.Kind, Active: c.Active, DeployedAt: c.DeployedAt, State: "active"})
	}
	return out, err
}

func (b storeBackend) Report(ctx context.Context, canvasID string, runID int64) (*reports.Report, error) {
	return reports.Build(ctx, b.st, canvasID, runID)
}

func (b storeBackend) Runs(ctx context.Context, canvasID string, limit int) ([]server.RunInfo, error) {
	runs, err := b.st.Runs(ctx, canvasID, limit)
	var out []server.RunInfo
	for _, r := range runs {
		out = append(out, server.RunInfo{ID: r.ID, WorkflowID: r.TemporalWorkflowID(), Canvas: r.CanvasID, Plan: r.PlanHash[:12], Trigger: r.Trigger, State: r.State, Entered: r.Entered, StartedAt: r.StartedAt})
	}
	return out, err
}

func (b storeBackend) StepRecipients(ctx context.Context, canvasID string, runID int64, stepID, after string) (RecipientPage, error) {
	if runID == 0 {
		runs, err := b.st.Runs(ctx, canvasID, 1)
		if err != nil || len(runs) == 0 {
			return RecipientPage{}, errors.Join(server.ErrNotFound, err)
		}
		runID = runs[0].ID
	}
	rs, next, err := b.st.StepRecipients(ctx, runID, stepID, after, 20)
	if errors.Is(err, store.ErrBadCursor) {
		err = errors.Join(server.ErrInvalid, err)
	}
	return RecipientPage{RunID: runID, Recipients: rs, Next: next}, err
}

func (b storeBackend) CanvasVersions(ctx context.Context, canvasID string) ([]store.CanvasVersion, error) {
	return b.st.CanvasVersions(ctx, canvasID, 50)
}

func (b storeBackend) CanvasVersion(ctx context.Context, canvasID string, id int64) (store.CanvasVersion, error) {
	v, err := b.st.CanvasVersion(ctx, canvasID, id)
	if errors.Is(err, store.ErrNotFound) {
		err = errors.Join(server.ErrNotFound, err)
	}
	return v, err
}

func (b storeBackend) StaffTasks(ctx context.Context, canvasID string, runID int64, after string) (StaffTaskPage, error) {
	lines, next, err := b.st.StaffTaskLines(ctx, canvasID, runID, after, 50)
	return StaffTaskPage{Lines: lines, Next: next}, err
}

func (b storeBackend) CanvasPlan(ctx context.Context, canvasID, plan string) (*canvases.Plan, error) {
	c, err := b.st.Canvas(ctx, canvasID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, server.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return canvases.UnmarshalPlan(c.Plan)
}

// BenchmarkCanvasPageMillion renders /canvases/winback for a finished run
// of 1,000,000 users: 1,000,000 ledger rows at the first push step (sent,
// failed, suppressed by reason), 600,000 at the second, 40,000
// conversions. Run: go test ./internal/console -run '^$' -bench CanvasPageMillion -benchtime 3x
func BenchmarkCanvasPageMillion(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "huabu.db")
	st, err := store.OpenSQLite(ctx, path)
	require.NoError(b, err)
	defer st.Close()
	fake := newFake(&testing.T{})
	_, err = st.SavePlan(ctx, "winback", fake.plan.Hash, fake.plan.JSON(), "winback.yaml")
	require.NoError(b, err)
	run, err := st.BeginRun(ctx, "huabu-winback-1", "winback", fake.plan.Hash, "schedule")
	require.NoError(b, err)
	require.NoError(b, st.SetRunEntered(ctx, run.ID, 1_000_000))
	require.NoError(b, st.FinishRun(ctx, run.ID, store.RunCompleted, ""))

	db, err := sql.Open("sqlite", path)
	require.NoError(b, err)
	defer db.Close()
	_, err = db.Exec(`PRAGMA busy_timeout = 10000`)
	require.NoError(b, err)
	now := time.Now().UnixMilli()
	// Real cohorts, as a run leaves them: everyone (users 1..1,000,000),
	// the 600,000 not converted by the check (nudge) and the 400,000 who
	// were (thanks); conversions per step are counted over their pages.
	cohort := func(key string, from, to int64) int64 {
		c, err := st.CreateCohort(ctx, key, run.ID, "", 0, time.Time{})
		require.NoError(b, err)
		var pages []store.Page
		for lo := from; lo <= to; lo += store.PageSize {
			var members []int64
			for u := lo; u < lo+store.PageSize && u <= to; u++ {
				members = append(members, u)
			}
			pages = append(pages, store.Page{No: int64(len(pages)), Members: members})
		}
		require.NoError(b, st.WritePages(ctx, c.ID, pages))
		_, err = st.SealCohort(ctx, c.ID, int64(len(pages)))
		require.NoError(b, err)
		return c.ID
	}
	everyone, nudged, thanked := cohort("everyone", 1, 1_000_000), cohort("nudge", 1, 600_000), cohort("thanks", 600_001, 1_000_000)
	for _, s := range []struct {
		step   string
		cohort int64
		n      int
	}{{"coupon", everyone, 1_000_000}, {"wait-3d", everyone, 1_000_000}, {"check", everyone, 1_000_000}, {"nudge", nudged, 600_000}, {"thanks", thanked, 400_000}, {"done", everyone, 1_000_000}} {
		require.NoError(b, st.RecordStepEntry(ctx, run.ID, s.step, 0, s.cohort, int64(s.n)))
	}
	for _, s := range []struct {
		step string
		n    int
	}{{"coupon", 1_000_000}, {"nudge", 600_000}} {
		_, err = db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO deliveries (run_id, step_id, visit, uid, channel, state, batch, reason, updated_at)
			SELECT ?, ?, 0, i, 'sms', CASE WHEN i % 50 = 0 THEN 'failed' WHEN i % 33 = 0 THEN 'suppressed' ELSE 'sent' END, 1,
			  CASE WHEN i % 50 = 0 THEN 'invalid_number' WHEN i % 66 = 0 THEN 'quiet_hours' WHEN i % 33 = 0 THEN 'unsubscribed' ELSE '' END, ?
			FROM n`, s.n, run.ID, s.step, now)
		require.NoError(b, err)
	}
	_, err = db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
		INSERT INTO conversions (run_id, uid, at) SELECT ?, i * 25, ? FROM n`, run.ID, now)
	require.NoError(b, err)
	// The rows above were written behind the store's back: count them as
	// the store's own writes would have (ADR 020).
	require.NoError(b, st.RecountRun(ctx, run.ID))

	c, err := New(Options{Backend: storeBackend{fakeBackend: fake, st: st}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	mux := http.NewServeMux()
	c.Register(mux)
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/canvases/winback", nil)
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	rec := get()
	require.Equal(b, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(b, rec.Body.String(), `data-step="coupon" data-entered="1000000" data-sent="`)
	require.Contains(b, rec.Body.String(), `data-reason="quiet_hours"`)
	b.ResetTimer()
	for b.Loop() {
		get()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
}
