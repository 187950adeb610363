package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
)

// StaffStepCounts is what a staff_task step did with its tasks: one task per
// staff member (however many parts WeCom needed).
type StaffStepCounts struct {
	Tasks     int64 `json:"tasks"`
	Created   int64 `json:"created"`  // exist on WeCom, for staff to confirm
	Recorded  int64 `json:"recorded"` // in the outbox: no WeCom configured, nothing sent
	Failed    int64 `json:"failed"`   // refused, missing data, or unknown after a crash
	Done      int64 `json:"done"`     // sent (or acknowledged) by the staff member
	Open      int64 `json:"open"`     // created, not done yet, before the deadline
	NotDone   int64 `json:"not_done"` // created, not done by the deadline
	Customers int64 `json:"customers"`
	// Unassigned are customers put in no task, by reason (no_owner: nobody
	// owns them; no_address: no WeCom external userid).
	Unassigned map[string]int64 `json:"unassigned,omitempty"`
}

// StaffStepCounts counts each staff_task step's tasks for one run (runID >
// 0) or every run of a canvas, by step id.
func (s *SQLite) StaffStepCounts(ctx context.Context, canvasID string, runID int64) (map[string]*StaffStepCounts, error) {
	filter, arg := `canvas_id = ?`, any(canvasID)
	if runID > 0 {
		filter, arg = `run_id = ?`, any(runID)
	}
	// A task is (run, step, cohort, staff); its parts count once, by their
	// worst state. (CASE rather than a boolean's 0/1, and named subqueries: the
	// same SQL for PostgreSQL.)
	rows, err := s.r.QueryContext(ctx, `SELECT step_id, count(*),
			sum(created), sum(recorded), sum(failed), sum(done), sum(open), sum(not_done), sum(customers)
		FROM (SELECT run_id, step_id, cohort, staff,
				max(CASE WHEN state = 'created' THEN 1 ELSE 0 END) AS created,
				max(CASE WHEN state = 'recorded' THEN 1 ELSE 0 END) AS recorded,
				max(CASE WHEN live IN ('failed', 'unknown') THEN 1 ELSE 0 END) AS failed,
				min(CASE WHEN live IN ('on_time', 'late') THEN 1 ELSE 0 END) AS done,
				max(CASE WHEN live = 'open' THEN 1 ELSE 0 END) AS open,
				max(CASE WHEN live = 'not_done' THEN 1 ELSE 0 END) AS not_done,
				sum(customers) AS customers
			FROM (SELECT *, `+liveResult+` AS live FROM staff_tasks WHERE `+filter+`) AS t
			GROUP BY run_id, step_id, cohort, staff) AS tasks
		GROUP BY step_id`, s.now().UnixMilli(), arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*StaffStepCounts{}
	for rows.Next() {
		var step string
		c := &StaffStepCounts{}
		if err := rows.Scan(&step, &c.Tasks, &c.Created, &c.Recorded, &c.Failed, &c.Done, &c.Open, &c.NotDone, &c.Customers); err != nil {
			return nil, err
		}
		out[step] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	runFilter := `run_id IN (SELECT id FROM runs WHERE canvas_id = ?)`
	if runID > 0 {
		runFilter = `run_id = ?`
	}
	urows, err := s.r.QueryContext(ctx, `SELECT step_id, status, count(*) FROM staff_task_customers
		WHERE `+runFilter+` AND status IN ('no_owner', 'no_address') GROUP BY step_id, status`, arg)
	if err != nil {
		return nil, err
	}
	defer urows.Close()
	for urows.Next() {
		var step, status string
		var n int64
		if err := urows.Scan(&step, &status, &n); err != nil {
			return nil, err
		}
		c := out[step]
		if c == nil {
			c = &StaffStepCounts{}
			out[step] = c
		}
		if c.Unassigned == nil {
			c.Unassigned = map[string]int64{}
		}
		c.Unassigned[status] += n
	}
	return out, urows.Err()
}

// StoreID identifies this store: the CLI compares it with the running
// Huabu's before it writes (imports), so that a store under another data
// directory is never filled by mistake. It is made the first time it is asked.
func (s *SQLite) StoreID(ctx context.Context) (string, error) {
	var id string
	if ok, err := s.Setting(ctx, "store_id", &id); err != nil || ok {
		return id, err
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id = hex.EncodeToString(b)
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO settings (key, value) VALUES ('store_id', ?)`, `"`+id+`"`); err != nil {
		return "", err
	}
	if ok, err := s.Setting(ctx, "store_id", &id); err != nil || !ok {
		return "", errors.Join(err, errors.New("store id not saved"))
	}
	return id, nil
}

// RecentRuns lists the newest runs of every canvas, newest first.
func (s *SQLite) RecentRuns(ctx context.Context, limit int) ([]Run, error) {
	ids, err := s.selectIDs(ctx, `SELECT id FROM runs ORDER BY id DESC LIMIT ?`, limit)
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

// RunByWorkflow finds the run a workflow recorded, by its workflow id
// (runs record "workflow id/Temporal run id").
func (s *SQLite) RunByWorkflow(ctx context.Context, workflowID string) (Run, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT id FROM runs WHERE workflow_id = ?1 OR substr(workflow_id, 1, length(?1) + 1) = ?1 || '/'
		ORDER BY id DESC LIMIT 1`, workflowID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, ErrNotFound
	}
	if err != nil {
		return Run{}, err
	}
	return s.GetRun(ctx, id)
}

// TemporalWorkflowID is the Temporal workflow id of a run (without the
// Temporal run id the store records after it).
func (r Run) TemporalWorkflowID() string {
	if i := strings.LastIndexByte(r.WorkflowID, '/'); i > 0 {
		return r.WorkflowID[:i]
	}
	return r.WorkflowID
}
