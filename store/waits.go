package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Wait is a cohort waiting at a step for an event.
type Wait struct {
	CohortID   int64
	RunID      int64
	CanvasID   string
	PlanHash   string
	StepID     string
	Event      string
	WorkflowID string
	Deadline   time.Time
}

// RegisterWait records that a cohort waits for an event, so events reach it.
func (s *SQLite) RegisterWait(ctx context.Context, w Wait) error {
	_, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO waits (cohort_id, run_id, canvas_id, plan_hash, step_id, event, workflow_id, deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		w.CohortID, w.RunID, w.CanvasID, w.PlanHash, w.StepID, w.Event, w.WorkflowID, w.Deadline.UnixMilli())
	return err
}

// Membership is one run a user entered.
type Membership struct {
	UID        int64
	RunID      int64
	CanvasID   string
	PlanHash   string
	WorkflowID string
	State      string
	EnteredAt  time.Time
}

// MembershipsOf lists the runs the users entered since a time (running or
// not: a goal can convert after the journey ended), newest first per user.
func (s *SQLite) MembershipsOf(ctx context.Context, uids []int64, since time.Time) ([]Membership, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT e.uid, e.run_id, e.canvas_id, r.plan_hash, r.workflow_id, r.state, e.entered_at
		FROM entries e JOIN runs r ON r.id = e.run_id
		WHERE e.uid`+inIDs+` AND e.entered_at >= ? ORDER BY e.uid, e.entered_at DESC`, idList(uids), since.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var m Membership
		var at int64
		if err := rows.Scan(&m.UID, &m.RunID, &m.CanvasID, &m.PlanHash, &m.WorkflowID, &m.State, &at); err != nil {
			return nil, err
		}
		m.EnteredAt = time.UnixMilli(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// WaitsIn returns the registered waits of runs for an event.
func (s *SQLite) WaitsIn(ctx context.Context, runIDs []int64, event string) ([]Wait, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT cohort_id, run_id, canvas_id, plan_hash, step_id, event, workflow_id, deadline FROM waits
		WHERE event = ? AND run_id`+inIDs+` ORDER BY cohort_id`, event, idList(runIDs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Wait
	for rows.Next() {
		var w Wait
		var deadline int64
		if err := rows.Scan(&w.CohortID, &w.RunID, &w.CanvasID, &w.PlanHash, &w.StepID, &w.Event, &w.WorkflowID, &deadline); err != nil {
			return nil, err
		}
		w.Deadline = time.UnixMilli(deadline)
		out = append(out, w)
	}
	return out, rows.Err()
}

// InCohort reports whether a user is a member of a cohort: the one page
// whose uid range could hold it is found by index and decoded.
func (s *SQLite) InCohort(ctx context.Context, cohortID, uid int64) (bool, error) {
	var lo int64
	var blob []byte
	err := s.r.QueryRowContext(ctx, `SELECT min_uid, members FROM cohort_pages WHERE cohort_id = ? AND max_uid >= ? ORDER BY max_uid LIMIT 1`, cohortID, uid).Scan(&lo, &blob)
	if err == sql.ErrNoRows || (err == nil && lo > uid) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	members, err := UnpackMembers(blob)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m == uid {
			return true, nil
		}
	}
	return false, nil
}

// RecordArrivals records users who sent the awaited event, while the cohort
// still waits (a resolved wait takes no more arrivals). It returns how many
// are new.
func (s *SQLite) RecordArrivals(ctx context.Context, cohortID int64, uids []int64, at time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO arrivals (cohort_id, uid, at) SELECT ?, value, ? FROM json_each(?)
		WHERE EXISTS (SELECT 1 FROM waits WHERE cohort_id = ?)`, cohortID, at.UnixMilli(), idList(uids), cohortID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Collected is what CollectArrivals moved on.
type Collected struct {
	Arrived  Cohort // members who sent the event (may be empty)
	TimedOut Cohort // with final: everyone else (may be empty)
}

// CollectArrivals moves a waiting cohort's new arrivals into a child cohort,
// keyed by seq (chosen by the workflow), so a retried call returns the same
// child. With final the wait ends: it takes no more arrivals and the members
// who did not arrive form a second child.
func (s *SQLite) CollectArrivals(ctx context.Context, waiting Cohort, seq int, final bool) (Collected, error) {
	var out Collected
	prefix := fmt.Sprintf("%d/%s/%d/", waiting.RunID, waiting.StepID, waiting.ID)
	now := s.now().UnixMilli()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		arrived, done, err := childCohort(ctx, tx, prefix+fmt.Sprint("arrived", seq), waiting, now)
		if err != nil {
			return err
		}
		if !done {
			rows, err := tx.QueryContext(ctx, `SELECT uid FROM arrivals WHERE cohort_id = ? AND collected = 0 ORDER BY uid`, waiting.ID)
			if err != nil {
				return err
			}
			var uids []int64
			for rows.Next() {
				var u int64
				if err := rows.Scan(&u); err != nil {
					rows.Close()
					return err
				}
				uids = append(uids, u)
			}
			rows.Close()
			var pages []Page
			for i := 0; i < len(uids); i += PageSize {
				pages = append(pages, Page{No: int64(len(pages)), Members: uids[i:min(i+PageSize, len(uids))]})
			}
			if err := writePages(ctx, tx, arrived, pages); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE arrivals SET collected = ? WHERE cohort_id = ? AND collected = 0 AND uid`+inIDs, arrived, waiting.ID, idList(uids)); err != nil {
				return err
			}
			if err := sealIn(ctx, tx, arrived, int64(len(pages))); err != nil {
				return err
			}
		}
		if out.Arrived, err = cohortIn(ctx, tx, arrived); err != nil {
			return err
		}
		if !final {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM waits WHERE cohort_id = ?`, waiting.ID); err != nil {
			return err
		}
		rest, done, err := childCohort(ctx, tx, prefix+"timeout", waiting, now)
		if err != nil {
			return err
		}
		if !done {
			if err := writeRemainder(ctx, tx, waiting, rest); err != nil {
				return err
			}
			if err := sealIn(ctx, tx, rest, waiting.PageSpan); err != nil {
				return err
			}
		}
		out.TimedOut, err = cohortIn(ctx, tx, rest)
		return err
	})
	return out, err
}

// childCohort creates (or finds) a child of a waiting cohort by key; done
// says it was already sealed by an earlier call.
func childCohort(ctx context.Context, tx *sql.Tx, key string, parent Cohort, now int64) (id int64, done bool, err error) {
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO cohorts (key, run_id, step_id, parent_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		key, parent.RunID, parent.StepID, parent.ID, now); err != nil {
		return 0, false, err
	}
	var sealed int
	err = tx.QueryRowContext(ctx, `SELECT id, sealed FROM cohorts WHERE key = ?`, key).Scan(&id, &sealed)
	return id, sealed == 1, err
}

func sealIn(ctx context.Context, tx *sql.Tx, cohortID, span int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE cohorts SET size = (SELECT coalesce(sum(n), 0) FROM cohort_pages WHERE cohort_id = ?),
		page_span = max(?, (SELECT coalesce(max(page) + 1, 0) FROM cohort_pages WHERE cohort_id = ?)), sealed = 1 WHERE id = ?`, cohortID, span, cohortID, cohortID)
	return err
}

func cohortIn(ctx context.Context, tx *sql.Tx, id int64) (Cohort, error) {
	var c Cohort
	var wake int64
	var sealed int
	err := tx.QueryRowContext(ctx, `SELECT id, run_id, step_id, parent_id, size, page_span, wake_at, sealed FROM cohorts WHERE id = ?`, id).
		Scan(&c.ID, &c.RunID, &c.StepID, &c.ParentID, &c.Size, &c.PageSpan, &wake, &sealed)
	if wake > 0 {
		c.WakeAt = time.UnixMilli(wake)
	}
	c.Sealed = sealed == 1
	return c, err
}

// writeRemainder writes the waiting cohort's members who never arrived,
// page by page with the parent's page numbers.
func writeRemainder(ctx context.Context, tx *sql.Tx, waiting Cohort, into int64) error {
	arrived := map[int64]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT uid FROM arrivals WHERE cohort_id = ?`, waiting.ID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			rows.Close()
			return err
		}
		arrived[u] = true
	}
	rows.Close()
	pageRows, err := tx.QueryContext(ctx, `SELECT page, members FROM cohort_pages WHERE cohort_id = ? ORDER BY page`, waiting.ID)
	if err != nil {
		return err
	}
	var pages []Page
	for pageRows.Next() {
		var no int64
		var blob []byte
		if err := pageRows.Scan(&no, &blob); err != nil {
			pageRows.Close()
			return err
		}
		members, err := UnpackMembers(blob)
		if err != nil {
			pageRows.Close()
			return err
		}
		kept := members[:0]
		for _, m := range members {
			if !arrived[m] {
				kept = append(kept, m)
			}
		}
		pages = append(pages, Page{No: no, Members: kept})
	}
	pageRows.Close()
	if err := pageRows.Err(); err != nil {
		return err
	}
	return writePages(ctx, tx, into, pages)
}
