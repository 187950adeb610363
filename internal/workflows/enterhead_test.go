package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudienceEntersInTwoParts: an audience run enters the first chunk of
// profiles (EnterHead) and starts its first step on them while the rest is
// scanned (EnterRest). Every matching user enters once and gets each push
// once, whichever part entered them, with either part's activity failing
// before it ran, losing its completion after it ran, or retried from a stale
// heartbeat.
func TestAudienceEntersInTwoParts(t *testing.T) {
	const users = 9000 // the head is the first 4,000 profiles
	for _, tc := range []struct {
		target string
		mode   fault
	}{
		{"", ""},
		{"BeginRun", failBefore},
		{"BeginRun", loseCompletion},
		{"EnterHead", failBefore},
		{"EnterHead", loseCompletion},
		{"EnterRest", failBefore},
		{"EnterRest", loseCompletion},
		{"EnterRest", staleHeartbeat},
	} {
		t.Run(tc.target+" "+string(tc.mode), func(t *testing.T) {
			h := newHarness(t)
			h.profiles(users, func(i int) map[string]any {
				if i%3 == 0 {
					return map[string]any{}
				}
				return map[string]any{"city": "杭州"}
			})
			plan := h.deploy(`
id: two-parts
trigger: {manual: {}}
audience: 'user.city != ""'
steps:
  - id: hello
    push: {channel: outbox, text: 你好}
  - id: later
    wait: {duration: 1h}
  - id: again
    push: {channel: outbox, text: 再见}
`)
			if tc.target != "" {
				h.faults = newFaultInjector(tc.target, tc.mode)
			}
			res := h.run(plan)
			if h.faults != nil {
				_, injected := h.faults.counts()
				require.Positive(t, injected[tc.target], "no fault was injected")
			}
			const matching = users * 2 / 3
			require.Equal(t, int64(matching), res.Stats.Entered)
			require.Equal(t, int64(2*matching), res.Stats.Sent)

			perUser := map[string]map[string]int{}
			for _, m := range h.outbox("two-parts") {
				if perUser[m.UserID] == nil {
					perUser[m.UserID] = map[string]int{}
				}
				perUser[m.UserID][m.StepID]++
			}
			require.Len(t, perUser, matching)
			for user, steps := range perUser {
				require.Equal(t, map[string]int{"hello": 1, "again": 1}, steps, user)
			}
			run, err := h.store.GetRun(context.Background(), res.RunID)
			require.NoError(t, err)
			require.Equal(t, int64(matching), run.Entered, "the run records both parts")
			counts := h.counts("two-parts", res.RunID)
			require.Equal(t, int64(matching), counts["hello"].Entered)
			require.Equal(t, int64(matching), counts["again"].Sent)
		})
	}
}
