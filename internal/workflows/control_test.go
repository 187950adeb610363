package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/store"
)

// scriptedControls is the store's canvas controls with a scripted state:
// paused for the first look, resumed after that at resumedAt.
type scriptedControls struct {
	*store.SQLite
	resumedAt time.Time
	decided   func(expired bool)

	mu    sync.Mutex
	looks int
}

func (c *scriptedControls) ControlOf(context.Context, string) (store.CanvasControl, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.looks++
	if c.looks == 1 {
		return store.CanvasControl{State: store.CanvasPaused, Since: c.resumedAt.Add(-3 * time.Hour)}, nil
	}
	return store.CanvasControl{State: store.CanvasActive, Since: c.resumedAt}, nil
}

func (c *scriptedControls) DecideHeldSend(ctx context.Context, key string, expired bool) error {
	if err := c.SQLite.DecideHeldSend(ctx, key, expired); err != nil {
		return err
	}
	c.decided(expired)
	return nil
}

// settleFailsOnce is the store with SettleDeliveries failing once when
// armed: the attempt dies after deciding, before its pages are settled.
type settleFailsOnce struct {
	activities.Store
	mu    sync.Mutex
	armed bool
}

func (s *settleFailsOnce) arm() {
	s.mu.Lock()
	s.armed = true
	s.mu.Unlock()
}

func (s *settleFailsOnce) SettleDeliveries(ctx context.Context, key store.LedgerKey, batch string, settlements []store.Settlement) error {
	s.mu.Lock()
	fail := s.armed
	s.armed = false
	s.mu.Unlock()
	if fail {
		return errors.New("injected: the store went away while settling")
	}
	return s.Store.SettleDeliveries(ctx, key, batch, settlements)
}

// TestExpiredSendStaysExpiredOnRetry: a send held by a pause and resumed
// past resume_grace decides not to send (reason expired); when that attempt
// then fails before settling, the retry must not send either — the verdict
// is in the store, not only in the failed attempt's memory.
func TestExpiredSendStaysExpiredOnRetry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resumed time.Duration // resume time after the hold began
		expired bool
	}{
		{"resumed past the grace", 2 * time.Hour, true},
		{"resumed within the grace", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			activities.PauseRecheck = 10 * time.Millisecond
			t.Cleanup(func() { activities.PauseRecheck = 5 * time.Second })
			h := newHarness(t)
			h.profiles(1500, func(int) map[string]any { return nil })
			plan := h.deploy(`id: late
trigger: {manual: {}}
steps:
  - {id: hello, push: {channel: outbox, text: "hi"}}
`)
			failing := &settleFailsOnce{Store: h.store}
			h.acts.Store = failing
			var decisions []bool
			h.acts.Controls = &scriptedControls{SQLite: h.store, resumedAt: time.Now().Add(tc.resumed),
				decided: func(expired bool) { decisions = append(decisions, expired); failing.arm() }}
			h.acts.ResumeGrace = time.Hour

			res := h.run(plan)

			require.Equal(t, []bool{tc.expired}, decisions, "one decision, by the attempt after the resume")
			c := h.counts("late", res.RunID)["hello"]
			if tc.expired {
				require.Empty(t, h.outbox("late"), "nothing sent, by the failed attempt or its retry")
				require.Zero(t, c.Sent)
				require.Positive(t, c.Suppressed[activities.ReasonExpired], "the retry holds the pages the failed attempt left back too")
			} else {
				require.Len(t, h.outbox("late"), 1500)
			}
			// The page whose settling failed is unknown to the ledger (it
			// cannot tell what the attempt did); every user is accounted for.
			require.Equal(t, int64(1500), c.Sent+c.Suppressed[activities.ReasonExpired]+c.Unknown)
		})
	}
}
