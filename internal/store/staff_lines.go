package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// StaffTaskLine is one customer a staff member still has to reach in a
// task that is open (before its deadline) or overdue (not done after it),
// or the task itself when it names no customer (a staff brief).
type StaffTaskLine struct {
	RunID       int64
	StepID      string
	Cohort      int64 // the step execution's cohort (StaffTaskKey.Cohort)
	Staff       string
	Part        int
	Name, Grid  string
	Kind        string // customers | staff
	Live        string // open | not_done (overdue)
	UID         int64  // 0 for a task without customers
	UserID      string
	ExternalID  string
	CreatedAt   time.Time
	Deadline    time.Time
	NotifiedAt  time.Time
	Reminders   []time.Time // reminders sent to the staff member
	EscalatedAt time.Time   // when the grid leader was told, if they were
}

// StaffFollowUps is what a canvas's staff tasks sent on their own: reminders
// to staff members and escalations to grid leaders.
type StaffFollowUps struct {
	Reminders, Escalations int64
}

// staffCursor is where a page of StaffTaskLines ends.
type staffCursor struct {
	Run   int64  `json:"r"`
	Step  string `json:"s"`
	Coh   int64  `json:"c"`
	Staff string `json:"st"`
	Part  int    `json:"p"`
	UID   int64  `json:"u"`
}

// StaffTaskLines lists, a page of at most limit at a time, the customers
// staff members still have to reach in a canvas's open and overdue tasks
// (runID 0: every run), in (run, step, cohort, staff, part, customer) order by
// keyset, so a page reads only its rows. after is the cursor of the
// previous page ("" the first); the cursor returned is "" at the end.
func (s *SQLite) StaffTaskLines(ctx context.Context, canvasID string, runID int64, after string, limit int) ([]StaffTaskLine, string, error) {
	if limit <= 0 {
		limit = 50
	}
	var cur staffCursor
	if after != "" {
		raw, err := base64.RawURLEncoding.DecodeString(after)
		if err != nil || json.Unmarshal(raw, &cur) != nil {
			return nil, "", fmt.Errorf("%w: bad cursor %q", ErrBadCursor, after)
		}
	}
	args := []any{s.now().UnixMilli(), canvasID, runID, runID, after != "", cur.Run, cur.Step, cur.Coh, cur.Staff, cur.Part, cur.UID, limit + 1}
	rows, err := s.r.QueryContext(ctx, `SELECT t.run_id, t.step_id, t.cohort, t.staff, t.part, t.name, t.grid, t.kind, t.live, coalesce(c.uid, 0), coalesce(c.external_userid, ''),
			t.created_at, t.deadline, t.notified_at, t.reminders, t.escalated_at
		FROM (SELECT *, `+liveResult+` AS live FROM staff_tasks WHERE canvas_id = ? AND (? = 0 OR run_id = ?)) AS t
		LEFT JOIN staff_task_customers c ON t.kind = 'customers' AND c.run_id = t.run_id AND c.step_id = t.step_id AND c.cohort = t.cohort AND c.staff = t.staff AND c.part = t.part
			AND c.status IN ('assigned', 'unsent')
		WHERE t.live IN ('open', 'not_done')
			AND (? = 0 OR (t.run_id, t.step_id, t.cohort, t.staff, t.part, coalesce(c.uid, 0)) > (?, ?, ?, ?, ?, ?))
		ORDER BY t.run_id, t.step_id, t.cohort, t.staff, t.part, coalesce(c.uid, 0) LIMIT ?`, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []StaffTaskLine
	for rows.Next() {
		var l StaffTaskLine
		var created, deadline, notified, escalated int64
		var reminders string
		if err := rows.Scan(&l.RunID, &l.StepID, &l.Cohort, &l.Staff, &l.Part, &l.Name, &l.Grid, &l.Kind, &l.Live, &l.UID, &l.ExternalID,
			&created, &deadline, &notified, &reminders, &escalated); err != nil {
			return nil, "", err
		}
		l.CreatedAt, l.Deadline, l.NotifiedAt, l.EscalatedAt = fromMS(created), fromMS(deadline), fromMS(notified), fromMS(escalated)
		var at []int64
		_ = json.Unmarshal([]byte(reminders), &at)
		for _, ms := range at {
			l.Reminders = append(l.Reminders, time.UnixMilli(ms))
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	rows.Close()
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		b, _ := json.Marshal(staffCursor{last.RunID, last.StepID, last.Cohort, last.Staff, last.Part, last.UID})
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	var uids []int64
	for _, l := range out {
		if l.UID != 0 {
			uids = append(uids, l.UID)
		}
	}
	if len(uids) > 0 {
		ids := map[int64]string{}
		prow, err := s.r.QueryContext(ctx, `SELECT uid, id FROM profiles WHERE uid`+inIDs, idList(uids))
		if err != nil {
			return nil, "", err
		}
		defer prow.Close()
		for prow.Next() {
			var u int64
			var id string
			if err := prow.Scan(&u, &id); err != nil {
				return nil, "", err
			}
			ids[u] = id
		}
		if err := prow.Err(); err != nil {
			return nil, "", err
		}
		for i := range out {
			out[i].UserID = ids[out[i].UID]
		}
	}
	return out, next, nil
}

// StaffFollowUpsOf counts the reminders and escalations a canvas's staff
// tasks sent (runID 0: every run): one row per task, not per customer.
func (s *SQLite) StaffFollowUpsOf(ctx context.Context, canvasID string, runID int64) (StaffFollowUps, error) {
	var out StaffFollowUps
	rows, err := s.r.QueryContext(ctx, `SELECT reminders, escalated_at FROM staff_tasks WHERE canvas_id = ? AND (? = 0 OR run_id = ?)`, canvasID, runID, runID)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var reminders string
		var escalated int64
		if err := rows.Scan(&reminders, &escalated); err != nil {
			return out, err
		}
		var at []int64
		_ = json.Unmarshal([]byte(reminders), &at)
		out.Reminders += int64(len(at))
		if escalated > 0 {
			out.Escalations++
		}
	}
	return out, rows.Err()
}
