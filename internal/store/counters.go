package store

import (
	"context"
	"database/sql"
	"sort"
)

// Step counters (ADR 020): what `huabu report` and the console's canvas page
// show is read from step_counters, a few rows per step, instead of grouping
// the whole ledger at read time (seconds for a million-user run). Every
// write that changes a ledger row's state, adds an exit or a conversion
// writes the counter delta in the same transaction, computed from the rows
// it actually changed — so an activity retried after its first attempt
// committed changes nothing twice: the rows are already in their state, and
// the delta is zero.
//
// Kinds: a delivery state (pending, sent, failed, suppressed, unknown) by
// step, visit and reason; counterExited by step and reason (visit 0);
// counterConverted of the run (step "", visit 0). Entries and cohort exits
// are already one row per cohort (step_entries, cohort_exits) and are read
// as they are.

const (
	counterExited    = "exited"
	counterConverted = "converted"
)

// counterKey names one counter of a run.
type counterKey struct {
	step   string
	visit  int
	kind   string
	reason string
}

// counterDeltas are changes to one run's counters.
type counterDeltas map[counterKey]int64

// addCounters applies deltas to a run's counters (zero deltas skipped),
// in key order so that concurrent writers lock rows in the same order.
func addCounters(ctx context.Context, tx *sql.Tx, runID int64, d counterDeltas) error {
	keys := make([]counterKey, 0, len(d))
	for k, n := range d {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.step != b.step {
			return a.step < b.step
		}
		if a.visit != b.visit {
			return a.visit < b.visit
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.reason < b.reason
	})
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO step_counters (run_id, step_id, visit, kind, reason, n) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, step_id, visit, kind, reason) DO UPDATE SET n = step_counters.n + excluded.n`,
			runID, k.step, k.visit, k.kind, k.reason, d[k]); err != nil {
			return err
		}
	}
	return nil
}

// ledgerStates counts, by state and reason, the ledger rows of a visit among
// uids (of one attempt's batch unless batch is 0; in state onlyState unless
// it is ""): the rows an update or delete with the same filter will change.
//
// On PostgreSQL the rows are read one by one and locked (forUpdate: a GROUP
// BY cannot lock), so no concurrent ledger transaction changes them before
// the update that follows.
func (s *SQLite) ledgerStates(ctx context.Context, tx *sql.Tx, key LedgerKey, batch int64, onlyState string, uids []int64) (counterDeltas, int64, error) {
	q := `SELECT state, reason, count(*) FROM deliveries WHERE run_id = ? AND step_id = ? AND visit = ?
		AND (? = 0 OR batch = ?) AND (? = '' OR state = ?) AND ` + uidIn + ` GROUP BY state, reason`
	if s.pg {
		q = `SELECT state, reason, 1 FROM deliveries WHERE run_id = ? AND step_id = ? AND visit = ?
		AND (? = 0 OR batch = ?) AND (? = '' OR state = ?) AND ` + uidIn + s.forUpdate()
	}
	rows, err := tx.QueryContext(ctx, q, append([]any{key.RunID, key.StepID, key.Visit, batch, batch, onlyState, onlyState}, uidArgs(uids)...)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := counterDeltas{}
	var total int64
	for rows.Next() {
		var state, reason string
		var n int64
		if err := rows.Scan(&state, &reason, &n); err != nil {
			return nil, 0, err
		}
		out[counterKey{key.StepID, key.Visit, state, reason}] += n
		total += n
	}
	return out, total, rows.Err()
}

// moveLedgerCounters is the counter side of setting rows' state: the rows
// the update will touch (before) leave their state, and as many arrive in
// the new one; the moves are added to d. Call it before the update, with
// the update's filter.
func (s *SQLite) moveLedgerCounters(ctx context.Context, tx *sql.Tx, key LedgerKey, batch int64, uids []int64, state, reason string, d counterDeltas) error {
	before, n, err := s.ledgerStates(ctx, tx, key, batch, "", uids)
	if err != nil || n == 0 {
		return err
	}
	for k, m := range before {
		d[k] -= m
	}
	d[counterKey{key.StepID, key.Visit, state, reason}] += n
	return nil
}

// stepLedgerStates counts every ledger row of a step's first visit by state
// and reason (a staff step's ledger is rewritten as a whole).
func stepLedgerStates(ctx context.Context, tx *sql.Tx, runID int64, stepID string) (counterDeltas, error) {
	rows, err := tx.QueryContext(ctx, `SELECT state, reason, count(*) FROM deliveries WHERE run_id = ? AND step_id = ? AND visit = 0 GROUP BY state, reason`, runID, stepID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := counterDeltas{}
	for rows.Next() {
		var state, reason string
		var n int64
		if err := rows.Scan(&state, &reason, &n); err != nil {
			return nil, err
		}
		out[counterKey{stepID, 0, state, reason}] += n
	}
	return out, rows.Err()
}

// RecountRun rebuilds a run's counters from its rows (ledger, exits,
// conversions) — what migration 020 does for runs recorded before it.
// Tests compare the maintained counters with it; it also repairs counters
// of rows written behind the store's back (the benchmarks' bulk inserts).
func (s *SQLite) RecountRun(ctx context.Context, runID int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM step_counters WHERE run_id = ?`,
			`INSERT INTO step_counters (run_id, step_id, visit, kind, reason, n)
				SELECT run_id, step_id, visit, state, reason, count(*) FROM deliveries WHERE run_id = ? GROUP BY run_id, step_id, visit, state, reason`,
			`INSERT INTO step_counters (run_id, step_id, visit, kind, reason, n)
				SELECT run_id, step_id, 0, 'exited', reason, count(*) FROM exits WHERE run_id = ? GROUP BY run_id, step_id, reason`,
			`INSERT INTO step_counters (run_id, step_id, visit, kind, reason, n)
				SELECT run_id, '', 0, 'converted', '', count(*) FROM conversions WHERE run_id = ? GROUP BY run_id`,
		} {
			if _, err := tx.ExecContext(ctx, q, runID); err != nil {
				return err
			}
		}
		return nil
	})
}
