package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"sort"
	"time"
)

// Staff task states.
const (
	StaffTaskNew      = "new"      // assigned; WeCom not called yet
	StaffTaskPending  = "pending"  // WeCom is being called (or a crash left it mid-call)
	StaffTaskCreated  = "created"  // the task (or staff brief) exists on WeCom
	StaffTaskRecorded = "recorded" // no WeCom configured: recorded in the outbox, not tracked
	StaffTaskFailed   = "failed"   // WeCom refused it; Reason says why
	StaffTaskUnknown  = "unknown"  // a crash mid-call and the lookup could not tell
)

// Staff task results, once final.
const (
	StaffOnTime  = "on_time"
	StaffLate    = "late"
	StaffNotDone = "not_done"
)

// Customer statuses in a staff task (get_groupmsg_send_result's 1/2/3/0,
// and what Huabu decided before calling WeCom).
const (
	CustomerAssigned  = "assigned"
	CustomerSent      = "sent"       // 1
	CustomerNotFriend = "not_friend" // 2, or in fail_list when the task was created
	CustomerRemoved   = "removed"    // known from callbacks to be no longer a contact: left out of the task
	CustomerOverQuota = "over_quota" // 3: already received another mass-send
	CustomerUnsent    = "unsent"     // 0 when the task closed
	CustomerFailed    = "failed"     // the task could not be created
	CustomerUnknown   = "unknown"    // the task may or may not exist
	CustomerNoOwner   = "no_owner"
	CustomerNoAddress = "no_address"
)

// StaffTaskKey names one staff task.
type StaffTaskKey struct {
	RunID  int64  `json:"run_id"`
	StepID string `json:"step_id"`
	// Cohort is the step execution's cohort: cohorts that reach one step of
	// a run at different times each have their own tasks (0: rows written
	// before migration 024, shared by every cohort of the step).
	Cohort int64  `json:"cohort"`
	Staff  string `json:"staff"`
	Part   int    `json:"part"`
}

// StaffTask is one staff member's task of a staff_task step.
type StaffTask struct {
	StaffTaskKey
	CanvasID    string
	Kind        string // customers | staff
	State       string
	Ref         string // msgid, or the template card's task_id
	Attempt     string
	PendingAt   time.Time
	Customers   int
	Name        string
	Grid        string
	Leader      string
	CreatedAt   time.Time
	Deadline    time.Time
	NotifiedAt  time.Time
	Reminders   []time.Time
	EscalatedAt time.Time
	DoneAt      time.Time
	Result      string
	Reason      string
}

// StaffCustomer is one customer's row of a staff_task step.
type StaffCustomer struct {
	Cohort         int64  `json:"cohort"` // the step execution's (StaffTaskKey.Cohort)
	UID            int64  `json:"uid"`
	Staff          string `json:"staff"`
	ExternalUserID string `json:"external_userid"`
	Status         string `json:"status"`
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// StaffScope is the cohort a step execution's staff rows are keyed by: its
// own, unless the step already has rows written before migration 024
// (cohort 0) — a run in flight across the upgrade keeps sharing those, as
// it did, rather than creating its tasks a second time.
func (s *SQLite) StaffScope(ctx context.Context, runID int64, stepID string, cohort int64) (int64, error) {
	var legacy int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM staff_task_customers WHERE run_id = ? AND step_id = ? AND cohort = 0
		UNION ALL SELECT 1 FROM staff_tasks WHERE run_id = ? AND step_id = ? AND cohort = 0) l`, runID, stepID, runID, stepID).Scan(&legacy)
	if err != nil || legacy > 0 {
		return 0, err
	}
	return cohort, nil
}

// AssignStaffCustomers records customers of a step; rows already written
// (by an earlier attempt over the same page) are kept.
func (s *SQLite) AssignStaffCustomers(ctx context.Context, runID int64, stepID string, rows []StaffCustomer) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT OR IGNORE INTO staff_task_customers (run_id, step_id, cohort, uid, staff, external_userid, status)
		SELECT ?, ?, value->>'cohort', value->>'uid', value->>'staff', value->>'external_userid', value->>'status' FROM json_each(?)`, runID, stepID, string(b))
	return err
}

// SplitStaffParts numbers each staff member's assigned customers of the
// step execution keyed by scope (see StaffScope) into parts of at most max
// (a WeCom task takes 10,000 customers), in uid order, so the split is the
// same on every attempt; another cohort's customers, assigned earlier or
// later, are neither counted nor renumbered.
func (s *SQLite) SplitStaffParts(ctx context.Context, runID int64, stepID string, scope int64, max int) error {
	_, err := s.w.ExecContext(ctx, `UPDATE staff_task_customers SET part = r.p FROM (
			SELECT uid, (row_number() OVER (PARTITION BY staff ORDER BY uid) - 1) / ? AS p
			FROM staff_task_customers WHERE run_id = ? AND step_id = ? AND cohort = ? AND status = ?) r
		WHERE staff_task_customers.run_id = ? AND staff_task_customers.step_id = ? AND staff_task_customers.cohort = ?
			AND staff_task_customers.uid = r.uid`,
		max, runID, stepID, scope, CustomerAssigned, runID, stepID, scope)
	return err
}

// StaffAssignment counts a step's assigned customers per staff member and part.
type StaffAssignment struct {
	Cohort    int64
	Staff     string
	Part      int
	Customers int
}

// StaffAssignments lists the step's tasks-to-be: assigned customers per
// staff member and part, in staff order.
func (s *SQLite) StaffAssignments(ctx context.Context, runID int64, stepID string) ([]StaffAssignment, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT cohort, staff, part, count(*) FROM staff_task_customers WHERE run_id = ? AND step_id = ? AND status = ?
		GROUP BY cohort, staff, part ORDER BY cohort, staff, part`, runID, stepID, CustomerAssigned)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StaffAssignment
	for rows.Next() {
		var a StaffAssignment
		if err := rows.Scan(&a.Cohort, &a.Staff, &a.Part, &a.Customers); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// EnsureStaffTasks writes task rows in state new; existing rows are kept.
func (s *SQLite) EnsureStaffTasks(ctx context.Context, tasks []StaffTask) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO staff_tasks (run_id, step_id, cohort, staff, part, canvas_id, kind, state, customers, name, grid, leader, created_at, deadline)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, t := range tasks {
			if _, err := st.ExecContext(ctx, t.RunID, t.StepID, t.Cohort, t.Staff, t.Part, t.CanvasID, t.Kind, StaffTaskNew, t.Customers,
				t.Name, t.Grid, t.Leader, ms(t.CreatedAt), ms(t.Deadline)); err != nil {
				return err
			}
		}
		return nil
	})
}

const staffTaskCols = `run_id, step_id, cohort, staff, part, canvas_id, kind, state, ref, attempt, pending_at, customers, name, grid, leader,
	created_at, deadline, notified_at, reminders, escalated_at, done_at, result, reason`

func scanStaffTasks(rows *sql.Rows) ([]StaffTask, error) {
	defer rows.Close()
	var out []StaffTask
	for rows.Next() {
		var t StaffTask
		var pending, created, deadline, notified, escalated, done int64
		var reminders string
		if err := rows.Scan(&t.RunID, &t.StepID, &t.Cohort, &t.Staff, &t.Part, &t.CanvasID, &t.Kind, &t.State, &t.Ref, &t.Attempt, &pending, &t.Customers,
			&t.Name, &t.Grid, &t.Leader, &created, &deadline, &notified, &reminders, &escalated, &done, &t.Result, &t.Reason); err != nil {
			return nil, err
		}
		t.PendingAt, t.CreatedAt, t.Deadline, t.NotifiedAt = fromMS(pending), fromMS(created), fromMS(deadline), fromMS(notified)
		t.EscalatedAt, t.DoneAt = fromMS(escalated), fromMS(done)
		var at []int64
		_ = json.Unmarshal([]byte(reminders), &at)
		for _, v := range at {
			t.Reminders = append(t.Reminders, time.UnixMilli(v))
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// StaffTasks lists a step's tasks in staff and part order.
func (s *SQLite) StaffTasks(ctx context.Context, runID int64, stepID string) ([]StaffTask, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+staffTaskCols+` FROM staff_tasks WHERE run_id = ? AND step_id = ? ORDER BY cohort, staff, part`, runID, stepID)
	if err != nil {
		return nil, err
	}
	return scanStaffTasks(rows)
}

// StaffTaskByRef finds the task with a msgid or template card task_id.
func (s *SQLite) StaffTaskByRef(ctx context.Context, ref string) (StaffTask, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+staffTaskCols+` FROM staff_tasks WHERE ref = ? AND ref != '' LIMIT 1`, ref)
	if err != nil {
		return StaffTask{}, err
	}
	ts, err := scanStaffTasks(rows)
	if err != nil {
		return StaffTask{}, err
	}
	if len(ts) == 0 {
		return StaffTask{}, ErrNotFound
	}
	return ts[0], nil
}

// StaffTaskExternalIDs lists the external userids of a task's assigned customers.
func (s *SQLite) StaffTaskExternalIDs(ctx context.Context, k StaffTaskKey) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT external_userid FROM staff_task_customers WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ? AND status = ? ORDER BY uid`,
		k.RunID, k.StepID, k.Cohort, k.Staff, k.Part, CustomerAssigned)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// MarkStaffTaskPending records, before WeCom is called, that attempt is
// creating the task. It fails (returns false) when the row is not new: an
// earlier attempt owns it.
func (s *SQLite) MarkStaffTaskPending(ctx context.Context, k StaffTaskKey, attempt string, at time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE staff_tasks SET state = ?, attempt = ?, pending_at = ? WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ? AND state = ?`,
		StaffTaskPending, attempt, at.UnixMilli(), k.RunID, k.StepID, k.Cohort, k.Staff, k.Part, StaffTaskNew)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseStaffTask turns a pending task back to new: WeCom certainly did not
// create it (rejected before acting, or the lookup found nothing).
func (s *SQLite) ReleaseStaffTask(ctx context.Context, k StaffTaskKey) error {
	_, err := s.w.ExecContext(ctx, `UPDATE staff_tasks SET state = ?, attempt = '', pending_at = 0 WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ? AND state = ?`,
		StaffTaskNew, k.RunID, k.StepID, k.Cohort, k.Staff, k.Part, StaffTaskPending)
	return err
}

// StaffTaskSettlement is the outcome of creating a task.
type StaffTaskSettlement struct {
	State    string   // created | recorded | failed | unknown
	Ref      string   // msgid or task_id
	Reason   string   // why it failed
	NotFound []string // fail_list: external userids that are not contacts of the sender
	At       time.Time
}

// SettleStaffTask records how creating a task ended, and what that means
// for its customers: fail_list ones are not friends; all of them failed or
// unknown when the task did.
func (s *SQLite) SettleStaffTask(ctx context.Context, k StaffTaskKey, st StaffTaskSettlement) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE staff_tasks SET state = ?, ref = ?, reason = ?, created_at = CASE WHEN ? > 0 THEN ? ELSE created_at END
			WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ?`,
			st.State, st.Ref, st.Reason, ms(st.At), ms(st.At), k.RunID, k.StepID, k.Cohort, k.Staff, k.Part); err != nil {
			return err
		}
		where := ` WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ? AND status = ?`
		switch st.State {
		case StaffTaskFailed, StaffTaskUnknown:
			status := CustomerFailed
			if st.State == StaffTaskUnknown {
				status = CustomerUnknown
			}
			_, err := tx.ExecContext(ctx, `UPDATE staff_task_customers SET status = ?`+where, status, k.RunID, k.StepID, k.Cohort, k.Staff, k.Part, CustomerAssigned)
			return err
		}
		if len(st.NotFound) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE staff_task_customers SET status = ?`+where+` AND external_userid IN (SELECT value FROM json_each(?))`,
				CustomerNotFriend, k.RunID, k.StepID, k.Cohort, k.Staff, k.Part, CustomerAssigned, stringList(st.NotFound)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE staff_tasks SET customers = (SELECT count(*) FROM staff_task_customers c
			WHERE c.run_id = staff_tasks.run_id AND c.step_id = staff_tasks.step_id AND c.cohort = staff_tasks.cohort AND c.staff = staff_tasks.staff AND c.part = staff_tasks.part AND c.status = ?)
			WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ?`, CustomerAssigned, k.RunID, k.StepID, k.Cohort, k.Staff, k.Part)
		return err
	})
}

// RefsInUse reports which refs other tasks have already adopted, so a
// lookup never takes a task that belongs to another step or run.
func (s *SQLite) RefsInUse(ctx context.Context, refs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(refs) == 0 {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT ref FROM staff_tasks WHERE ref IN (SELECT value FROM json_each(?))`, stringList(refs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out[r] = true
	}
	return out, rows.Err()
}

func (s *SQLite) setTaskTimes(ctx context.Context, column string, keys []StaffTaskKey, at time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	// column is one of a few constants below, never input.
	_, err = s.w.ExecContext(ctx, `UPDATE staff_tasks SET `+column+` = ? WHERE `+column+` = 0 AND (run_id, step_id, cohort, staff, part) IN
		(SELECT value->>'run_id', value->>'step_id', value->>'cohort', value->>'staff', value->>'part' FROM json_each(?))`, at.UnixMilli(), string(b))
	return err
}

// MarkStaffNotified records that the staff members were told about their tasks.
func (s *SQLite) MarkStaffNotified(ctx context.Context, keys []StaffTaskKey, at time.Time) error {
	return s.setTaskTimes(ctx, "notified_at", keys, at)
}

// MarkStaffEscalated records that the leaders were told the tasks are not done.
func (s *SQLite) MarkStaffEscalated(ctx context.Context, keys []StaffTaskKey, at time.Time) error {
	return s.setTaskTimes(ctx, "escalated_at", keys, at)
}

// MarkStaffDone records when the staff member sent (or acknowledged) the task.
func (s *SQLite) MarkStaffDone(ctx context.Context, k StaffTaskKey, at time.Time) error {
	return s.setTaskTimes(ctx, "done_at", []StaffTaskKey{k}, at)
}

// AddStaffReminder records a reminder slot before the reminder is sent. It
// returns false when the slot is recorded already (a retried attempt), and
// the reminders recorded within the 24 hours before at, so the caller can
// keep WeCom's three-a-day limit.
func (s *SQLite) AddStaffReminder(ctx context.Context, k StaffTaskKey, at time.Time) (added bool, recent int, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var raw string
		if err := tx.QueryRowContext(ctx, `SELECT reminders FROM staff_tasks WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ?`,
			k.RunID, k.StepID, k.Cohort, k.Staff, k.Part).Scan(&raw); err != nil {
			return err
		}
		var list []int64
		_ = json.Unmarshal([]byte(raw), &list)
		for _, v := range list {
			if v == at.UnixMilli() {
				return nil
			}
			if v > at.Add(-24*time.Hour).UnixMilli() && v <= at.UnixMilli() {
				recent++
			}
		}
		if recent >= 3 {
			return nil
		}
		list = append(list, at.UnixMilli())
		sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
		b, _ := json.Marshal(list)
		added = true
		_, err := tx.ExecContext(ctx, `UPDATE staff_tasks SET reminders = ? WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ?`,
			string(b), k.RunID, k.StepID, k.Cohort, k.Staff, k.Part)
		return err
	})
	return added, recent, err
}

// RemoveStaffReminder drops a reminder slot whose reminder was not sent.
func (s *SQLite) RemoveStaffReminder(ctx context.Context, k StaffTaskKey, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var raw string
		if err := tx.QueryRowContext(ctx, `SELECT reminders FROM staff_tasks WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ?`,
			k.RunID, k.StepID, k.Cohort, k.Staff, k.Part).Scan(&raw); err != nil {
			return err
		}
		var list, kept []int64
		_ = json.Unmarshal([]byte(raw), &list)
		for _, v := range list {
			if v != at.UnixMilli() {
				kept = append(kept, v)
			}
		}
		if kept == nil {
			kept = []int64{}
		}
		b, _ := json.Marshal(kept)
		_, err := tx.ExecContext(ctx, `UPDATE staff_tasks SET reminders = ? WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ?`,
			string(b), k.RunID, k.StepID, k.Cohort, k.Staff, k.Part)
		return err
	})
}

// StaffCustomerResult is what WeCom reported for one customer.
type StaffCustomerResult struct {
	ExternalUserID string
	Status         string // sent | not_friend | over_quota | unsent
	SendTime       time.Time
}

// RecordStaffResults stores per-customer results of a task.
func (s *SQLite) RecordStaffResults(ctx context.Context, k StaffTaskKey, results []StaffCustomerResult) error {
	if len(results) == 0 {
		return nil
	}
	type row struct {
		E string `json:"e"`
		S string `json:"s"`
		T int64  `json:"t"`
	}
	rows := make([]row, len(results))
	for i, r := range results {
		rows[i] = row{r.ExternalUserID, r.Status, ms(r.SendTime)}
	}
	b, _ := json.Marshal(rows)
	// Only customers still waiting for a verdict change: fail_list and
	// suppression decided before the task are kept.
	_, err := s.w.ExecContext(ctx, `UPDATE staff_task_customers SET status = r.value->>'s', send_time = r.value->>'t'
		FROM json_each(?) r
		WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ? AND external_userid = r.value->>'e' AND status IN (?, ?)`,
		string(b), k.RunID, k.StepID, k.Cohort, k.Staff, k.Part, CustomerAssigned, CustomerUnsent)
	return err
}

// AckStaffTask records a staff member's acknowledgement of a staff brief
// (the template card's button). It returns false for an unknown task or a
// different staff member (a forged or stale click).
func (s *SQLite) AckStaffTask(ctx context.Context, ref, staff string, at time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE staff_tasks SET done_at = CASE WHEN done_at = 0 THEN ? ELSE done_at END
		WHERE ref = ? AND ref != '' AND kind = 'staff' AND lower(staff) = lower(?)`, at.UnixMilli(), ref, staff)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// FinishStaffTasks decides each task's result of one step execution — on time when done by its
// deadline, late when done after, not done otherwise — turns customers still
// waiting into unsent, and settles the step's rows in the delivery ledger so
// the per-step report counts them. It is idempotent.
func (s *SQLite) FinishStaffTasks(ctx context.Context, runID int64, stepID string, cohort int64, tracked bool) error {
	now := s.now().UnixMilli()
	return s.tx(ctx, func(tx *sql.Tx) error {
		args := []any{runID, stepID, cohort}
		if _, err := tx.ExecContext(ctx, `UPDATE staff_tasks SET state = ?, reason = 'crashed_mid_call' WHERE run_id = ? AND step_id = ? AND cohort = ? AND state = ?`,
			StaffTaskUnknown, runID, stepID, cohort, StaffTaskPending); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE staff_tasks SET state = ?, reason = CASE WHEN reason = '' THEN 'gave_up' ELSE reason END WHERE run_id = ? AND step_id = ? AND cohort = ? AND state = ?`,
			StaffTaskFailed, runID, stepID, cohort, StaffTaskNew); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE staff_tasks SET result = CASE
				WHEN state = 'failed' THEN 'failed'
				WHEN state = 'unknown' THEN 'unknown'
				WHEN state = 'recorded' THEN ''
				WHEN done_at > 0 AND done_at <= deadline THEN 'on_time'
				WHEN done_at > 0 THEN 'late'
				ELSE 'not_done' END
			WHERE run_id = ? AND step_id = ? AND cohort = ?`, args...); err != nil {
			return err
		}
		if !tracked {
			return nil // nobody can say what happened to the customers
		}
		// A staff brief's "customer" is the staff member: sent once the card
		// went out, whether or not they acknowledged it (that is the task's
		// result).
		if _, err := tx.ExecContext(ctx, `UPDATE staff_task_customers SET status = CASE
				(SELECT t.kind || '/' || t.state FROM staff_tasks t WHERE t.run_id = staff_task_customers.run_id AND t.step_id = staff_task_customers.step_id
					AND t.cohort = staff_task_customers.cohort AND t.staff = staff_task_customers.staff AND t.part = staff_task_customers.part)
				WHEN 'customers/failed' THEN 'failed' WHEN 'staff/failed' THEN 'failed'
				WHEN 'customers/unknown' THEN 'unknown' WHEN 'staff/unknown' THEN 'unknown'
				WHEN 'staff/created' THEN 'sent' ELSE 'unsent' END
			WHERE run_id = ? AND step_id = ? AND cohort = ? AND status = ?`, runID, stepID, cohort, CustomerAssigned); err != nil {
			return err
		}
		// The ledger gets the same verdicts, for `huabu report`: sent, failed
		// by reason, suppressed when Huabu left the customer out itself. The
		// step's counters move by the difference (zero when run again).
		before, err := stepLedgerStates(ctx, tx, runID, stepID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO deliveries (run_id, step_id, uid, channel, state, batch, reason, provider_ref, updated_at)
			SELECT c.run_id, c.step_id, c.uid, 'wecom.customer',
				CASE c.status WHEN 'sent' THEN 'sent' WHEN 'unknown' THEN 'unknown'
					WHEN 'no_owner' THEN 'suppressed' WHEN 'no_address' THEN 'suppressed' WHEN 'removed' THEN 'suppressed'
					ELSE 'failed' END,
				0, CASE c.status WHEN 'sent' THEN '' WHEN 'removed' THEN 'not_friend' ELSE c.status END, coalesce(t.ref, ''), ?
			FROM staff_task_customers c LEFT JOIN staff_tasks t ON t.run_id = c.run_id AND t.step_id = c.step_id AND t.cohort = c.cohort AND t.staff = c.staff AND t.part = c.part
			WHERE c.run_id = ? AND c.step_id = ? AND c.cohort = ?`, now, runID, stepID, cohort); err != nil {
			return err
		}
		after, err := stepLedgerStates(ctx, tx, runID, stepID)
		if err != nil {
			return err
		}
		for k, n := range before {
			after[k] -= n
		}
		return addCounters(ctx, tx, runID, after)
	})
}

// StaffCustomerCounts counts a step execution's customers by status.
func (s *SQLite) StaffCustomerCounts(ctx context.Context, runID int64, stepID string, cohort int64) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT status, count(*) FROM staff_task_customers WHERE run_id = ? AND step_id = ? AND cohort = ? GROUP BY status`, runID, stepID, cohort)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// StaffReportRow is one staff member's tasks of a canvas (one run or all).
type StaffReportRow struct {
	Staff, Name, Grid, Leader string
	Tasks                     int64 // tasks assigned (created or not)
	Failed                    int64 // tasks WeCom refused, or unknown after a crash
	OnTime, Late, NotDone     int64
	Open                      int64 // not done yet, before the deadline
	Untracked                 int64 // recorded in the outbox: no WeCom to track
	Customers                 int64 // customers in the staff member's tasks
	Sent, NotFriend           int64
	OverQuota, Unsent         int64
}

// liveResult is a task's result, or while its step is still tracking it
// what it comes to so far: on time or late once the staff member has sent
// (or acknowledged) it, failed once WeCom refused it, not done once the
// deadline passed (it may still turn late), open before. So a report read
// during the day shows who has done their task already. The parameter is
// now, in Unix milliseconds.
const liveResult = `CASE
		WHEN result != '' THEN result
		WHEN state IN ('failed', 'unknown') THEN state
		WHEN state = 'recorded' THEN ''
		WHEN done_at > 0 AND done_at <= deadline THEN 'on_time'
		WHEN done_at > 0 THEN 'late'
		WHEN deadline <= ? THEN 'not_done'
		ELSE 'open' END`

// StaffReport aggregates staff tasks per staff member for a canvas (runID
// 0: every run). Parts of one staff member's task count as one task.
func (s *SQLite) StaffReport(ctx context.Context, canvasID string, runID int64) ([]StaffReportRow, error) {
	filter, arg := `canvas_id = ?`, any(canvasID)
	if runID > 0 {
		filter, arg = `run_id = ?`, any(runID)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT staff, max(name), max(grid), max(leader),
			count(DISTINCT run_id || '/' || step_id || '/' || cohort),
			count(DISTINCT CASE WHEN live IN ('failed', 'unknown') THEN run_id || '/' || step_id || '/' || cohort END),
			count(DISTINCT CASE WHEN live = 'on_time' THEN run_id || '/' || step_id || '/' || cohort END),
			count(DISTINCT CASE WHEN live = 'late' THEN run_id || '/' || step_id || '/' || cohort END),
			count(DISTINCT CASE WHEN live = 'not_done' THEN run_id || '/' || step_id || '/' || cohort END),
			count(DISTINCT CASE WHEN live = 'open' THEN run_id || '/' || step_id || '/' || cohort END),
			count(DISTINCT CASE WHEN state = 'recorded' THEN run_id || '/' || step_id || '/' || cohort END)
		FROM (SELECT *, `+liveResult+` AS live FROM staff_tasks WHERE `+filter+`) AS t GROUP BY staff ORDER BY staff`, s.now().UnixMilli(), arg)
	if err != nil {
		return nil, err
	}
	byStaff := map[string]*StaffReportRow{}
	var out []*StaffReportRow
	for rows.Next() {
		r := &StaffReportRow{}
		if err := rows.Scan(&r.Staff, &r.Name, &r.Grid, &r.Leader, &r.Tasks, &r.Failed, &r.OnTime, &r.Late, &r.NotDone, &r.Open, &r.Untracked); err != nil {
			rows.Close()
			return nil, err
		}
		byStaff[r.Staff] = r
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Customers Huabu could not put in a task (no WeCom id) are the
	// per-step report's suppressed/no_address, not the staff member's.
	crows, err := s.r.QueryContext(ctx, `SELECT c.staff, c.status, count(*) FROM staff_task_customers c
		WHERE c.staff != '' AND c.status NOT IN ('no_owner', 'no_address') AND (c.run_id, c.step_id) IN (SELECT DISTINCT run_id, step_id FROM staff_tasks WHERE `+filter+` AND kind = 'customers')
		GROUP BY c.staff, c.status`, arg)
	if err != nil {
		return nil, err
	}
	defer crows.Close()
	for crows.Next() {
		var staff, status string
		var n int64
		if err := crows.Scan(&staff, &status, &n); err != nil {
			return nil, err
		}
		r := byStaff[staff]
		if r == nil { // every customer of this member was left out before a task
			r = &StaffReportRow{Staff: staff}
			byStaff[staff] = r
			out = append(out, r)
		}
		r.Customers += n
		switch status {
		case CustomerSent:
			r.Sent += n
		case CustomerNotFriend, CustomerRemoved:
			r.NotFriend += n
		case CustomerOverQuota:
			r.OverQuota += n
		case CustomerUnsent:
			r.Unsent += n
		}
	}
	if err := crows.Err(); err != nil {
		return nil, err
	}
	res := make([]StaffReportRow, len(out))
	for i, r := range out {
		res[i] = *r
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Staff < res[j].Staff })
	return res, nil
}
