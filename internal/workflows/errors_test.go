package workflows

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
)

// TestPermanentErrorIsNotRetried: the WeCom directory sync against an
// address that answers 404 (a wrong base_url) fails on its first attempt
// with a non-retryable error, instead of Temporal trying it again and again.
func TestPermanentErrorIsNotRetried(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	h := newHarnessWith(t, fmt.Sprintf(`channels:
  wecom: {corp_id: ww-corp, agent_id: 1000002, secret: secret, base_url: "%s"}
`, srv.URL))
	env := h.newEnv()
	var attempts int
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) { attempts++ })
	env.ExecuteWorkflow(SyncDirectory)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "%v", err)
	require.True(t, app.NonRetryable(), "a permanent error must not be retried: %v", err)
	require.Equal(t, "permanent", app.Type())
	require.Contains(t, app.Error(), "404")
	require.Equal(t, 1, attempts, "activity attempts")
	require.Equal(t, int64(1), calls.Load(), "calls to the provider")
}

// TestRateLimitedPushesArePacedInTheActivity: 1,000 personalised messages
// (a provider call each) go out within one Send attempt however the provider
// throttles them, paced by what it says, instead of the page failing over
// to Temporal's backoff: one call in five answered "rate limited, the window
// resets in 1 s" (the issue's case); JPush's own quota per window, read from
// X-Rate-Limit-Remaining and -Reset so that calls stop before they are
// refused; and WeCom's per-minute limit (45009), which lasts until the next
// minute (the channels' clock is set 1.5 s before one). Each takes seconds.
func TestRateLimitedPushesArePacedInTheActivity(t *testing.T) {
	const users = 1000
	jpush := func(setup func(*fakes.JPush)) func(t *testing.T) (*harness, *fakes.Ledger, func() int) {
		return func(t *testing.T) (*harness, *fakes.Ledger, func() int) {
			fake := fakes.NewJPush("app", "secret")
			t.Cleanup(fake.Close)
			fake.KeepRequests = false
			setup(fake)
			h := newHarnessWith(t, fmt.Sprintf(`channels:
  push: {provider: jpush, base_url: "%s", app_key: app, master_secret: secret}
`, fake.URL()))
			h.profiles(users, func(i int) map[string]any {
				return map[string]any{"push_alias": fmt.Sprintf("alias%04d", i), "name": fmt.Sprintf("用户%d", i)}
			})
			return h, &fake.Ledger, func() int { return fake.Injected()[fakes.RateLimit] + fake.Refused() }
		}
	}
	tests := []struct {
		name    string
		channel string
		setup   func(t *testing.T) (*harness, *fakes.Ledger, func() int)
		limited func(n int) bool // how many calls were refused
	}{
		{"jpush, 20% rate limited", "push", jpush(func(f *fakes.JPush) { f.Random(3, 0.2, fakes.RateLimit) }),
			func(n int) bool { return n > users/10 }},
		{"jpush, 300 pushes a second", "push", jpush(func(f *fakes.JPush) { f.Limit, f.Window = 300, time.Second }),
			func(n int) bool { return n < users/10 }}, // stopped at the window, not hammering it (unpaced: 1,200)
		{"wecom.app, 45009 per minute", "wecom.app", func(t *testing.T) (*harness, *fakes.Ledger, func() int) {
			fake := fakes.NewWeCom("ww-corp", "secret", "1000002")
			t.Cleanup(fake.Close)
			fake.KeepRequests = false
			// The channels' clock stands at 09:00:59 until the fake has
			// answered both scripted 45009s, then runs in real time: each
			// refusal falls in the same minute whatever the machine's load
			// (a clock that ran from the first send lost that minute to a
			// slow setup on a busy CI machine), so the pacing waits ~1.5 s
			// for the next minute, never a whole one.
			var mu sync.Mutex
			var began time.Time
			clock := func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				if began.IsZero() && fake.Injected()[fakes.RateLimit] == 2 {
					began = time.Now()
				}
				minute := time.Date(2026, 3, 1, 9, 0, 59, 0, time.UTC)
				if began.IsZero() {
					return minute
				}
				return minute.Add(time.Since(began))
			}
			fake.Script(fakes.RateLimit, fakes.None, fakes.RateLimit)
			h := newHarnessWithDeps(t, fmt.Sprintf(`channels:
  wecom: {corp_id: ww-corp, agent_id: 1000002, secret: secret, base_url: "%s", member_per_minute: 0, member_per_hour: 0}
`, fake.URL()), func(d *channels.Deps) { d.Now = clock })
			h.profiles(users, func(i int) map[string]any {
				return map[string]any{"wecom_userid": fmt.Sprintf("staff%04d", i), "name": fmt.Sprintf("员工%d", i)}
			})
			return h, &fake.Ledger, func() int { return fake.Injected()[fakes.RateLimit] }
		}, func(n int) bool { return n == 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, delivered, limited := tc.setup(t)
			plan := h.deploy(fmt.Sprintf(`
id: personal
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: %s, to: user, text: "{{ .user.name }}，您的会员日礼包已到账"}
`, tc.channel))
			env := h.newEnv()
			sendAttempts := map[int32]int{}
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				if info.ActivityType.Name == "Send" {
					sendAttempts[info.Attempt]++
				}
			})
			start := time.Now()
			env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
			took := time.Since(start)
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var res RunResult
			require.NoError(t, env.GetWorkflowResult(&res))
			require.Equal(t, int64(users), res.Stats.Sent)
			require.Len(t, delivered.Delivered(), users)
			require.Empty(t, delivered.Duplicates())
			require.True(t, tc.limited(limited()), "%d calls answered rate limited", limited())
			require.Equal(t, map[int32]int{1: 1}, sendAttempts, "one Send activity, never retried by Temporal")
			t.Logf("%d messages, %d calls answered rate limited: %s", users, limited(), took.Round(10*time.Millisecond))
			require.Less(t, took, time.Minute, "seconds, not minutes")
		})
	}
}
