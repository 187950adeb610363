package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Control states of a canvas.
const (
	CanvasActive  = "active"
	CanvasPaused  = "paused"
	CanvasStopped = "stopped"
)

// CanvasControl is a canvas's control state.
type CanvasControl struct {
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	Actor string    `json:"actor,omitempty"`
}

// SetCanvasControl records a canvas's new control state.
func (s *SQLite) SetCanvasControl(ctx context.Context, canvasID, state, actor string) (CanvasControl, error) {
	c := CanvasControl{State: state, Since: s.now(), Actor: actor}
	_, err := s.w.ExecContext(ctx, `INSERT INTO canvas_controls (canvas_id, state, since, actor) VALUES (?, ?, ?, ?)
		ON CONFLICT(canvas_id) DO UPDATE SET state = excluded.state, since = excluded.since, actor = excluded.actor`,
		canvasID, state, c.Since.UnixMilli(), actor)
	return c, err
}

// ControlOf returns a canvas's control state (active when never set).
func (s *SQLite) ControlOf(ctx context.Context, canvasID string) (CanvasControl, error) {
	var c CanvasControl
	var since int64
	err := s.r.QueryRowContext(ctx, `SELECT state, since, actor FROM canvas_controls WHERE canvas_id = ?`, canvasID).Scan(&c.State, &since, &c.Actor)
	if errors.Is(err, sql.ErrNoRows) {
		return CanvasControl{State: CanvasActive}, nil
	}
	c.Since = time.UnixMilli(since)
	return c, err
}
