package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Run states.
const (
	RunRunning   = "running"
	RunCompleted = "completed"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
)

// Run is one execution of a canvas version.
type Run struct {
	ID         int64
	WorkflowID string
	CanvasID   string
	PlanHash   string
	Trigger    string
	State      string
	Entered    int64
	StartedAt  time.Time
	FinishedAt time.Time
	Error      string
}

// BeginRun records a run for a workflow, or returns the one already recorded
// for it (the activity may be retried).
func (s *SQLite) BeginRun(ctx context.Context, workflowID, canvasID, planHash, trigger string) (Run, error) {
	_, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO runs (workflow_id, canvas_id, plan_hash, trigger, state, started_at) VALUES (?, ?, ?, ?, ?, ?)`,
		workflowID, canvasID, planHash, trigger, RunRunning, s.now().UnixMilli())
	if err != nil {
		return Run{}, err
	}
	return s.runWhere(ctx, s.w, `workflow_id = ?`, workflowID)
}

// GetRun returns a run by id.
func (s *SQLite) GetRun(ctx context.Context, id int64) (Run, error) {
	return s.runWhere(ctx, s.r, `id = ?`, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *SQLite) runWhere(ctx context.Context, q queryer, where string, arg any) (Run, error) {
	var r Run
	var started int64
	var finished sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT id, workflow_id, canvas_id, plan_hash, trigger, state, entered, started_at, finished_at, error FROM runs WHERE `+where, arg).
		Scan(&r.ID, &r.WorkflowID, &r.CanvasID, &r.PlanHash, &r.Trigger, &r.State, &r.Entered, &started, &finished, &r.Error)
	if err == sql.ErrNoRows {
		return r, ErrNotFound
	}
	r.StartedAt = time.UnixMilli(started)
	if finished.Valid {
		r.FinishedAt = time.UnixMilli(finished.Int64)
	}
	return r, err
}

// Runs lists the runs of a canvas, newest first.
func (s *SQLite) Runs(ctx context.Context, canvasID string, limit int) ([]Run, error) {
	ids, err := s.selectIDs(ctx, `SELECT id FROM runs WHERE canvas_id = ? ORDER BY id DESC LIMIT ?`, canvasID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Run, 0, len(ids))
	for _, id := range ids {
		r, err := s.GetRun(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// SetRunEntered records how many users entered the run.
func (s *SQLite) SetRunEntered(ctx context.Context, runID, entered int64) error {
	_, err := s.w.ExecContext(ctx, `UPDATE runs SET entered = ? WHERE id = ?`, entered, runID)
	return err
}

// FinishRun records the end of a run (completed, failed or cancelled) and
// drops what it still waited for: an ended run takes no more arrivals, and
// the router, which routes only to running runs, leaves it alone.
func (s *SQLite) FinishRun(ctx context.Context, runID int64, state, errMsg string) error {
	// Shared (ADR 039): two writes of the run's own rows, no read; the
	// waits' other writers (waits.go) hold the write lock exclusively.
	return s.sharedTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, error = ?, finished_at = ? WHERE id = ?`, state, errMsg, s.now().UnixMilli(), runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM waits WHERE run_id = ?`, runID)
		return err
	})
}

// Cohort is a set of users moving through a run together. Its members live
// in pages numbered in [0, PageSpan); pages may be missing (empty).
type Cohort struct {
	ID       int64
	RunID    int64
	StepID   string
	ParentID int64
	Size     int64
	PageSpan int64
	WakeAt   time.Time
	Sealed   bool
}

// CreateCohort returns the cohort with this key, creating it if new. Keys are
// deterministic (run, step, parent, arm), so a retried activity writes into
// the cohort its first attempt created.
func (s *SQLite) CreateCohort(ctx context.Context, key string, runID int64, stepID string, parentID int64, wakeAt time.Time) (Cohort, error) {
	var wake int64
	if !wakeAt.IsZero() {
		wake = wakeAt.UnixMilli()
	}
	_, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO cohorts (key, run_id, step_id, parent_id, wake_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		key, runID, stepID, parentID, wake, s.now().UnixMilli())
	if err != nil {
		return Cohort{}, err
	}
	return s.cohortWhere(ctx, s.w, `key = ?`, key)
}

// GetCohort returns a cohort by id.
func (s *SQLite) GetCohort(ctx context.Context, id int64) (Cohort, error) {
	return s.cohortWhere(ctx, s.r, `id = ?`, id)
}

func (s *SQLite) cohortWhere(ctx context.Context, q queryer, where string, arg any) (Cohort, error) {
	var c Cohort
	var wake int64
	var sealed int
	err := q.QueryRowContext(ctx, `SELECT id, run_id, step_id, parent_id, size, page_span, wake_at, sealed FROM cohorts WHERE `+where, arg).
		Scan(&c.ID, &c.RunID, &c.StepID, &c.ParentID, &c.Size, &c.PageSpan, &wake, &sealed)
	if err == sql.ErrNoRows {
		return c, ErrNotFound
	}
	if wake > 0 {
		c.WakeAt = time.UnixMilli(wake)
	}
	c.Sealed = sealed == 1
	return c, err
}

// Page is one page of a cohort's members, sorted by uid.
type Page struct {
	No      int64
	Members []int64
}

// WritePages writes (or rewrites) pages of a cohort. An empty page deletes
// the page of that number: a retried activity that now puts nobody on a page
// (a user moved to another branch arm between attempts) must not leave the
// earlier attempt's members there. Rewriting pages by number is how a
// resumed activity stays idempotent.
func (s *SQLite) WritePages(ctx context.Context, cohortID int64, pages []Page) error {
	return s.keyedTx(ctx, "cohort", cohortID, func(tx *sql.Tx) error { return writePages(ctx, tx, cohortID, pages) })
}

func writePages(ctx context.Context, tx *sql.Tx, cohortID int64, pages []Page) error {
	st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO cohort_pages (cohort_id, page, n, min_uid, max_uid, members) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, p := range pages {
		if len(p.Members) == 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM cohort_pages WHERE cohort_id = ? AND page = ?`, cohortID, p.No); err != nil {
				return err
			}
			continue
		}
		if len(p.Members) > PageSize {
			return fmt.Errorf("page %d has %d members; at most %d", p.No, len(p.Members), PageSize)
		}
		packed := PackMembers(p.Members) // sorts
		lo, hi := slices.Min(p.Members), slices.Max(p.Members)
		if _, err := st.ExecContext(ctx, cohortID, p.No, len(p.Members), lo, hi, packed); err != nil {
			return err
		}
	}
	return nil
}

// SealCohort computes a cohort's size and page span from its pages and marks
// it complete. span is the page-number bound the writer used; the span is
// never less than the pages written, so a writer that lost track of its
// cursor (a retry without heartbeat details) cannot hide members.
func (s *SQLite) SealCohort(ctx context.Context, cohortID, span int64) (Cohort, error) {
	// Under the cohort's lock (ADR 039): the seal reads the pages a writer
	// of the same cohort may be replacing.
	err := s.keyedTx(ctx, "cohort", cohortID, func(tx *sql.Tx) error { return sealIn(ctx, tx, cohortID, span) })
	if err != nil {
		return Cohort{}, err
	}
	return s.cohortWhere(ctx, s.w, `id = ?`, cohortID)
}

// Pages returns the pages of a cohort numbered in [from, to), in order.
func (s *SQLite) Pages(ctx context.Context, cohortID, from, to int64) ([]Page, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT page, members FROM cohort_pages WHERE cohort_id = ? AND page >= ? AND page < ? ORDER BY page`, cohortID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Page
	for rows.Next() {
		var p Page
		var blob []byte
		if err := rows.Scan(&p.No, &blob); err != nil {
			return nil, err
		}
		if p.Members, err = UnpackMembers(blob); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RecordStepEntry records that a cohort entered a step on a visit
// (idempotent).
func (s *SQLite) RecordStepEntry(ctx context.Context, runID int64, stepID string, visit int, cohortID, count int64) error {
	_, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO step_entries (run_id, step_id, visit, cohort_id, count) VALUES (?, ?, ?, ?, ?)`, runID, stepID, visit, cohortID, count)
	return err
}

// RecordExits records users leaving a run at a step (first exit wins).
func (s *SQLite) RecordExits(ctx context.Context, runID int64, stepID, reason string, uids []int64) error {
	if len(uids) == 0 {
		return nil
	}
	now := s.now().UnixMilli()
	// Shared (ADR 039): a conflicting insert waits for the row's first
	// writer and adds nothing, so the count is of this call's new exits;
	// the counter moves by one atomic upsert.
	return s.sharedTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO exits (run_id, uid, step_id, reason, at) SELECT ?, value, ?, ?, ? FROM json_each(?)`,
			runID, stepID, reason, now, idList(uids))
		if err != nil {
			return err
		}
		added, err := res.RowsAffected() // only new exits: a retry adds none
		if err != nil {
			return err
		}
		return addCounters(ctx, tx, runID, counterDeltas{{stepID, 0, counterExited, reason}: added})
	})
}

// ExitedAmong returns which of uids have left the run.
func (s *SQLite) ExitedAmong(ctx context.Context, runID int64, uids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT uid FROM exits WHERE run_id = ? AND `+uidIn, append([]any{runID}, uidArgs(uids)...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out[u] = true
	}
	return out, rows.Err()
}

// LastEntries returns, for the given users, when they last entered a canvas
// in a run other than exceptRun: the run admitting them must not count its
// own entries (a retried admission would drop everyone it already wrote).
func (s *SQLite) LastEntries(ctx context.Context, canvasID string, exceptRun int64, uids []int64) (map[int64]time.Time, error) {
	out := map[int64]time.Time{}
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT uid, max(entered_at) FROM entries WHERE canvas_id = ? AND run_id != ? AND uid`+inIDs+` GROUP BY uid`, canvasID, exceptRun, idList(uids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u, at int64
		if err := rows.Scan(&u, &at); err != nil {
			return nil, err
		}
		out[u] = time.UnixMilli(at)
	}
	return out, rows.Err()
}

// EntryChunk is one chunk of a run's admission: of the profiles with uid in
// (AfterUID, LastUID], the ones who entered, as the entry cohort's pages
// numbered in [FromPage, ToPage).
type EntryChunk struct {
	CanvasID          string
	RunID             int64
	AfterUID, LastUID int64
	FromPage, ToPage  int64
	Pages             []Page
	// RecordEntries writes the users' entry into the canvas (re-entry
	// rules, exits, goals and waits read it).
	RecordEntries bool
}

// WriteEntryChunk writes one chunk of an entry cohort, replacing whatever an
// earlier attempt wrote for the same chunk — its pages and its entry rows —
// in one transaction, so a retried admission ends with exactly the members
// its last attempt decided on, and re-entry rules see exactly who entered.
func (s *SQLite) WriteEntryChunk(ctx context.Context, cohortID int64, c EntryChunk) error {
	now := s.now().UnixMilli()
	// Under the cohort's lock (ADR 039): the chunk's pages and entry rows
	// are replaced, delete then insert, as one attempt decided them.
	return s.keyedTx(ctx, "cohort", cohortID, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM cohort_pages WHERE cohort_id = ? AND page >= ? AND page < ?`, cohortID, c.FromPage, c.ToPage); err != nil {
			return err
		}
		if err := writePages(ctx, tx, cohortID, c.Pages); err != nil {
			return err
		}
		if !c.RecordEntries {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM entries WHERE canvas_id = ? AND uid > ? AND uid <= ? AND run_id = ?`, c.CanvasID, c.AfterUID, c.LastUID, c.RunID); err != nil {
			return err
		}
		var all []int64
		for _, p := range c.Pages {
			all = append(all, p.Members...)
		}
		if len(all) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO entries (canvas_id, uid, run_id, entered_at) SELECT ?, value, ?, ? FROM json_each(?)`,
			c.CanvasID, c.RunID, now, idList(all))
		return err
	})
}

// RecordConversions records users reaching the run's goal (first time wins).
func (s *SQLite) RecordConversions(ctx context.Context, runID int64, uids []int64, at time.Time) error {
	// Shared (ADR 039), as RecordExits.
	return s.sharedTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO conversions (run_id, uid, at) SELECT ?, value, ? FROM json_each(?)`, runID, at.UnixMilli(), idList(uids))
		if err != nil {
			return err
		}
		added, err := res.RowsAffected() // only new conversions: a retry adds none
		if err != nil {
			return err
		}
		return addCounters(ctx, tx, runID, counterDeltas{{"", 0, counterConverted, ""}: added})
	})
}

// RecordCohortExit records that a cohort's remaining members finished at a
// step (idempotent per cohort).
func (s *SQLite) RecordCohortExit(ctx context.Context, runID int64, stepID string, cohortID int64, reason string, count int64) error {
	_, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO cohort_exits (run_id, step_id, cohort_id, reason, count) VALUES (?, ?, ?, ?, ?)`, runID, stepID, cohortID, reason, count)
	return err
}

// selectIDs runs a query of one integer column (ids, read first so that the
// rows are closed before each id is loaded on the same connection pool).
func (s *SQLite) selectIDs(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
