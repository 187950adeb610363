package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two handles on one store file stand for two processes: each has its own
// connections, and SQLite's file locks arbitrate between them.
// eachClockedPair runs test with two handles on one store (two workers),
// both on the clock *now, on SQLite (one file) and PostgreSQL (one schema).
func eachClockedPair(t *testing.T, test func(t *testing.T, a, b *SQLite, now *time.Time)) {
	t.Helper()
	eachStorePair(t, func(t *testing.T, a, b *SQLite) {
		now := time.UnixMilli(1_800_000_000_000)
		clock := func() time.Time { return now }
		a.SetClock(clock)
		b.SetClock(clock)
		test(t, a, b, &now)
	})
}

func TestLeaseChangesHandsOnlyWhenExpiredOrReleased(t *testing.T) {
	ctx := context.Background()
	eachClockedPair(t, func(t *testing.T, a, b *SQLite, now *time.Time) {
		const ttl = 10 * time.Second

		l, ok, err := a.AcquireLease(ctx, "router", "A", ttl)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(1), l.Term)

		l, ok, err = b.AcquireLease(ctx, "router", "B", ttl)
		require.NoError(t, err)
		require.False(t, ok, "held by A")
		require.Equal(t, "A", l.Holder)

		*now = now.Add(9 * time.Second)
		ok, err = a.RenewLease(ctx, "router", "A", 1, ttl)
		require.NoError(t, err)
		require.True(t, ok)
		*now = now.Add(9 * time.Second) // 18 s after the first take: renewed, so still A's
		_, ok, err = b.AcquireLease(ctx, "router", "B", ttl)
		require.NoError(t, err)
		require.False(t, ok)
		l, ok, err = a.AcquireLease(ctx, "router", "A", ttl)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(1), l.Term, "taking a lease one holds renews it in the same term")

		*now = now.Add(ttl + time.Millisecond) // A died: nobody renewed
		l, ok, err = b.AcquireLease(ctx, "router", "B", ttl)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(2), l.Term)
		ok, err = a.RenewLease(ctx, "router", "A", 1, ttl)
		require.NoError(t, err)
		require.False(t, ok, "A's holding is over: it must stop")

		require.NoError(t, b.ReleaseLease(ctx, "router", "B", 2))
		l, ok, err = a.AcquireLease(ctx, "router", "A", ttl)
		require.NoError(t, err)
		require.True(t, ok, "a released lease is free at once")
		require.Equal(t, int64(3), l.Term)
		require.NoError(t, b.ReleaseLease(ctx, "router", "B", 2), "releasing a holding that is over changes nothing")
		got, found, err := b.LeaseOf(ctx, "router")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "A", got.Holder)
		require.Equal(t, now.Add(ttl).UnixMilli(), got.ExpiresAt.UnixMilli())
	})
}

func TestLeaseHasOneHolderUnderContention(t *testing.T) {
	ctx := context.Background()
	eachClockedPair(t, func(t *testing.T, a, b *SQLite, now *time.Time) {
		const ttl = 10 * time.Second
		for round := range 20 {
			*now = now.Add(ttl + time.Second) // whoever held it is gone
			var mu sync.Mutex
			winners := 0
			var errs []error
			var wg sync.WaitGroup
			for i := range 8 {
				st := a
				if i%2 == 1 {
					st = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, ok, err := st.AcquireLease(ctx, "router", string(rune('a'+i)), ttl)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					} else if ok {
						winners++
					}
				}()
			}
			wg.Wait()
			require.Empty(t, errs)
			require.Equal(t, 1, winners, "round %d", round)
			l, _, err := a.LeaseOf(ctx, "router")
			require.NoError(t, err)
			require.Equal(t, int64(round+1), l.Term)
		}
	})
}
