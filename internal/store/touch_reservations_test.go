package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two workers (two handles on one store file) send to the same users at
// once under a cap of one message a day: every user passes exactly once.
func TestCapOfOneHoldsAcrossWorkers(t *testing.T) {
	ctx := context.Background()
	eachClockedPair(t, func(t *testing.T, a, b *SQLite, now *time.Time) {
		rules := []CapRule{{Channel: "sms", Max: 1, Window: 24 * time.Hour}}
		uids := make([]int64, 1000)
		for i := range uids {
			uids[i] = int64(i + 1)
		}
		passed := map[int64]int{}
		var errs []error
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 6 {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := LedgerKey{RunID: int64(i + 1), StepID: "p"}
				capped, err := st.ReserveTouches(ctx, key, "sms", rules, uids, *now)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				for _, u := range uids {
					if !capped[u] {
						passed[u]++
					}
				}
			}()
		}
		wg.Wait()
		require.Empty(t, errs)
		require.Len(t, passed, len(uids))
		for u, n := range passed {
			require.Equal(t, 1, n, "user %d passed %d times", u, n)
		}
	})
}

// A send's reservation is its own: a retry (the same ledger key) is not
// capped by it; users it did not send to drop theirs; a fallback's channel
// is what counts.
func TestTouchReservationsBelongToTheSend(t *testing.T) {
	ctx := context.Background()
	eachClockedPair(t, func(t *testing.T, a, _ *SQLite, now *time.Time) {
		rules := []CapRule{{Channel: "push", Max: 1, Window: time.Hour}, {Channel: "any", Max: 2, Window: time.Hour}}
		first := LedgerKey{RunID: 1, StepID: "p"}
		capped, err := a.ReserveTouches(ctx, first, "push", rules, []int64{1, 2, 3}, *now)
		require.NoError(t, err)
		require.Empty(t, capped)
		capped, err = a.ReserveTouches(ctx, first, "push", rules, []int64{1, 2, 3}, *now)
		require.NoError(t, err)
		require.Empty(t, capped, "a retry of the same send keeps its reservations")

		// 1 got push, 2 got the SMS fallback, 3 got nothing.
		require.NoError(t, a.SettleTouches(ctx, first, map[int64]string{1: "push", 2: "sms"}, []int64{3}))
		got, err := a.Touches(ctx, []int64{1, 2, 3}, now.Add(-time.Hour))
		require.NoError(t, err)
		require.Equal(t, map[int64]map[string]int{1: {"push": 1}, 2: {"sms": 1}}, got)

		second := LedgerKey{RunID: 2, StepID: "p"}
		capped, err = a.ReserveTouches(ctx, second, "push", rules, []int64{1, 2, 3}, now.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, map[int64]bool{1: true}, capped, "1 had its push this hour; 2 had an SMS only; 3 nothing")
		third := LedgerKey{RunID: 3, StepID: "p"}
		capped, err = a.ReserveTouches(ctx, third, "email", rules, []int64{1, 2, 3}, now.Add(2*time.Minute))
		require.NoError(t, err)
		require.Equal(t, map[int64]bool{2: true}, capped, "2 has two messages this hour (sms, push): the any-channel cap")
	})
}
