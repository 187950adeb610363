package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// EntryWindow is the entries of an event-triggered canvas that start one run
// together (ADR 009). It is written before its run is started, and every
// entry is written before the event feed moves past its event, so the
// grouping of events into runs survives a crash unchanged.
type EntryWindow struct {
	ID         int64
	CanvasID   string
	PlanHash   string
	FirstEvent int64 // the event that opened it
	LastEvent  int64 // the newest event that entered it
	WorkflowID string
	Users      int
	ClosesAt   time.Time // no entries join after it
	StartedAt  time.Time // zero until its run is started
	// UIDs are the users in it (OpenWindows only), so a restarted router
	// never enters a user twice.
	UIDs []int64
}

// WindowEntry is a user entering a window with an event.
type WindowEntry struct {
	UID     int64  `json:"u"`
	UserID  string `json:"i"`
	EventID int64  `json:"e"`
}

// WindowWrite is what one batch of events did to one window: opened it
// (Window.ID is 0), entered users into it, and moved its last event to
// LastEvent (an event whose user is in the window already enters nobody but
// still belongs to it).
type WindowWrite struct {
	Window    EntryWindow
	Entries   []WindowEntry
	LastEvent int64
}

// SaveWindowEntries writes, in one transaction, the windows a batch of
// events opened and the users it entered (a user already in a window is
// not entered twice). It returns the id of each write's window, in order.
func (s *SQLite) SaveWindowEntries(ctx context.Context, writes []WindowWrite) ([]int64, error) {
	ids := make([]int64, len(writes))
	now := s.now().UnixMilli()
	err := s.windowsTx(ctx, func(tx *sql.Tx) error {
		for i, w := range writes {
			id := w.Window.ID
			if id == 0 {
				err := tx.QueryRowContext(ctx, `INSERT INTO entry_windows (canvas_id, plan_hash, first_event, last_event, workflow_id, closes_at, created_at)
					VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
					w.Window.CanvasID, w.Window.PlanHash, w.Window.FirstEvent, w.Window.FirstEvent, w.Window.WorkflowID, w.Window.ClosesAt.UnixMilli(), now).Scan(&id)
				if err != nil {
					return fmt.Errorf("open entry window %s: %w", w.Window.WorkflowID, err)
				}
			}
			ids[i] = id
			var added int64
			last := w.LastEvent
			if len(w.Entries) > 0 {
				b, err := json.Marshal(w.Entries)
				if err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO entry_window_users (window_id, uid, user_id, event_id)
					SELECT ?, value->>'u', value->>'i', value->>'e' FROM json_each(?)`, id, string(b))
				if err != nil {
					return fmt.Errorf("enter users into window %d: %w", id, err)
				}
				added, _ = res.RowsAffected()
				for _, e := range w.Entries {
					last = max(last, e.EventID)
				}
			}
			res, err := tx.ExecContext(ctx, `UPDATE entry_windows SET users = users + ?, last_event = max(last_event, ?) WHERE id = ? AND started_at = 0`, added, last, id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("entry window %d is started or gone: no more entries", id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// OpenWindows lists the windows whose runs are not started yet, oldest
// first, with their users.
func (s *SQLite) OpenWindows(ctx context.Context) ([]EntryWindow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, canvas_id, plan_hash, first_event, last_event, workflow_id, users, closes_at
		FROM entry_windows WHERE started_at = 0 ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var out []EntryWindow
	for rows.Next() {
		var w EntryWindow
		var closes int64
		if err := rows.Scan(&w.ID, &w.CanvasID, &w.PlanHash, &w.FirstEvent, &w.LastEvent, &w.WorkflowID, &w.Users, &closes); err != nil {
			rows.Close()
			return nil, err
		}
		w.ClosesAt = time.UnixMilli(closes)
		out = append(out, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].UIDs, err = s.windowColumn(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *SQLite) windowColumn(ctx context.Context, id int64) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT uid FROM entry_window_users WHERE window_id = ? ORDER BY event_id, uid`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// WindowUsers lists the user ids of a window in the order they entered.
func (s *SQLite) WindowUsers(ctx context.Context, windowID int64) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT user_id FROM entry_window_users WHERE window_id = ? ORDER BY event_id, uid`, windowID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// WindowMarks returns, per canvas, the newest event that entered any of its
// windows: routing an event again (catch-up after a crash) enters nobody
// when its id is not above its canvas's mark, because every event up to the
// mark has been grouped already.
func (s *SQLite) WindowMarks(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT canvas_id, max(last_event) FROM entry_windows GROUP BY canvas_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var c string
		var m int64
		if err := rows.Scan(&c, &m); err != nil {
			return nil, err
		}
		out[c] = m
	}
	return out, rows.Err()
}

// windowKeep is how long a started window's row is kept for inspection
// before it is pruned (the newest window of each canvas is always kept: its
// last event is the canvas's mark).
const windowKeep = 24 * time.Hour

// MarkWindowStarted records that a window's run is started and drops its
// user list (the run has it now). closed is when the router closed the
// window to start it; it becomes the window's closes_at when earlier (a
// window the router started before its time, ADR 035), so that closes_at
// of a started window says when it stopped taking entries. Zero: keep it.
func (s *SQLite) MarkWindowStarted(ctx context.Context, windowID int64, closed time.Time) error {
	now := s.now()
	var closedMs int64
	if !closed.IsZero() {
		closedMs = closed.UnixMilli()
	}
	return s.windowsTx(ctx, func(tx *sql.Tx) error {
		var canvas string
		err := tx.QueryRowContext(ctx, `UPDATE entry_windows SET started_at = ?, closes_at = CASE WHEN ? > 0 AND ? < closes_at THEN ? ELSE closes_at END
			WHERE id = ? AND started_at = 0 RETURNING canvas_id`, now.UnixMilli(), closedMs, closedMs, closedMs, windowID).Scan(&canvas)
		if err == sql.ErrNoRows {
			return nil // already marked
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM entry_window_users WHERE window_id = ?`, windowID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM entry_windows WHERE canvas_id = ? AND started_at > 0 AND started_at < ?
			AND last_event < (SELECT max(last_event) FROM entry_windows WHERE canvas_id = ?)`, canvas, now.Add(-windowKeep).UnixMilli(), canvas)
		return err
	})
}

// EntryWindows lists a canvas's windows, newest first (inspection, tests).
func (s *SQLite) EntryWindows(ctx context.Context, canvasID string) ([]EntryWindow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, canvas_id, plan_hash, first_event, last_event, workflow_id, users, closes_at, started_at
		FROM entry_windows WHERE canvas_id = ? ORDER BY id DESC`, canvasID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EntryWindow
	for rows.Next() {
		var w EntryWindow
		var closes, started int64
		if err := rows.Scan(&w.ID, &w.CanvasID, &w.PlanHash, &w.FirstEvent, &w.LastEvent, &w.WorkflowID, &w.Users, &closes, &started); err != nil {
			return nil, err
		}
		w.ClosesAt = time.UnixMilli(closes)
		if started > 0 {
			w.StartedAt = time.UnixMilli(started)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// WindowTimes is when the stages of an entry window's life happened, unix
// ms (0: not yet, or pruned): for the event benchmark's breakdown of where
// an event's latency goes.
type WindowTimes struct {
	Users int
	// FirstStored is when the window's first event was stored; Created,
	// ClosesAt and Started are the window's; RunBegun is when its run's
	// BeginRun recorded it; FirstMessage and LastMessage are its run's
	// first and last outbox rows.
	FirstStored, Created, ClosesAt, Started, RunBegun, FirstMessage, LastMessage int64
}

// WindowTimes lists the entry windows of a canvas, oldest first, with the
// times of their stages.
func (s *SQLite) WindowTimes(ctx context.Context, canvasID string) ([]WindowTimes, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT ew.users,
			COALESCE((SELECT received_at FROM events WHERE id = ew.first_event), 0),
			ew.created_at, ew.closes_at, ew.started_at, COALESCE(r.started_at, 0), COALESCE(o.f, 0), COALESCE(o.l, 0)
		FROM entry_windows ew
		LEFT JOIN runs r ON r.canvas_id = ew.canvas_id AND r.workflow_id LIKE ew.workflow_id || '/%'
		LEFT JOIN (SELECT run_id, min(created_at) AS f, max(created_at) AS l FROM outbox WHERE canvas_id = ? GROUP BY run_id) o ON o.run_id = r.id
		WHERE ew.canvas_id = ? ORDER BY ew.id`, canvasID, canvasID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WindowTimes
	for rows.Next() {
		var w WindowTimes
		if err := rows.Scan(&w.Users, &w.FirstStored, &w.Created, &w.ClosesAt, &w.Started, &w.RunBegun, &w.FirstMessage, &w.LastMessage); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// runBegunLookback is how many of a canvas's newest runs RunBegun looks
// among: it is asked about a window started moments ago, whose run, once
// begun, is among the last few its canvas recorded.
const runBegunLookback = 32

// RunBegun reports whether the run started under an entry window's
// workflow id has begun (BeginRun recorded it; the runs table keys runs by
// the workflow id and Temporal's run id). It reads only the canvas's
// newest runs (an index range), so a run older than those reads as not
// begun — the router then waits its window's full time, as without it.
func (s *SQLite) RunBegun(ctx context.Context, canvasID, workflowID string) (bool, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT workflow_id FROM runs WHERE canvas_id = ? ORDER BY id DESC LIMIT ?`, canvasID, runBegunLookback)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	prefix := workflowID + "/"
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return false, err
		}
		if strings.HasPrefix(id, prefix) {
			return true, nil
		}
	}
	return false, rows.Err()
}
