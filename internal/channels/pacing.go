package channels

import (
	"context"
	"sync"
	"time"
)

// Gate holds a channel's calls back until the time a provider named: the
// reset of a used-up rate-limit window (JPush X-Rate-Limit-Remaining: 0,
// WeCom 45009/45033). Calls made before then would be refused too, and a
// refused call may still count against the quota. It is per process; a
// limiter shared by all workers is issue 15's.
type Gate struct {
	mu    sync.Mutex
	until time.Time
}

// gateMaxWait is the longest a call waits at the gate itself. A longer hold
// comes back to the engine as RetryLater, which waits heartbeating (a Send
// activity must heartbeat at least every minute).
const gateMaxWait = 2 * time.Second

// Hold keeps calls back until t (a later Hold wins).
func (g *Gate) Hold(t time.Time) {
	g.mu.Lock()
	if t.After(g.until) {
		g.until = t
	}
	g.mu.Unlock()
}

// Pass waits until the gate opens when that is at most gateMaxWait away and
// returns 0; otherwise it returns at once with how long is left.
func (g *Gate) Pass(ctx context.Context, now func() time.Time, sleep func(context.Context, time.Duration) error) (time.Duration, error) {
	g.mu.Lock()
	left := g.until.Sub(now())
	g.mu.Unlock()
	if left <= 0 {
		return 0, nil
	}
	if left > gateMaxWait {
		return left, nil
	}
	return 0, sleep(ctx, left)
}

// UntilNextMinute is the wait for a per-minute window to reset: WeCom counts
// API calls per minute (45009) without saying when the window ends; natural
// minutes are assumed, plus a little for clock skew.
func UntilNextMinute(now time.Time) time.Duration {
	return now.Truncate(time.Minute).Add(time.Minute + 500*time.Millisecond).Sub(now)
}
