package server

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/estimate"
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
