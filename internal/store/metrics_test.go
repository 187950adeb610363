package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkMetrics is one /metrics scrape's reads on a store with a year of
// runs: 10,000 runs of 10 steps (100,000 step entries and cohorts), 50
// still running.
func BenchmarkMetrics(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "huabu.db"))
	require.NoError(b, err)
	defer s.Close()
	tx, err := s.w.BeginTx(ctx, nil)
	require.NoError(b, err)
	for r := 1; r <= 10000; r++ {
		state := RunCompleted
		if r > 9950 {
			state = RunRunning
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO runs (id, workflow_id, canvas_id, plan_hash, trigger, state, started_at, finished_at, entered) VALUES (?, ?, ?, 'h', 'schedule', ?, 0, ?, 1000)`,
			r, fmt.Sprintf("wf-%d", r), fmt.Sprintf("canvas-%d", r%20), state, r)
		require.NoError(b, err)
		for st := 0; st < 10; st++ {
			res, err := tx.ExecContext(ctx, `INSERT INTO cohorts (key, run_id, step_id, size, wake_at, created_at) VALUES (?, ?, ?, 1000, ?, 0)`,
				fmt.Sprintf("%d/%d", r, st), r, fmt.Sprintf("step-%d", st), 4102444800000*int64(st%2))
			require.NoError(b, err)
			id, _ := res.LastInsertId()
			_, err = tx.ExecContext(ctx, `INSERT INTO step_entries (run_id, step_id, visit, cohort_id, count) VALUES (?, ?, 0, ?, 1000)`, r, fmt.Sprintf("step-%d", st), id)
			require.NoError(b, err)
		}
	}
	require.NoError(b, tx.Commit())
	// The first scrape after a start reads every ended run once.
	var cur FinishedCursor
	for {
		snap, err := s.Metrics(ctx, cur)
		require.NoError(b, err)
		if snap.Cursor == cur {
			break
		}
		cur = snap.Cursor
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap, err := s.Metrics(ctx, cur)
		require.NoError(b, err)
		require.Len(b, snap.RunningEntries, 200)
		require.Empty(b, snap.FinishedEntries)
	}
}
