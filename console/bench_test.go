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

	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/reports"
	"github.com/huabu/huabu/server"
	"github.com/huabu/huabu/store"
)

// storeBackend reads a store the way worker.App does (reports.Build over
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
// conversions. Run: go test ./console -run '^$' -bench CanvasPageMillion -benchtime 3x
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
	for i, s := range []struct {
		step string
		n    int
	}{{"coupon", 1_000_000}, {"wait-3d", 1_000_000}, {"check", 1_000_000}, {"nudge", 600_000}, {"thanks", 400_000}, {"done", 1_000_000}} {
		_, err = db.Exec(`INSERT INTO step_entries (run_id, step_id, visit, cohort_id, count) VALUES (?, ?, 0, ?, ?)`, run.ID, s.step, i+1, s.n)
		require.NoError(b, err)
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
