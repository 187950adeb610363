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
	h, err := s.HeldSend(ctx, key)
	return h.Since, err
}

// HeldSend is what the store knows of a held send.
type HeldSend struct {
	// Since is when the send was first held by a pause (zero if never, or
	// if it was resumed in time).
	Since time.Time
	// Expired: it was resumed past resume_grace; the rest of its messages
	// are not sent, whichever attempt sends them.
	Expired bool
}

// HeldSend returns what the store knows of a held send.
func (s *SQLite) HeldSend(ctx context.Context, key string) (HeldSend, error) {
	var since int64
	var h HeldSend
	err := s.r.QueryRowContext(ctx, `SELECT since, expired FROM held_sends WHERE key = ?`, key).Scan(&since, &h.Expired)
	if errors.Is(err, sql.ErrNoRows) {
		return HeldSend{}, nil
	}
	h.Since = time.UnixMilli(since)
	return h, err
}

// heldVerdictLife is how long an expired verdict is kept: longer than a
// send's retries go on.
const heldVerdictLife = 7 * 24 * time.Hour

// DecideHeldSend records what a held send decided once its canvas resumed:
// in time, the row goes (a later pause starts afresh); expired, the row
// stays with the verdict, so a retry of the send does not send either.
func (s *SQLite) DecideHeldSend(ctx context.Context, key string, expired bool) error {
	if !expired {
		_, err := s.w.ExecContext(ctx, `DELETE FROM held_sends WHERE key = ?`, key)
		return err
	}
	now := s.now()
	if _, err := s.w.ExecContext(ctx, `UPDATE held_sends SET expired = 1, decided_at = ? WHERE key = ? AND expired = 0`, now.UnixMilli(), key); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `DELETE FROM held_sends WHERE expired = 1 AND decided_at < ?`, now.Add(-heldVerdictLife).UnixMilli())
	return err
}
