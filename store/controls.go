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

// HoldSend records that a send found its canvas paused (the first time
// counts) and returns since when it has been held.
func (s *SQLite) HoldSend(ctx context.Context, key string, at time.Time) (time.Time, error) {
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO held_sends (key, since) VALUES (?, ?)`, key, at.UnixMilli()); err != nil {
		return time.Time{}, err
	}
	return s.HeldSince(ctx, key)
}

// HeldSince is when a send was first held by a pause (zero if never).
func (s *SQLite) HeldSince(ctx context.Context, key string) (time.Time, error) {
	var since int64
	err := s.r.QueryRowContext(ctx, `SELECT since FROM held_sends WHERE key = ?`, key).Scan(&since)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	return time.UnixMilli(since), err
}

// ReleaseSend forgets a held send once it has decided what to do after
// the resume.
func (s *SQLite) ReleaseSend(ctx context.Context, key string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM held_sends WHERE key = ?`, key)
	return err
}
