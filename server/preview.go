package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/huabu/huabu/auth"
	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/estimate"
)

// Previewer answers what a canvas would do before it does it (part of the
// Backend).
type Previewer interface {
	Estimate(ctx context.Context, canvasID string, opts estimate.Options) (*estimate.Result, error)
	EstimateSource(ctx context.Context, file string, src []byte, opts estimate.Options) (*estimate.Result, canvases.Problems, error)
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
