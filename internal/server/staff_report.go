package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/huabu/huabu/internal/reports"
)

// StaffReporter is the Backend's staff completion report.
type StaffReporter interface {
	StaffReport(ctx context.Context, canvasID string, runID int64, by string) (*reports.StaffReport, error)
}

// staffReport answers GET /api/v1/canvases/{id}/report?by=staff|grid.
func (h *Handler) staffReport(w http.ResponseWriter, r *http.Request, runID int64, by string) {
	if by != reports.ByStaff && by != reports.ByGrid {
		writeError(w, http.StatusBadRequest, "by", "by must be staff or grid")
		return
	}
	rep, err := h.b.StaffReport(r.Context(), r.PathValue("id"), runID, by)
	switch {
	case errors.Is(err, reports.ErrNoCanvas):
		writeError(w, http.StatusNotFound, "id", err.Error())
	case err != nil && strings.Contains(err.Error(), "has no run"):
		writeError(w, http.StatusNotFound, "run", err.Error())
	case err != nil:
		h.internal(w, err)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}
