package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/preview"
)

// Previewer answers what a canvas would do before it does it (part of the
// Backend).
type Previewer interface {
	Estimate(ctx context.Context, canvasID string, opts estimate.Options) (*estimate.Result, error)
	EstimateSource(ctx context.Context, file string, src []byte, opts estimate.Options) (*estimate.Result, canvases.Problems, error)
	// Preview renders a canvas's messages for users; a source with errors
	// is ErrInvalid with its problems.
	Preview(ctx context.Context, req PreviewRequest) (*PreviewResult, canvases.Problems, error)
	// TestSend sends one step's message, marked as a test, to test users.
	TestSend(ctx context.Context, canvasID string, req TestSendRequest) (*TestSendResult, error)
}

// previewRoutes adds the estimate routes.
func (h *Handler) previewRoutes() {
	p := h.b
	h.HandleAdmin("GET /api/v1/canvases/{id}/estimate", auth.Read, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts, ok := estimateOptions(w, r)
		if !ok {
			return
		}
		res, err := p.Estimate(r.Context(), r.PathValue("id"), opts)
		switch {
		case errors.Is(err, ErrNotFound):
			writeError(w, http.StatusNotFound, "id", err.Error())
		case err != nil:
			h.internal(w, err)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}))
	h.HandleAdmin("POST /api/v1/estimate", auth.Read, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts, ok := estimateOptions(w, r)
		if !ok {
			return
		}
		var body struct {
			File   string `json:"file"`
			Source string `json:"source"` // the canvas YAML
		}
		if err := decodeStrict(r.Body, &body); err != nil {
			writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
			return
		}
		if body.Source == "" {
			writeError(w, http.StatusBadRequest, "source", "source must hold the canvas YAML")
			return
		}
		if body.File == "" {
			body.File = "canvas.yaml"
		}
		res, problems, err := p.EstimateSource(r.Context(), body.File, []byte(body.Source), opts)
		switch {
		case errors.Is(err, ErrInvalid):
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "the canvas has errors", "field": "source", "problems": problems})
		case err != nil:
			h.internal(w, err)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}))
}

// estimateOptions reads ?exact=true.
func estimateOptions(w http.ResponseWriter, r *http.Request) (estimate.Options, bool) {
	var opts estimate.Options
	q := r.URL.Query()
	if s := q.Get("exact"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "exact", "exact must be true or false")
			return opts, false
		}
		opts.Exact = b
	}
	return opts, true
}

// PreviewRequest asks for every message of a canvas rendered for users
// (POST /api/v1/preview): a deployed canvas by id, or a canvas file's YAML.
type PreviewRequest struct {
	Canvas string   `json:"canvas,omitempty"`
	File   string   `json:"file,omitempty"`
	Source string   `json:"source,omitempty"`
	Users  []string `json:"users"`
}

// PreviewResult answers POST /api/v1/preview.
type PreviewResult struct {
	Canvas   string            `json:"canvas"`
	Plan     string            `json:"plan"`
	Messages []preview.Message `json:"messages"`
}

// TestSendRequest asks for a test send of one step (POST
// /api/v1/canvases/{id}/test-send); To empty means the config's test_users.
type TestSendRequest struct {
	Step string   `json:"step"`
	To   []string `json:"to,omitempty"`
}

// TestSendResult answers POST /api/v1/canvases/{id}/test-send.
type TestSendResult struct {
	Canvas string         `json:"canvas"`
	Plan   string         `json:"plan"`
	Step   string         `json:"step"`
	Sent   []preview.Sent `json:"sent"`
}

// MaxTestRecipients bounds one test send: it skips caps and reports, so it
// must not become a way to message an audience.
const MaxTestRecipients = 50

// testRoutes adds the preview and test-send routes.
func (h *Handler) testRoutes() {
	p := h.b
	h.HandleAdmin("POST /api/v1/preview", auth.Read, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body PreviewRequest
		if err := decodeStrict(r.Body, &body); err != nil {
			writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
			return
		}
		switch {
		case body.Canvas == "" && body.Source == "":
			writeError(w, http.StatusBadRequest, "canvas", "name a deployed canvas (canvas) or give a canvas's YAML (source)")
			return
		case body.Canvas != "" && body.Source != "":
			writeError(w, http.StatusBadRequest, "source", "give canvas or source, not both")
			return
		case len(body.Users) == 0:
			writeError(w, http.StatusBadRequest, "users", "users must name at least one user id")
			return
		case len(body.Users) > MaxTestRecipients:
			writeError(w, http.StatusBadRequest, "users", fmt.Sprintf("at most %d users per preview", MaxTestRecipients))
			return
		}
		if body.Source != "" && body.File == "" {
			body.File = "canvas.yaml"
		}
		res, problems, err := p.Preview(r.Context(), body)
		switch {
		case errors.Is(err, ErrInvalid) && len(problems) > 0:
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "the canvas has errors", "field": "source", "problems": problems})
		case err != nil:
			h.backendError(w, "canvas", err)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}))
	h.HandleAdmin("POST /api/v1/canvases/{id}/test-send", auth.Run, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body TestSendRequest
		if err := decodeStrict(r.Body, &body); err != nil {
			writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
			return
		}
		switch {
		case body.Step == "":
			writeError(w, http.StatusBadRequest, "step", "step must name the push step to send")
			return
		case len(body.To) > MaxTestRecipients:
			writeError(w, http.StatusBadRequest, "to", fmt.Sprintf("at most %d recipients per test send", MaxTestRecipients))
			return
		}
		res, err := p.TestSend(r.Context(), r.PathValue("id"), body)
		if err != nil {
			h.backendError(w, "id", err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
}

// FieldError names the request field a Backend error is about, when it is
// not the one the route would name (a test send's unknown step or user).
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// InField marks err as being about field.
func InField(field string, err error) error { return &FieldError{Field: field, Err: err} }
