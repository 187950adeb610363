package server

import (
	"context"
	"net/http"
	"time"

	"github.com/huabu/huabu/internal/auth"
)

// Controller pauses, resumes and stops canvases.
type Controller interface {
	Pause(ctx context.Context, canvasID string) (Controlled, error)
	Resume(ctx context.Context, canvasID string) (Controlled, error)
	Stop(ctx context.Context, canvasID string) (Controlled, error)
}

// Controlled answers POST /api/v1/canvases/{id}/pause|resume|stop.
type Controlled struct {
	Canvas    string    `json:"canvas"`
	State     string    `json:"state"` // active | paused | stopped
	Was       string    `json:"was"`
	Since     time.Time `json:"since"`
	Cancelled int       `json:"runs_cancelled,omitempty"` // stop: running runs ended
}

func (h *Handler) registerControl() {
	for _, action := range []string{"pause", "resume", "stop"} {
		h.HandleAdmin("POST /api/v1/canvases/{id}/"+action, auth.Control, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			do := map[string]func(context.Context, string) (Controlled, error){"pause": h.b.Pause, "resume": h.b.Resume, "stop": h.b.Stop}[action]
			out, err := do(r.Context(), r.PathValue("id"))
			if err != nil {
				h.backendError(w, "id", err)
				return
			}
			writeJSON(w, http.StatusOK, out)
		}))
	}
}
