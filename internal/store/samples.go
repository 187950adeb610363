package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// StepRecipient is one user who reached a step in a run, with what happened
// to them there.
type StepRecipient struct {
	UID    int64
	UserID string
	Visit  int // 0 the first time
	// Outcome is the ledger state at a step that sends (sent, failed,
	// suppressed, unknown, pending), "entered" at a step that does not.
	Outcome string
	Reason  string
	Channel string
	At      time.Time // when the ledger row was decided; zero for entered
	// Exit is the reason the user left the run at this step, if they did
	// (one by one: an exit step, an exit event, a stop).
	Exit      string
	Converted bool
}

// StepRecipients pages through the users who reached a step of a run, a
// page of at most limit at a time: the step's ledger rows (in visit, uid
// order, by the ledger's primary key) for a step that sends, else the
// members of the cohorts that entered it, page by stored page. after is
// the cursor a previous call returned ("" for the first page); the cursor
// returned is "" when nothing follows. Nothing reads more than the page.
func (s *SQLite) StepRecipients(ctx context.Context, runID int64, stepID, after string, limit int) ([]StepRecipient, string, error) {
	if limit <= 0 {
		limit = 20
	}
	var out []StepRecipient
	var next string
	var err error
	switch {
	case after == "":
		var ledger bool
		if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE run_id = ? AND step_id = ?)`, runID, stepID).Scan(&ledger); err != nil {
			return nil, "", err
		}
		if ledger {
			out, next, err = s.ledgerRecipients(ctx, runID, stepID, 0, 0, limit)
		} else {
			out, next, err = s.cohortRecipients(ctx, runID, stepID, 0, 0, 0, limit)
		}
	case after[0] == 'L':
		var visit int
		var uid int64
		if _, err := fmt.Sscanf(after, "L%d.%d", &visit, &uid); err != nil {
			return nil, "", fmt.Errorf("%w: bad cursor %q", ErrBadCursor, after)
		}
		out, next, err = s.ledgerRecipients(ctx, runID, stepID, visit, uid, limit)
	case after[0] == 'C':
		var entry, page, skip int64
		if _, err := fmt.Sscanf(after, "C%d.%d.%d", &entry, &page, &skip); err != nil {
			return nil, "", fmt.Errorf("%w: bad cursor %q", ErrBadCursor, after)
		}
		out, next, err = s.cohortRecipients(ctx, runID, stepID, entry, page, skip, limit)
	default:
		return nil, "", fmt.Errorf("%w: bad cursor %q", ErrBadCursor, after)
	}
	if err != nil {
		return nil, "", err
	}
	return out, next, s.decorateRecipients(ctx, runID, stepID, out)
}

// ErrBadCursor is a paging cursor this store did not hand out.
var ErrBadCursor = fmt.Errorf("bad cursor")

// ledgerRecipients reads ledger rows after (visit, uid) (exclusive; a first
// page starts before visit 0, uid 0).
func (s *SQLite) ledgerRecipients(ctx context.Context, runID int64, stepID string, visit int, uid int64, limit int) ([]StepRecipient, string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT visit, uid, state, reason, channel, updated_at FROM deliveries
		WHERE run_id = ? AND step_id = ? AND (visit, uid) > (?, ?) ORDER BY visit, uid LIMIT ?`, runID, stepID, visit, uid, limit+1)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []StepRecipient
	for rows.Next() {
		var r StepRecipient
		var at int64
		if err := rows.Scan(&r.Visit, &r.UID, &r.Outcome, &r.Reason, &r.Channel, &at); err != nil {
			return nil, "", err
		}
		r.At = time.UnixMilli(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, fmt.Sprintf("L%d.%d", last.Visit, last.UID), nil
}

// cohortRecipients reads members of the cohorts that entered a step (in
// visit, cohort order), from the entry-th of them, its page numbered page
// or later, skipping skip members of that page.
func (s *SQLite) cohortRecipients(ctx context.Context, runID int64, stepID string, entry, page, skip int64, limit int) ([]StepRecipient, string, error) {
	type entered struct {
		visit  int
		cohort int64
	}
	var entries []entered
	rows, err := s.r.QueryContext(ctx, `SELECT visit, cohort_id FROM step_entries WHERE run_id = ? AND step_id = ? ORDER BY visit, cohort_id`, runID, stepID)
	if err != nil {
		return nil, "", err
	}
	for rows.Next() {
		var e entered
		if err := rows.Scan(&e.visit, &e.cohort); err != nil {
			rows.Close()
			return nil, "", err
		}
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	var out []StepRecipient
	for ; entry < int64(len(entries)); entry, page, skip = entry+1, 0, 0 {
		e := entries[entry]
		for {
			var no int64
			var blob []byte
			err := s.r.QueryRowContext(ctx, `SELECT page, members FROM cohort_pages WHERE cohort_id = ? AND page >= ? ORDER BY page LIMIT 1`, e.cohort, page).Scan(&no, &blob)
			if err == sql.ErrNoRows {
				break
			}
			if err != nil {
				return nil, "", err
			}
			if no != page {
				skip = 0
			}
			members, err := UnpackMembers(blob)
			if err != nil {
				return nil, "", err
			}
			for i := skip; i < int64(len(members)); i++ {
				if len(out) == limit {
					return out, fmt.Sprintf("C%d.%d.%d", entry, no, i), nil
				}
				out = append(out, StepRecipient{UID: members[i], Visit: e.visit, Outcome: "entered"})
			}
			page, skip = no+1, 0
		}
	}
	return out, "", nil
}

// decorateRecipients adds user ids, exits at the step and conversions, by
// key for the page's users only.
func (s *SQLite) decorateRecipients(ctx context.Context, runID int64, stepID string, rs []StepRecipient) error {
	if len(rs) == 0 {
		return nil
	}
	uids := make([]int64, len(rs))
	for i, r := range rs {
		uids[i] = r.UID
	}
	ids, exits, converted := map[int64]string{}, map[int64]string{}, map[int64]bool{}
	scan := func(q string, args []any, row func(*sql.Rows) error) error {
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if err := scan(`SELECT uid, id FROM profiles WHERE uid`+inIDs, []any{idList(uids)}, func(r *sql.Rows) error {
		var u int64
		var id string
		err := r.Scan(&u, &id)
		ids[u] = id
		return err
	}); err != nil {
		return err
	}
	if err := scan(`SELECT uid, reason FROM exits WHERE run_id = ? AND step_id = ? AND uid`+inIDs, []any{runID, stepID, idList(uids)}, func(r *sql.Rows) error {
		var u int64
		var reason string
		err := r.Scan(&u, &reason)
		exits[u] = reason
		return err
	}); err != nil {
		return err
	}
	if err := scan(`SELECT uid FROM conversions WHERE run_id = ? AND uid`+inIDs, []any{runID, idList(uids)}, func(r *sql.Rows) error {
		var u int64
		err := r.Scan(&u)
		converted[u] = true
		return err
	}); err != nil {
		return err
	}
	for i := range rs {
		rs[i].UserID, rs[i].Exit, rs[i].Converted = ids[rs[i].UID], exits[rs[i].UID], converted[rs[i].UID]
	}
	return nil
}
