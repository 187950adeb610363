package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// MetricsSnapshot is what /metrics reports from the store at a scrape:
// every number is read from rows the engine writes anyway, so it is right
// after a restart and with several workers.
type MetricsSnapshot struct {
	// Runs by canvas and state (running, completed, failed, ...).
	Runs map[[2]string]int64
	// Users entered into steps, by canvas and step: of the runs going on
	// now (Running), and of the runs that ended after the cursor passed in
	// (Finished; the caller adds them up once).
	RunningEntries, FinishedEntries map[[2]string]int64
	// Cursor is where the next snapshot's FinishedEntries start.
	Cursor FinishedCursor
	// Sleeping cohorts of running runs and their users, by canvas and
	// what they wait for ("time" or "event").
	CohortsWaiting map[[2]string]int64
	UsersWaiting   map[[2]string]int64
	// Staff tasks of running runs by canvas and live state: open,
	// not_done, on_time, late, failed, unknown, recorded, new, pending.
	StaffTasks map[[2]string]int64
}

// FinishedCursor is the last ended run a snapshot counted.
type FinishedCursor struct {
	FinishedAt, RunID int64
}

// Metrics reads a MetricsSnapshot in one read transaction. Step entries of
// ended runs never change, so each is read once (after `since`).
func (s *SQLite) Metrics(ctx context.Context, since FinishedCursor) (MetricsSnapshot, error) {
	snap := MetricsSnapshot{Runs: map[[2]string]int64{}, RunningEntries: map[[2]string]int64{}, FinishedEntries: map[[2]string]int64{},
		CohortsWaiting: map[[2]string]int64{}, UsersWaiting: map[[2]string]int64{}, StaffTasks: map[[2]string]int64{}, Cursor: since}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return snap, err
	}
	defer tx.Rollback()
	now := s.now().UnixMilli()
	pairs := func(into map[[2]string]int64, q string, args ...any) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a, b string
			var n int64
			if err := rows.Scan(&a, &b, &n); err != nil {
				return err
			}
			into[[2]string{a, b}] += n
		}
		return rows.Err()
	}
	waiting := func(kind, q string) error {
		rows, err := tx.QueryContext(ctx, q, now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var canvas string
			var cohorts, users int64
			if err := rows.Scan(&canvas, &cohorts, &users); err != nil {
				return err
			}
			snap.CohortsWaiting[[2]string{canvas, kind}] += cohorts
			snap.UsersWaiting[[2]string{canvas, kind}] += users
		}
		return rows.Err()
	}
	for _, step := range []func() error{
		func() error {
			return pairs(snap.Runs, `SELECT canvas_id, state, count(*) FROM runs GROUP BY canvas_id, state`)
		},
		func() error {
			return pairs(snap.RunningEntries, `SELECT r.canvas_id, e.step_id, sum(e.count) FROM runs r JOIN step_entries e ON e.run_id = r.id
				WHERE r.state = 'running' GROUP BY r.canvas_id, e.step_id`)
		},
		func() error {
			// Runs that ended since the cursor, oldest first, a bounded
			// number per scrape (the first scrape after a start catches up).
			rows, err := tx.QueryContext(ctx, `SELECT id, finished_at FROM runs WHERE finished_at IS NOT NULL AND state != 'running'
				AND (finished_at > ?1 OR (finished_at = ?1 AND id > ?2))
				ORDER BY finished_at, id LIMIT 2000`, since.FinishedAt, since.RunID)
			if err != nil {
				return err
			}
			var ids []any
			for rows.Next() {
				var c FinishedCursor
				if err := rows.Scan(&c.RunID, &c.FinishedAt); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, c.RunID)
				snap.Cursor = c
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(ids) == 0 {
				return err
			}
			return pairs(snap.FinishedEntries, `SELECT r.canvas_id, e.step_id, sum(e.count) FROM runs r JOIN step_entries e ON e.run_id = r.id
				WHERE r.id IN (`+placeholders(len(ids))+`) GROUP BY r.canvas_id, e.step_id`, ids...)
		},
		func() error {
			return waiting("time", `SELECT r.canvas_id, count(*), coalesce(sum(c.size), 0) FROM runs r JOIN cohorts c ON c.run_id = r.id
				WHERE r.state = 'running' AND c.wake_at > 0 AND c.wake_at > ? GROUP BY r.canvas_id`)
		},
		func() error {
			return waiting("event", `SELECT w.canvas_id, count(*), coalesce(sum(c.size), 0) FROM waits w JOIN cohorts c ON c.id = w.cohort_id
				WHERE w.deadline > ? GROUP BY w.canvas_id`)
		},
		func() error {
			return pairs(snap.StaffTasks, `SELECT canvas_id, CASE WHEN live = '' THEN state ELSE live END, count(*)
				FROM (SELECT *, `+liveResult+` AS live FROM staff_tasks WHERE run_id IN (SELECT id FROM runs WHERE state = 'running')) AS t
				GROUP BY 1, 2`, now)
		},
	} {
		if err := step(); err != nil {
			return snap, err
		}
	}
	return snap, nil
}

// EntryLag is how long an entry window's first event waited for its run.
type EntryLag struct {
	Canvas    string
	StartedAt int64 // unix ms the run was started
	WindowID  int64
	Lag       time.Duration // from the event's acceptance to the run's start
}

// EntryLags lists entry windows started after (afterMs, afterID), oldest
// first, with the lag of their first event.
func (s *SQLite) EntryLags(ctx context.Context, afterMs, afterID int64, limit int) ([]EntryLag, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT w.canvas_id, w.started_at, w.id, w.started_at - e.received_at
		FROM entry_windows w JOIN events e ON e.id = w.first_event
		WHERE w.started_at > 0 AND (w.started_at > ?1 OR (w.started_at = ?1 AND w.id > ?2))
		ORDER BY w.started_at, w.id LIMIT ?3`, afterMs, afterID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EntryLag
	for rows.Next() {
		var l EntryLag
		var ms int64
		if err := rows.Scan(&l.Canvas, &l.StartedAt, &l.WindowID, &ms); err != nil {
			return nil, err
		}
		l.Lag = time.Duration(max(ms, 0)) * time.Millisecond
		out = append(out, l)
	}
	return out, rows.Err()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
