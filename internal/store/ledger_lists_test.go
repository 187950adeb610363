package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSettleListsOfEverySize settles and keys ledger rows through lists of
// the lengths the prepared statements are cut at (ledger_lists.go: padded
// to 8, 16, … 1,024 ids, split beyond): every row named is decided once, no
// row outside the list changes, duplicates and rows of another attempt or
// state are left alone, and the counters agree with the rows.
func TestSettleListsOfEverySize(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		key := LedgerKey{RunID: 1, StepID: "push"}
		// 3,000 recipients, every third uid, in two attempts' pages: a1
		// claims the first 2,600, a2 the rest.
		var all []int64
		for i := range 3000 {
			all = append(all, int64(i*3+1))
		}
		mine, theirs := all[:2600], all[2600:]
		c1, err := s.ClaimDeliveries(ctx, key, "push", "a1", mine, nil)
		require.NoError(t, err)
		require.Len(t, c1.Mine, len(mine))
		c2, err := s.ClaimDeliveries(ctx, key, "push", "a2", theirs, nil)
		require.NoError(t, err)
		require.Len(t, c2.Mine, len(theirs))

		// Groups of a1's settle, cut at and around the list sizes; the
		// last one lists 1,100 ids (two statements) with a duplicate, ids
		// of a2's rows and ids no row has.
		sizes := []int{1, 7, 8, 9, 16, 17, 1023, 1024}
		var settle []Settlement
		want := map[int64]string{}
		at := 0
		for g, n := range sizes {
			for _, u := range mine[at : at+n] {
				settle = append(settle, Settlement{UID: u, State: DeliverySent, ProviderRef: fmt.Sprint("m", g)})
				want[u] = DeliverySent
			}
			at += n
		}
		require.Equal(t, 2105, at)
		last := mine[at : at+400] // 95 of a1's rows stay pending
		for _, u := range last {
			settle = append(settle, Settlement{UID: u, State: DeliveryFailed, Reason: "invalid_address"})
			want[u] = DeliveryFailed
		}
		settle = append(settle, Settlement{UID: last[0], State: DeliveryFailed, Reason: "invalid_address"}) // listed twice
		for _, u := range theirs[:100] {
			settle = append(settle, Settlement{UID: u, State: DeliveryFailed, Reason: "invalid_address"}) // a2's: not a1's to settle
		}
		for i := range 599 {
			settle = append(settle, Settlement{UID: int64(i*3 + 2), State: DeliveryFailed, Reason: "invalid_address"}) // no such row
		}
		require.NoError(t, s.SettleDeliveries(ctx, key, "a1", settle))
		require.NoError(t, s.SettleDeliveries(ctx, key, "a1", settle), "a retried settle changes nothing")

		// a2's keys, 400 rows under one key (one statement padded to 512),
		// then one more than its rows: refused, nothing half written.
		keys := map[int64]string{}
		for _, u := range theirs {
			keys[u] = "push:k1"
		}
		require.NoError(t, s.RecordDeliveryKeys(ctx, key, "a2", keys))
		keys[mine[len(mine)-1]] = "push:k1" // a1's row
		require.Error(t, s.RecordDeliveryKeys(ctx, key, "a2", keys))

		// A third attempt sees every row: what a1 decided, a2's and a1's
		// undecided rows as unknown (a2 recorded keys for a channel with no
		// key life here: maybe sent).
		seen, err := s.ClaimDeliveries(ctx, key, "push", "a3", all, nil)
		require.NoError(t, err)
		require.Empty(t, seen.Mine)
		for _, u := range all {
			w, ok := want[u]
			if !ok {
				w = DeliveryUnknown
			}
			require.Equal(t, w, seen.Done[u], "uid %d", u)
		}

		counts, _, err := s.Counts(ctx, "", 1)
		require.NoError(t, err)
		c := counts["push"]
		require.Equal(t, int64(2105), c.Sent)
		require.Equal(t, map[string]int64{"invalid_address": 400}, c.Failed)
		require.Equal(t, int64(95+400), c.Unknown)
		require.Zero(t, c.Pending)
		require.NoError(t, s.RecountRun(ctx, 1))
		recounted, _, err := s.Counts(ctx, "", 1)
		require.NoError(t, err)
		require.Equal(t, counts, recounted, "maintained counters differ from the rows")
	})
}
