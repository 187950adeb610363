package canvases_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
)

// TestConditionClock: now(), days_since and days_until read the compiler's
// clock, so a simulation evaluates conditions in its virtual time.
func TestConditionClock(t *testing.T) {
	virtual := time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)
	opts := exampleCompiler(t).Options()
	opts.Now = func() time.Time { return virtual }
	c, err := canvases.NewCompiler(opts)
	require.NoError(t, err)
	user := map[string]any{"trial_ends_at": "2027-03-02T10:00:00Z", "birthday": "2027-02-19"}
	for src, want := range map[string]bool{
		`user.trial_ends_at > now() && user.trial_ends_at < now() + duration("72h")`: true,
		`now().Year() == 2027`:                        true,
		`now(timezone("Asia/Shanghai")).Hour() == 18`: true,
		`days_since(user.birthday) == 10`:             true,
		`days_until(user.trial_ends_at) == 1`:         true,
		`user.trial_ends_at < now()`:                  false,
	} {
		cond, err := c.CompileCondition(src, "")
		require.NoError(t, err, src)
		got, err := cond.Eval(user, nil)
		require.NoError(t, err, src)
		require.Equal(t, want, got, src)
	}
	// Without a clock, the wall clock: a 2027 trial has not ended yet.
	wall, err := exampleCompiler(t).CompileCondition(`user.trial_ends_at > now()`, "")
	require.NoError(t, err)
	got, err := wall.Eval(map[string]any{"trial_ends_at": time.Now().Add(time.Hour).Format(time.RFC3339)}, nil)
	require.NoError(t, err)
	require.True(t, got)
}
