package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
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

// MembersAmong returns which of uids (sorted ascending) are members of a
// cohort: one query over the pages whose uid ranges span them, each page
// decoded once — the router asks this for a page of events at a time,
// where InCohort per event decoded a page per event.
func (s *SQLite) MembersAmong(ctx context.Context, cohortID int64, uids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT min_uid, max_uid, members FROM cohort_pages WHERE cohort_id = ? AND max_uid >= ? AND min_uid <= ? ORDER BY max_uid`,
		cohortID, uids[0], uids[len(uids)-1])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var lo, hi int64
		var blob []byte
		if err := rows.Scan(&lo, &hi, &blob); err != nil {
			return nil, err
		}
		// The uids this page's range could hold (ranges need not be disjoint).
		i, _ := slices.BinarySearch(uids, lo)
		j, found := slices.BinarySearch(uids, hi)
		if found {
			j++
		}
		if i >= j {
			continue
		}
		members, err := UnpackMembers(blob)
		if err != nil {
			return nil, err
		}
		on := make(map[int64]bool, len(members))
		for _, m := range members {
			on[m] = true
		}
		for _, u := range uids[i:j] {
			if on[u] {
				out[u] = true
			}
		}
	}
	return out, rows.Err()
}

// RecordArrivals records users who sent the awaited event, while the cohort
// still waits (a resolved wait takes no more arrivals). It returns how many
// are new. It and EndWait are write transactions (on PostgreSQL under the
// write lock): an arrival either commits before the wait ends, and the
// final collection finds it, or sees the wait gone — never checks the wait,
// then commits after the collection read the arrivals (another worker
// collects; that user would be in neither child).
func (s *SQLite) RecordArrivals(ctx context.Context, cohortID int64, uids []int64, at time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO arrivals (cohort_id, uid, at) SELECT ?, value, ? FROM json_each(?)
		WHERE EXISTS (SELECT 1 FROM waits WHERE cohort_id = ?)`, cohortID, at.UnixMilli(), idList(uids), cohortID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// ChildCohort creates (or finds) a child of a waiting cohort by a key
// suffix: "arrived3" for the third collection of arrivals, "timeout" for
// the members who never arrived. Keys are deterministic so a retried
// collection writes into the child its first attempt created.
func (s *SQLite) ChildCohort(ctx context.Context, waiting Cohort, suffix string) (Cohort, error) {
	key := fmt.Sprintf("%d/%s/%d/%s", waiting.RunID, waiting.StepID, waiting.ID, suffix)
	_, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO cohorts (key, run_id, step_id, parent_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		key, waiting.RunID, waiting.StepID, waiting.ID, s.now().UnixMilli())
	if err != nil {
		return Cohort{}, err
	}
	return s.cohortWhere(ctx, s.w, `key = ?`, key)
}

// EndWait stops a cohort's wait: no arrival is recorded for it after this.
func (s *SQLite) EndWait(ctx context.Context, cohortID int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM waits WHERE cohort_id = ?`, cohortID)
		return err
	})
}

// CollectArrivalsPage moves up to one page of a waiting cohort's
// uncollected arrivals into the next page of child, in one transaction,
// and says how many it moved. It goes on in uid order from the child's
// last member, so the child's pages hold increasing, disjoint uid ranges
// as every cohort's do; an arrival recorded meanwhile below that point is
// left for the next collection. Called until it moves less than a page,
// it collects everything, in bounded memory, and a retry resumes where
// the last call committed.
func (s *SQLite) CollectArrivalsPage(ctx context.Context, waitingID, childID int64) (int, error) {
	moved := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var next, after int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(page) + 1, 0), coalesce(max(max_uid), -1) FROM cohort_pages WHERE cohort_id = ?`, childID).Scan(&next, &after); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM arrivals WHERE cohort_id = ? AND uid > ? AND collected = 0 ORDER BY uid LIMIT ?`, waitingID, after, PageSize)
		if err != nil {
			return err
		}
		uids, err := scanInt64s(rows)
		if err != nil || len(uids) == 0 {
			return err
		}
		if err := writePages(ctx, tx, childID, []Page{{No: next, Members: uids}}); err != nil {
			return err
		}
		moved = len(uids)
		_, err = tx.ExecContext(ctx, `UPDATE arrivals SET collected = ? WHERE cohort_id = ? AND uid`+inIDs, childID, waitingID, idList(uids))
		return err
	})
	return moved, err
}

// WriteRemainderPages writes, for the waiting cohort's pages numbered in
// [from, to), its members who never arrived into child under the same page
// numbers (an empty page deletes the child's page). Rewriting is
// idempotent, so a retry may redo any range. Arrived means collected into
// an arrived child: an arrival no collection took (none should be left
// once the wait ended) times out rather than leaving its user in neither.
func (s *SQLite) WriteRemainderPages(ctx context.Context, waitingID, childID, from, to int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT page, min_uid, max_uid, members FROM cohort_pages WHERE cohort_id = ? AND page >= ? AND page < ? ORDER BY page`, waitingID, from, to)
		if err != nil {
			return err
		}
		type stored struct {
			no, lo, hi int64
			blob       []byte
		}
		var pages []stored
		for rows.Next() {
			var p stored
			if err := rows.Scan(&p.no, &p.lo, &p.hi, &p.blob); err != nil {
				rows.Close()
				return err
			}
			pages = append(pages, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		out := make([]Page, 0, len(pages))
		for _, p := range pages {
			members, err := UnpackMembers(p.blob)
			if err != nil {
				return err
			}
			arows, err := tx.QueryContext(ctx, `SELECT uid FROM arrivals WHERE cohort_id = ? AND uid >= ? AND uid <= ? AND collected != 0`, waitingID, p.lo, p.hi)
			if err != nil {
				return err
			}
			arrivedList, err := scanInt64s(arows)
			if err != nil {
				return err
			}
			kept := members
			if len(arrivedList) > 0 {
				arrived := make(map[int64]bool, len(arrivedList))
				for _, u := range arrivedList {
					arrived[u] = true
				}
				kept = members[:0]
				for _, m := range members {
					if !arrived[m] {
						kept = append(kept, m)
					}
				}
			}
			out = append(out, Page{No: p.no, Members: kept})
		}
		return writePages(ctx, tx, childID, out)
	})
}

func scanInt64s(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func sealIn(ctx context.Context, tx *sql.Tx, cohortID, span int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE cohorts SET size = (SELECT coalesce(sum(n), 0) FROM cohort_pages WHERE cohort_id = ?),
		page_span = max(?, (SELECT coalesce(max(page) + 1, 0) FROM cohort_pages WHERE cohort_id = ?)), sealed = 1 WHERE id = ?`, cohortID, span, cohortID, cohortID)
	return err
}
