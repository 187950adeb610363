package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSettleAndClaim: a page's settle and the next page's claim in one
// transaction (ADR 046) do what SettleDeliveries then ClaimDeliveries do —
// the settle changes only the rows its attempt holds, the claim judges rows
// an earlier attempt left — and the counters agree with the rows. When the
// claim fails, the settle is not committed either.
func TestSettleAndClaim(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		key := LedgerKey{RunID: 1, StepID: "push"}
		page0, page1 := []int64{1, 2, 3, 4}, []int64{5, 6, 7, 8}
		c0, err := s.ClaimDeliveries(ctx, key, "push", "a1/0", page0, nil)
		require.NoError(t, err)
		require.Equal(t, page0, c0.Mine)
		// An earlier attempt claimed uid 8 and died: the claim reports it
		// unknown and does not hand it out again.
		_, err = s.ClaimDeliveries(ctx, key, "push", "a0/1", []int64{8}, nil)
		require.NoError(t, err)

		settle := []Settlement{
			{UID: 1, State: DeliverySent, ProviderRef: "m1"},
			{UID: 2, State: DeliverySent, ProviderRef: "m1"},
			{UID: 3, State: DeliveryFailed, Reason: "invalid_address"},
			{UID: 4, State: DeliverySuppressed, Reason: "unsubscribed"},
			{UID: 8, State: DeliverySent, ProviderRef: "m1"}, // not a1/0's row: unchanged
		}
		c1, err := s.SettleAndClaim(ctx, key, "a1/0", settle, "push", "a1/1", page1, nil)
		require.NoError(t, err)
		require.Equal(t, []int64{5, 6, 7}, c1.Mine)
		require.Equal(t, map[int64]string{8: DeliveryUnknown}, c1.Done)

		states := map[int64]string{}
		rows, err := s.r.QueryContext(ctx, `SELECT uid, state FROM deliveries WHERE run_id = 1 ORDER BY uid`)
		require.NoError(t, err)
		for rows.Next() {
			var u int64
			var st string
			require.NoError(t, rows.Scan(&u, &st))
			states[u] = st
		}
		require.NoError(t, rows.Close())
		require.Equal(t, map[int64]string{
			1: DeliverySent, 2: DeliverySent, 3: DeliveryFailed, 4: DeliverySuppressed,
			5: DeliveryPending, 6: DeliveryPending, 7: DeliveryPending, 8: DeliveryUnknown,
		}, states)

		// Run twice (a retried attempt): nothing changes twice.
		again, err := s.SettleAndClaim(ctx, key, "a1/0", settle, "push", "a1/1", page1, nil)
		require.NoError(t, err)
		require.Equal(t, []int64{5, 6, 7}, again.Mine)

		counts, _, err := s.Counts(ctx, "", 1)
		require.NoError(t, err)
		require.NoError(t, s.RecountRun(ctx, 1))
		recounted, _, err := s.Counts(ctx, "", 1)
		require.NoError(t, err)
		require.Equal(t, recounted, counts, "maintained counters differ from the rows")
		require.Equal(t, int64(2), counts["push"].Sent)
		require.Equal(t, int64(3), counts["push"].Pending)
		require.Equal(t, int64(1), counts["push"].Unknown)

		// A claim that fails rolls the settle back with it (SQLite: a
		// trigger refuses the next page's insert).
		if s.pg {
			return
		}
		_, err = s.w.ExecContext(ctx, `CREATE TRIGGER refuse_uid_10 BEFORE INSERT ON deliveries WHEN NEW.uid = 10 BEGIN SELECT RAISE(ABORT, 'refused'); END`)
		require.NoError(t, err)
		_, err = s.SettleAndClaim(ctx, key, "a1/1", []Settlement{{UID: 5, State: DeliverySent}}, "push", "a1/2", []int64{9, 10}, nil)
		require.ErrorContains(t, err, "refused")
		var st string
		require.NoError(t, s.r.QueryRowContext(ctx, `SELECT state FROM deliveries WHERE run_id = 1 AND uid = 5`).Scan(&st))
		require.Equal(t, DeliveryPending, st, "the settle rolled back with the claim")
		var n int
		require.NoError(t, s.r.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE run_id = 1 AND uid = 9`).Scan(&n))
		require.Zero(t, n)
	})
}
