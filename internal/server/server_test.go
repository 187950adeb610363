package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/store"
)

// backend is a small in-memory Backend: the handlers are what is tested.
type backend struct {
	ready   bool
	started []string
}

func (b *backend) Ready() bool { return b.ready }
func (b *backend) Canvases(ctx context.Context) ([]CanvasInfo, error) {
	return []CanvasInfo{{ID: "promo", Name: "促销", Trigger: "manual", Active: true}}, nil
}
func (b *backend) StaffReport(ctx context.Context, id string, run int64, by string) (*reports.StaffReport, error) {
	return &reports.StaffReport{}, nil
}

func (b *backend) Report(ctx context.Context, id string, run int64) (*reports.Report, error) {
	if id != "promo" {
		return nil, fmt.Errorf("%w %q", reports.ErrNoCanvas, id)
	}
	if run == 99 {
		return nil, fmt.Errorf("canvas promo has no run 99")
	}
	return &reports.Report{CanvasID: id, RunID: run}, nil
}
func (b *backend) StartRun(ctx context.Context, id string, users []string) (RunStarted, error) {
	if id != "promo" {
		return RunStarted{}, fmt.Errorf("no deployed canvas with that id: %q", id)
	}
	b.started = users
	return RunStarted{WorkflowID: "wf-1", Plan: "abc"}, nil
}
func (b *backend) RunStatus(ctx context.Context, wf string) (RunStatus, error) {
	if wf != "wf-1" {
		return RunStatus{}, fmt.Errorf("workflow not found")
	}
	return RunStatus{WorkflowID: wf, Status: "Completed", RunID: 7}, nil
}
func (b *backend) DeploySources(ctx context.Context, files map[string][]byte) (DeployOutcome, error) {
	for name, src := range files {
		if strings.Contains(string(src), "broken") {
			return DeployOutcome{Problems: canvases.Problems{{File: name, Line: 1, Column: 1, Severity: canvases.Error, Message: "broken"}}}, ErrInvalid
		}
	}
	return DeployOutcome{Canvases: []DeployedCanvas{{ID: "promo", Plan: "abc", Changed: true}}}, nil
}

func (b *backend) Approve(ctx context.Context, id, plan string) (Approved, error) {
	if id != "promo" {
		return Approved{}, fmt.Errorf("%w: no deployed canvas %q", ErrNotFound, id)
	}
	if plan == "abc" {
		return Approved{}, fmt.Errorf("%w: you deployed it", ErrForbidden)
	}
	return Approved{Canvas: id, Plan: "0123456789ab", Approver: "someone", Current: true}, nil
}
func (b *backend) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	return []store.AuditEntry{{ID: 1, Actor: "local", Action: "deploy", CanvasID: q.CanvasID}}, nil
}
func (b *backend) Outbox(ctx context.Context, canvas string, limit int) ([]store.OutboxMessage, error) {
	return nil, nil // nothing recorded: the API still answers a list
}
func (b *backend) Runs(ctx context.Context, canvas string, limit int) ([]RunInfo, error) {
	if canvas != "" && canvas != "promo" {
		return nil, fmt.Errorf("%w %q", reports.ErrNoCanvas, canvas)
	}
	return nil, nil
}
func (b *backend) Status(ctx context.Context) (Status, error) {
	return Status{Service: ServiceName, Version: "dev", Timezone: "Asia/Shanghai"}, nil
}

func (b *backend) Suppress(ctx context.Context, req SuppressRequest) (SuppressOutcome, error) {
	return SuppressOutcome{Added: len(req.Users) + len(req.Addresses)}, nil
}
func (b *backend) Unsuppress(ctx context.Context, req SuppressRequest) (SuppressOutcome, error) {
	return SuppressOutcome{Removed: len(req.Users)}, nil
}
func (b *backend) Suppressions(ctx context.Context, f SuppressionFilter) ([]store.Suppression, error) {
	return []store.Suppression{}, nil
}
func (b *backend) Forget(ctx context.Context, ids []string) (store.ForgetResult, error) {
	res := store.ForgetResult{}
	for _, id := range ids {
		if id == "promo" || id == "u1" {
			res.Forgotten++
		} else {
			res.Unknown = append(res.Unknown, id)
		}
	}
	return res, nil
}

func (b *backend) Pause(ctx context.Context, id string) (Controlled, error) {
	return b.control(id, "paused")
}
func (b *backend) Resume(ctx context.Context, id string) (Controlled, error) {
	return b.control(id, "active")
}
func (b *backend) Stop(ctx context.Context, id string) (Controlled, error) {
	return b.control(id, "stopped")
}
func (b *backend) control(id, state string) (Controlled, error) {
	if id != "promo" {
		return Controlled{}, fmt.Errorf("%w: no deployed canvas %q", ErrNotFound, id)
	}
	return Controlled{Canvas: id, State: state}, nil
}

func request(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:50000" // no tokens configured: loopback clients only
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	raw, _ := io.ReadAll(rec.Body)
	if len(raw) > 0 && raw[0] == '{' {
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		require.Contains(t, rec.Header().Get("Content-Type"), "application/json")
	}
	return rec.Code, out
}

func TestAPI(t *testing.T) {
	b := &backend{}
	h := New(b, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	code, _ := request(t, h, "GET", "/healthz", "")
	require.Equal(t, 503, code, "not ready until every part is up")
	b.ready = true
	code, body := request(t, h, "GET", "/healthz", "")
	require.Equal(t, 200, code)
	require.Equal(t, "ok", body["status"])

	code, body = request(t, h, "GET", "/api/v1/canvases", "")
	require.Equal(t, 200, code)
	require.Len(t, body["canvases"], 1)

	for _, c := range []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"GET", "/api/v1/canvases/nope/report", "", 404, "id"},
		{"GET", "/api/v1/canvases/promo/report?run=abc", "", 400, "run"},
		{"GET", "/api/v1/canvases/promo/report?run=99", "", 404, "run"},
		{"POST", "/api/v1/canvases/nope/runs", "", 404, "id"},
		{"POST", "/api/v1/canvases/promo/runs", `{"user_ids": "u1"}`, 400, "user_ids"},
		{"POST", "/api/v1/canvases/promo/runs", `{"users": ["u1"]}`, 400, "users"},
		{"POST", "/api/v1/canvases/promo/runs", `{"user_ids": ["u1", " "]}`, 400, "user_ids[1]"},
		{"POST", "/api/v1/canvases/promo/runs", `{"user_ids": [`, 400, ""},
		{"GET", "/api/v1/runs/nope", "", 404, "workflow"},
		{"POST", "/api/v1/deploy", `{}`, 400, "files"},
		{"POST", "/api/v1/deploy", `{"files": {"a.yaml": "broken"}}`, 422, "files"},
		{"POST", "/api/v1/canvases/nope/approve", "", 404, "id"},
		{"POST", "/api/v1/canvases/promo/approve", `{"plan": "XYZ"}`, 400, "plan"},
		{"POST", "/api/v1/canvases/promo/approve", `{"plan": "abc"}`, 403, "Authorization"},
		{"POST", "/api/v1/canvases/promo/approve", `{"hash": "abc"}`, 400, "hash"},
		{"GET", "/api/v1/audit?since=yesterday", "", 400, "since"},
		{"GET", "/api/v1/audit?limit=0", "", 400, "limit"},
		{"POST", "/api/v1/suppressions", `{}`, 400, "users"},
		{"POST", "/api/v1/suppressions", `{"users": ["u1"], "channel": "fax"}`, 400, "channel"},
		{"POST", "/api/v1/suppressions", `{"users": ["u1"], "channel": "*"}`, 400, "channel"},
		{"POST", "/api/v1/suppressions", `{"users": [""]}`, 400, "users[0]"},
		{"POST", "/api/v1/suppressions", `{"addresses": ["  "]}`, 400, "addresses[0]"},
		{"POST", "/api/v1/suppressions/remove", `{"users": ["u1"], "channels": "sms"}`, 400, "channels"},
		{"GET", "/api/v1/suppressions?channel=fax", "", 400, "channel"},
		{"DELETE", "/api/v1/users/nobody", "", 404, "id"},
		{"POST", "/api/v1/users/forget", `{"users": []}`, 400, "users"},
		{"POST", "/api/v1/canvases/nope/pause", "", 404, "id"},
	} {
		code, body := request(t, h, c.method, c.path, c.body)
		require.Equal(t, c.code, code, "%s %s %s", c.method, c.path, c.body)
		require.NotEmpty(t, body["error"], "%s %s: errors are JSON", c.method, c.path)
		if c.field != "" {
			require.Equal(t, c.field, body["field"], "%s %s %s", c.method, c.path, c.body)
		}
	}
	require.Nil(t, b.started, "no bad request started a run")

	code, body = request(t, h, "POST", "/api/v1/canvases/promo/runs", `{"user_ids": ["u1","u2"]}`)
	require.Equal(t, 202, code)
	require.Equal(t, "wf-1", body["workflow_id"])
	require.Equal(t, []string{"u1", "u2"}, b.started)
	code, body = request(t, h, "GET", "/api/v1/canvases/promo/report?run=3", "")
	require.Equal(t, 200, code)
	require.Equal(t, float64(3), body["run"])

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	require.Contains(t, rec.Body.String(), `huabu_http_requests_total{code="202",route="POST /api/v1/canvases/{id}/runs"} 1`)
}

// TestReadRoutes: the lists the CLI reads are JSON lists even when empty,
// bad parameters name themselves, and /healthz says who answers.
func TestReadRoutes(t *testing.T) {
	h := New(&backend{ready: true}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for path, key := range map[string]string{"/api/v1/outbox": "messages", "/api/v1/runs": "runs", "/api/v1/runs?canvas=promo": "runs"} {
		code, body := request(t, h, "GET", path, "")
		require.Equal(t, 200, code, path)
		require.NotNil(t, body[key], "%s: %s is a list, never null", path, key)
		require.Empty(t, body[key], path)
	}
	code, body := request(t, h, "GET", "/api/v1/runs?canvas=nope", "")
	require.Equal(t, 404, code)
	require.Equal(t, "canvas", body["field"])
	code, body = request(t, h, "GET", "/api/v1/outbox?limit=0", "")
	require.Equal(t, 400, code)
	require.Equal(t, "limit", body["field"])
	code, body = request(t, h, "GET", "/api/v1/status", "")
	require.Equal(t, 200, code)
	require.Equal(t, "huabu", body["service"])
	code, body = request(t, h, "GET", "/healthz", "")
	require.Equal(t, 200, code)
	require.Equal(t, "huabu", body["service"])
	require.NotZero(t, body["pid"], "a caller on this machine learns the pid, to stop the process")
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.RemoteAddr = "203.0.113.9:4000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.NotContains(t, rec.Body.String(), "pid", "a remote caller does not")
}
