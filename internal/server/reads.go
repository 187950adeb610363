package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/store"
)

// Reader is what the read-only admin routes ask of the Backend: the
// outbox, runs and who is answering. The CLI reads through these, never
// from the store's files (the store is the server's).
type Reader interface {
	Outbox(ctx context.Context, canvasID string, limit int) ([]store.OutboxMessage, error)
	Runs(ctx context.Context, canvasID string, limit int) ([]RunInfo, error)
	Status(ctx context.Context) (Status, error)
}

// RunInfo is one run in GET /api/v1/runs.
type RunInfo struct {
	ID         int64      `json:"id"`
	WorkflowID string     `json:"workflow_id"`
	Canvas     string     `json:"canvas"`
	Plan       string     `json:"plan"`
	Trigger    string     `json:"trigger"`
	State      string     `json:"state"` // running | completed | failed | ...
	Entered    int64      `json:"entered"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// StepProgress is one step of a run in GET /api/v1/runs/{id}: its counts
// so far (from the ledger) and the users asleep before it.
type StepProgress struct {
	*reports.StepReport
	Waiting int64 `json:"waiting"`
}

// Status answers GET /api/v1/status: which Huabu this is, so the CLI can
// say who holds a port and check it writes the store the server reads.
type Status struct {
	Service   string    `json:"service"` // always "huabu"
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	Timezone  string    `json:"timezone"`
	StoreID   string    `json:"store_id"`
	Temporal  string    `json:"temporal"` // the frontend's host:port, or "embedded host:port"
}

// startedAt is when this process started serving, for /healthz.
var startedAt = time.Now()

// ServiceName is what /healthz and /api/v1/status call this service.
const ServiceName = "huabu"

func (h *Handler) outbox(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, 50, 10000)
	if !ok {
		return
	}
	msgs, err := h.b.Outbox(r.Context(), r.URL.Query().Get("canvas"), limit)
	if err != nil {
		h.internal(w, err)
		return
	}
	if msgs == nil {
		msgs = []store.OutboxMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

func (h *Handler) runs(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, 20, 1000)
	if !ok {
		return
	}
	list, err := h.b.Runs(r.Context(), r.URL.Query().Get("canvas"), limit)
	if err != nil {
		if errors.Is(err, reports.ErrNoCanvas) {
			writeError(w, http.StatusNotFound, "canvas", err.Error())
			return
		}
		h.internal(w, err)
		return
	}
	if list == nil {
		list = []RunInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": list})
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	st, err := h.b.Status(r.Context())
	if err != nil {
		h.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func limitParam(w http.ResponseWriter, r *http.Request, def, max int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		writeError(w, http.StatusBadRequest, "limit", "limit must be a whole number from 1 to "+strconv.Itoa(max))
		return 0, false
	}
	return n, true
}

// health is the body of GET /healthz: enough for another Huabu that finds
// this port taken to say which process holds it (the pid only to callers
// on this machine).
type health struct {
	Status    string    `json:"status"`
	Service   string    `json:"service"`
	StartedAt time.Time `json:"started_at"`
	PID       int       `json:"pid,omitempty"`
}

func (h *Handler) healthBody(r *http.Request, status string) health {
	body := health{Status: status, Service: ServiceName, StartedAt: startedAt}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && ip.IsLoopback() {
			body.PID = os.Getpid()
		}
	}
	return body
}
