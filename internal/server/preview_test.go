package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/preview"
)

func (b *backend) Estimate(ctx context.Context, id string, opts estimate.Options) (*estimate.Result, error) {
	if id != "promo" {
		return nil, ErrNotFound
	}
	return &estimate.Result{CanvasID: id, Exact: opts.Exact, Entering: estimate.Count{N: 7}}, nil
}

func (b *backend) EstimateSource(ctx context.Context, file string, src []byte, opts estimate.Options) (*estimate.Result, canvases.Problems, error) {
	if strings.Contains(string(src), "broken") {
		return nil, canvases.Problems{{File: file, Line: 1, Column: 1, Severity: canvases.Error, Message: "broken"}}, ErrInvalid
	}
	return &estimate.Result{CanvasID: "draft", Exact: opts.Exact}, nil, nil
}

func (b *backend) Preview(ctx context.Context, req PreviewRequest) (*PreviewResult, canvases.Problems, error) {
	switch {
	case strings.Contains(req.Source, "broken"):
		return nil, canvases.Problems{{File: req.File, Line: 1, Column: 1, Severity: canvases.Error, Message: "broken"}}, ErrInvalid
	case req.Canvas != "" && req.Canvas != "promo":
		return nil, nil, ErrNotFound
	case slices.Contains(req.Users, "nobody"):
		return nil, nil, InField("users", fmt.Errorf("%w: no profile for nobody", ErrNotFound))
	}
	return &PreviewResult{Canvas: "promo", Messages: []preview.Message{{Step: "hello", User: req.Users[0], Channel: "sms"}}}, nil, nil
}

func (b *backend) TestSend(ctx context.Context, id string, req TestSendRequest) (*TestSendResult, error) {
	switch {
	case id != "promo":
		return nil, ErrNotFound
	case req.Step != "hello":
		return nil, InField("step", fmt.Errorf("%w: canvas promo has no step %q", ErrNotFound, req.Step))
	case len(req.To) == 0:
		return nil, InField("to", fmt.Errorf("%w: name the test users", ErrInvalid))
	}
	return &TestSendResult{Canvas: id, Step: req.Step, Sent: []preview.Sent{{Message: preview.Message{Step: req.Step, User: req.To[0]}, Marked: true, Outcome: "sent"}}}, nil
}

// TestPreviewAndTestSendRoutes: what a client gets back, including the
// 4xx errors naming the field.
func TestPreviewAndTestSendRoutes(t *testing.T) {
	h := New(&backend{ready: true}, slog.New(slog.DiscardHandler), nil)
	many := `["` + strings.Repeat(`u", "`, MaxTestRecipients) + `u"]`
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/api/v1/preview", `{"canvas":"promo","users":["u001"]}`, 200, `"messages":[{"step":"hello","user":"u001","channel":"sms"}]`},
		{"POST", "/api/v1/preview", `{"file":"d.yaml","source":"id: promo","users":["u001"]}`, 200, `"canvas":"promo"`},
		{"POST", "/api/v1/preview", `{"users":["u001"]}`, 400, `"field":"canvas"`},
		{"POST", "/api/v1/preview", `{"canvas":"promo","source":"id: promo","users":["u001"]}`, 400, `"field":"source"`},
		{"POST", "/api/v1/preview", `{"canvas":"promo"}`, 400, `"field":"users"`},
		{"POST", "/api/v1/preview", `{"canvas":"promo","users":` + many + `}`, 400, `"field":"users"`},
		{"POST", "/api/v1/preview", `{"canvas":"nope","users":["u001"]}`, 404, `"field":"canvas"`},
		{"POST", "/api/v1/preview", `{"canvas":"promo","users":["nobody"]}`, 404, `"field":"users"`},
		{"POST", "/api/v1/preview", `{"source":"broken","users":["u001"]}`, 422, `"problems":[{`},
		{"POST", "/api/v1/preview", `{"canvas":"promo","userz":["u001"]}`, 400, `"field":"userz"`},
		{"POST", "/api/v1/canvases/promo/test-send", `{"step":"hello","to":["u001"]}`, 200, `"marked":true,"outcome":"sent"`},
		{"POST", "/api/v1/canvases/promo/test-send", `{"to":["u001"]}`, 400, `"field":"step"`},
		{"POST", "/api/v1/canvases/promo/test-send", `{"step":"nope","to":["u001"]}`, 404, `"field":"step"`},
		{"POST", "/api/v1/canvases/promo/test-send", `{"step":"hello"}`, 400, `"field":"to"`},
		{"POST", "/api/v1/canvases/promo/test-send", `{"step":"hello","to":` + many + `}`, 400, `"field":"to"`},
		{"POST", "/api/v1/canvases/nope/test-send", `{"step":"hello","to":["u001"]}`, 404, `"field":"id"`},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.RemoteAddr = "127.0.0.1:5555"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.code, rec.Code, "%s %s %s: %s", tc.method, tc.path, tc.body, rec.Body)
		require.Contains(t, rec.Body.String(), tc.want, tc.body)
		require.Contains(t, rec.Header().Get("Content-Type"), "application/json")
	}
}

// TestEstimateRoutes: what a client gets back, including the 4xx errors
// naming the field.
func TestEstimateRoutes(t *testing.T) {
	h := New(&backend{ready: true}, slog.New(slog.DiscardHandler), nil)
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/api/v1/canvases/promo/estimate", "", 200, `"entering":{"n":7}`},
		{"GET", "/api/v1/canvases/promo/estimate?exact=true", "", 200, `"exact":true`},
		{"GET", "/api/v1/canvases/promo/estimate?exact=maybe", "", 400, `"field":"exact"`},
		{"GET", "/api/v1/canvases/nope/estimate", "", 404, `"field":"id"`},
		{"POST", "/api/v1/estimate", `{"file":"d.yaml","source":"id: draft"}`, 200, `"canvas":"draft"`},
		{"POST", "/api/v1/estimate", `{"file":"d.yaml"}`, 400, `"field":"source"`},
		{"POST", "/api/v1/estimate", `{"sauce":"x"}`, 400, `"field":"sauce"`},
		{"POST", "/api/v1/estimate", `{"source":"broken"}`, 422, `"problems":[{`},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.RemoteAddr = "127.0.0.1:5555"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.code, rec.Code, "%s %s: %s", tc.method, tc.path, rec.Body)
		require.Contains(t, rec.Body.String(), tc.want, tc.path)
		require.Contains(t, rec.Header().Get("Content-Type"), "application/json")
	}
}
