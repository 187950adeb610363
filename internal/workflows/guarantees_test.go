package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/store"
)

// flakyPlans fails the first reads of plans the way a busy store does.
type flakyPlans struct {
	activities.Store
	failures atomic.Int32
}

func (f *flakyPlans) Plan(ctx context.Context, hash string) ([]byte, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("database is locked (SQLITE_BUSY)")
	}
	return f.Store.Plan(ctx, hash)
}

// TestTransientPlanErrorRetries (issue 11, defect 7): a store that cannot
// answer for a moment delays a run; it does not fail it.
func TestTransientPlanErrorRetries(t *testing.T) {
	h := newHarness(t)
	h.profiles(5, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: flaky-plan
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: outbox, text: 你好}
`)
	flaky := &flakyPlans{Store: h.store}
	flaky.failures.Store(3)
	h.acts.Store = flaky
	res := h.run(plan)
	require.Equal(t, int64(5), res.Stats.Sent)
	require.Len(t, h.outbox("flaky-plan"), 5)
}

// TestMissingPlanFailsRun: a plan that is not stored fails the run at once,
// as PlanUnavailable, instead of retrying forever.
func TestMissingPlanFailsRun(t *testing.T) {
	h := newHarness(t)
	env := h.newEnv()
	env.ExecuteWorkflow(Run, RunInput{CanvasID: "gone", PlanHash: "0123456789abcdef", Trigger: "manual"})
	require.True(t, env.IsWorkflowCompleted())
	require.True(t, hasErrorType(env.GetWorkflowError(), "PlanUnavailable"), "got %v", env.GetWorkflowError())
}

// hasErrorType says whether an application error of the type is in err's chain.
func hasErrorType(err error, typ string) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.Type() == typ {
			return true
		}
		if ae != nil {
			err = ae
		}
	}
	return false
}

// arriveAt records that users sent the event a run's one open wait waits
// for, and signals the run, as the router does.
func (h *harness) arriveAt(env interface{ SignalWorkflow(string, any) }, canvas, event string, users ...string) {
	h.t.Helper()
	ctx := context.Background()
	runs, err := h.store.Runs(ctx, canvas, 1)
	require.NoError(h.t, err)
	waits, err := h.store.WaitsIn(ctx, []int64{runs[0].ID}, event)
	require.NoError(h.t, err)
	require.Len(h.t, waits, 1)
	ids, err := h.store.UIDs(ctx, users)
	require.NoError(h.t, err)
	var uids []int64
	for _, u := range users {
		uids = append(uids, ids[u])
	}
	_, err = h.store.RecordArrivals(ctx, waits[0].CohortID, uids, time.Now())
	require.NoError(h.t, err)
	env.SignalWorkflow(ArrivalsSignal, nil)
}

// TestPushInsideLoopSendsEachVisit (issue 11, defect 2): a reminder on a
// loop is sent on every visit, once per visit, and the report counts each.
func TestPushInsideLoopSendsEachVisit(t *testing.T) {
	h := newHarness(t)
	h.profiles(6, func(int) map[string]any { return map[string]any{} })
	plan := h.deploy(`
id: daily-reminder
trigger: {manual: {}}
steps:
  - id: remind
    push: {channel: outbox, text: 购物车里的商品还在等您}
  - id: wait-day
    wait: {event: purchase, timeout: 1d, on_timeout: remind}
  - id: bought
    exit: {reason: converted}
`)
	env := h.newEnv()
	// Two buy after each reminder: the loop goes round three times.
	env.RegisterDelayedCallback(func() { h.arriveAt(env, "daily-reminder", "purchase", "u000", "u001") }, time.Hour)
	env.RegisterDelayedCallback(func() { h.arriveAt(env, "daily-reminder", "purchase", "u002", "u003") }, 25*time.Hour)
	env.RegisterDelayedCallback(func() { h.arriveAt(env, "daily-reminder", "purchase", "u004", "u005") }, 49*time.Hour)
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.NoError(t, env.GetWorkflowError())
	var res RunResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, int64(6+4+2), res.Stats.Sent)

	perUser := map[string]int{}
	for _, m := range h.outbox("daily-reminder") {
		perUser[m.UserID]++
	}
	require.Equal(t, map[string]int{"u000": 1, "u001": 1, "u002": 2, "u003": 2, "u004": 3, "u005": 3}, perUser)

	c := h.counts("daily-reminder", res.RunID)
	require.Equal(t, int64(12), c["remind"].Entered)
	require.Equal(t, int64(12), c["remind"].Sent)
	require.Len(t, c["remind"].Visits, 3, "the report shows each visit")
	for i, want := range []int64{6, 4, 2} {
		v := c["remind"].Visits[i]
		require.Equal(t, i+1, v.Visit)
		require.Equal(t, want, v.Entered, "visit %d", i+1)
		require.Equal(t, want, v.Sent, "visit %d", i+1)
	}
	require.Equal(t, int64(6), c["bought"].Exited)
}

// TestCartReminderExample runs the example loop canvas: remind daily until
// the user buys, at most three times, every reminder sent on its visit and
// each visit in the report.
func TestCartReminderExample(t *testing.T) {
	h := newHarness(t)
	h.profiles(5, func(i int) map[string]any {
		if i%2 == 0 {
			return map[string]any{"name": fmt.Sprintf("用户%d", i), "push_alias": fmt.Sprintf("a%d", i)}
		}
		return map[string]any{"name": fmt.Sprintf("用户%d", i), "phone": fmt.Sprintf("1380000000%d", i)} // no app: SMS
	})
	src, err := examples.FS.ReadFile("canvases/cart-reminder.yaml")
	require.NoError(t, err)
	plan := h.deploy(string(src))
	env := h.newEnv()
	day := 24 * time.Hour
	// u000 buys before any reminder, u001 after the first, u002 after the
	// second, u003 after the third; u004 never does.
	for i, at := range []time.Duration{time.Hour, day + time.Hour, 2*day + time.Hour, 3*day + time.Hour} {
		user := fmt.Sprintf("u%03d", i)
		env.RegisterDelayedCallback(func() { h.arriveAt(env, "cart-reminder", "purchase", user) }, at)
	}
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "event",
		UserIDs: []string{"u000", "u001", "u002", "u003", "u004"}, ApplyAudience: true})
	require.NoError(t, env.GetWorkflowError())
	var res RunResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, int64(4+3+2), res.Stats.Sent)

	perUser := map[string]int{}
	for _, m := range h.outbox("cart-reminder") {
		perUser[m.UserID]++
	}
	require.Equal(t, map[string]int{"u001": 1, "u002": 2, "u003": 3, "u004": 3}, perUser, "at most three reminders, one a day")

	c := h.counts("cart-reminder", res.RunID)
	require.Equal(t, int64(4), c["bought"].Exited)
	require.Equal(t, int64(1), c["give-up"].Exited)
	rep, err := reports.Build(context.Background(), h.store, "cart-reminder", res.RunID)
	require.NoError(t, err)
	var out strings.Builder
	require.NoError(t, rep.WriteText(&out))
	for _, line := range []string{`(?m)^remind\s+9\s+9\s`, `(?m)^  visit 1\s+4\s+4\s`, `(?m)^  visit 2\s+3\s+3\s`, `(?m)^  visit 3\s+2\s+2\s`} {
		require.Regexp(t, line, out.String())
	}
	t.Logf("report:\n%s", out.String())
}

// sealFailsOnce fails the first SealCohort, as a busy store would: the
// admission has written its pages and must be retried to seal them.
type sealFailsOnce struct {
	activities.Store
	failed atomic.Bool
}

func (s *sealFailsOnce) SealCohort(ctx context.Context, cohortID, span int64) (store.Cohort, error) {
	if !s.failed.Swap(true) {
		return store.Cohort{}, errors.New("database is locked (SQLITE_BUSY)")
	}
	return s.Store.SealCohort(ctx, cohortID, span)
}

// BeginRunEntry seals inside its own transaction (runs of named users,
// ADR 044): its first call commits and then reports a failure, as a lost
// commit would, so the admission is retried over what it wrote.
func (s *sealFailsOnce) BeginRunEntry(ctx context.Context, e store.RunEntry) (store.Run, store.Cohort, error) {
	run, cohort, err := s.Store.BeginRunEntry(ctx, e)
	if err == nil && !s.failed.Swap(true) {
		return store.Run{}, store.Cohort{}, errors.New("database is locked (SQLITE_BUSY)")
	}
	return run, cohort, err
}

// TestRetriedAdmissionKeepsEveryone (issue 11, defect 1): an admission
// retried after it wrote its pages — its cohort not sealed yet, its cursor
// lost or stale — admits the same users: re-entry rules must not count the
// run's own entries, and the cohort is sealed over the pages written.
func TestRetriedAdmissionKeepsEveryone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		users int
		named bool
		mode  fault // of the first Enter attempt, besides its SealCohort failing
	}{
		{"named users, seal failed", 50, true, ""},
		{"full scan, seal failed", 5000, false, ""},
		{"full scan, seal failed, stale heartbeat", 5000, false, staleHeartbeat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.profiles(tc.users, func(int) map[string]any { return map[string]any{} })
			plan := h.deploy(`
id: once-only
trigger: {manual: {}}
entry: {reentry: never}
steps:
  - id: hello
    push: {channel: outbox, text: 欢迎}
`)
			sf := &sealFailsOnce{Store: h.store}
			h.acts.Store = sf
			if tc.mode != "" {
				h.faults = newFaultInjector("Enter", tc.mode)
			}
			env := h.newEnv()
			in := RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"}
			if tc.named {
				for i := 0; i < tc.users; i++ {
					in.UserIDs = append(in.UserIDs, fmt.Sprintf("u%03d", i))
				}
				in.ApplyAudience = true
			}
			env.ExecuteWorkflow(Run, in)
			require.NoError(t, env.GetWorkflowError())
			var res RunResult
			require.NoError(t, env.GetWorkflowResult(&res))
			require.Equal(t, int64(tc.users), res.Stats.Entered)
			require.Equal(t, int64(tc.users), res.Stats.Sent)
			require.Len(t, h.outbox("once-only"), tc.users)
			require.True(t, sf.failed.Load(), "the admission's seal never failed: the case proves nothing")
		})
	}
}

// TestRetriedPartitionPutsEachUserOnOneArm (issue 11, defect 11): a
// Partition retried from a stale cursor after users' profiles changed
// rewrites the arm pages they left, instead of leaving them on both arms.
func TestRetriedPartitionPutsEachUserOnOneArm(t *testing.T) {
	const users = 2500 // three pages; the retry resumes after the first
	h := newHarness(t)
	h.profiles(users, func(int) map[string]any { return map[string]any{"level": "金卡"} })
	plan := h.deploy(`
id: by-level
trigger: {manual: {}}
steps:
  - id: level
    branch:
      - {when: 'user.level == "金卡"', goto: gold}
      - {else: other}
  - id: gold
    push: {channel: outbox, text: 金卡权益}
    next: done
  - id: other
    push: {channel: outbox, text: 会员权益}
  - id: done
    exit: {}
`)
	h.faults = newFaultInjector("Partition", staleHeartbeat)
	h.faults.between = func(string) {
		// Between the attempts everyone is downgraded: the retry puts the
		// pages it redoes on the else arm.
		var ups []store.ProfileUpdate
		for i := 0; i < users; i++ {
			ups = append(ups, store.ProfileUpdate{ID: fmt.Sprintf("u%03d", i), Patch: []byte(`{"level":"银卡"}`)})
		}
		_, err := h.store.UpsertProfiles(context.Background(), ups)
		require.NoError(t, err)
	}
	res := h.run(plan)
	require.Equal(t, int64(users), res.Stats.Sent, "each user gets one message")
	c := h.counts("by-level", res.RunID)
	require.Equal(t, int64(1000), c["gold"].Entered, "the first page was decided before the stale heartbeat")
	require.Equal(t, int64(users-1000), c["other"].Entered)
	perUser := map[string]int{}
	for _, m := range h.outbox("by-level") {
		perUser[m.UserID]++
	}
	require.Len(t, perUser, users)
	for u, n := range perUser {
		require.Equal(t, 1, n, "user %s", u)
	}
}
