package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two workers (two handles on one store file) book WeCom send slots for the
// same member at once: together they get no more than the member's limit
// a minute, the next slots are a minute on, and a released slot is free again.
func TestSendSlotsAreSharedByWorkers(t *testing.T) {
	ctx := context.Background()
	eachClockedPair(t, func(t *testing.T, a, b *SQLite, now *time.Time) {
		var booked, failed atomic.Int64
		var wg sync.WaitGroup
		for i := range 8 {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					_, ok, err := st.ReserveSlot(ctx, "wecom.app/ww1/1000002/zhangsan", *now, 0, 30, 1000)
					if err != nil {
						failed.Add(1)
						return
					}
					if ok {
						booked.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		require.Zero(t, failed.Load(), "ReserveSlot failed")
		require.Equal(t, int64(30), booked.Load(), "80 tries, 30 a minute")

		at, ok, err := a.ReserveSlot(ctx, "wecom.app/ww1/1000002/zhangsan", *now, 2*time.Minute, 30, 1000)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, now.Add(time.Minute), at, "the 31st slot is a minute after the first")
		require.NoError(t, b.ReleaseSlot(ctx, "wecom.app/ww1/1000002/zhangsan", at))
		again, ok, err := b.ReserveSlot(ctx, "wecom.app/ww1/1000002/zhangsan", *now, 2*time.Minute, 30, 1000)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, at, again, "the released slot is booked again")
		_, ok, err = a.ReserveSlot(ctx, "wecom.app/ww1/1000002/lisi", *now, 0, 30, 1000)
		require.NoError(t, err)
		require.True(t, ok, "another member has their own limit")
	})
}
