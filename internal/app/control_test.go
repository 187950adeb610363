package app

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// TestPauseResumeStop runs a broadcast (5,000 users; HUABU_PAUSE_USERS=100000
// for the full-size run) and: pauses it before it sends — the send keeps
// retrying and sends nothing, the cohort holds — resumes within
// resume_grace, and everyone gets the first message; pauses it again while
// the second message is due, past the grace, so on resume nobody gets that
// stale message (reason expired); then stops a run: it ends and new runs
// are refused until the canvas is resumed. The audit log has each action.
func TestPauseResumeStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	users := 5000
	if s := os.Getenv("HUABU_PAUSE_USERS"); s != "" {
		users, _ = strconv.Atoi(s)
	}
	activities.PauseRecheck = 500 * time.Millisecond
	t.Cleanup(func() { activities.PauseRecheck = 5 * time.Second })
	app := startGovernedApp(t, "policy: {resume_grace: 3s}\n", map[string]string{"blast.yaml": `id: blast
trigger: {manual: {}}
steps:
  - {id: first, push: {channel: outbox, text: "一"}}
  - {id: pause-here, wait: 1s}
  - {id: second, push: {channel: outbox, text: "二"}}
  - {id: later, wait: 1h}
`})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ups []store.ProfileUpdate
	for i := 0; i < users; i++ {
		ups = append(ups, store.ProfileUpdate{ID: fmt.Sprintf("p%06d", i), Patch: []byte(`{"name":"x"}`)})
		if len(ups) == 5000 || i == users-1 {
			_, err := app.Store().UpsertProfiles(ctx, ups)
			require.NoError(t, err)
			ups = ups[:0]
		}
	}
	total := int64(users + 3) // and u1..u3 of startGovernedApp
	sentAt := func(step string) int64 {
		c, _, err := app.Store().Counts(ctx, "blast", 0)
		require.NoError(t, err)
		if c[step] == nil {
			return 0
		}
		return c[step].Sent
	}
	// heldAttempts is the attempt of the run's send while it is held by the pause.
	heldAttempts := func(wf string) int32 {
		d, err := app.Client().DescribeWorkflowExecution(ctx, wf, "")
		require.NoError(t, err)
		for _, a := range d.PendingActivities {
			if f := a.GetLastFailure(); f != nil && strings.Contains(f.GetMessage(), "is paused") {
				return a.GetAttempt()
			}
		}
		return 0
	}
	control := func(action string) map[string]any {
		code, body := as(t, app, "alice", "POST", "/api/v1/canvases/blast/"+action, nil)
		require.Equal(t, 200, code, body)
		return body
	}

	code, body := as(t, app, "alice", "POST", "/api/v1/canvases/blast/runs", map[string]any{})
	require.Equal(t, 202, code, body)
	wf := body["workflow_id"].(string)
	control("pause")
	require.Eventually(t, func() bool { return heldAttempts(wf) >= 2 }, time.Minute, 100*time.Millisecond, "the send finds the canvas paused")
	held := sentAt("first")
	attempt := heldAttempts(wf)
	require.Eventually(t, func() bool { return heldAttempts(wf) >= attempt+2 }, time.Minute, 50*time.Millisecond)
	require.Equal(t, held, sentAt("first"), "the send ran again twice while paused and sent nothing")
	require.Less(t, held, total, "the pause came before the send finished")
	code, body = as(t, app, "alice", "POST", "/api/v1/canvases/blast/runs", map[string]any{})
	require.Equal(t, 409, code, "no manual runs while paused")
	require.Contains(t, body["error"], "is paused")

	control("resume") // within resume_grace: the held messages go
	require.Eventually(t, func() bool { return sentAt("first") == total }, time.Minute, 100*time.Millisecond)

	// Pause while the second message is due, past the grace, then resume.
	control("pause")
	require.Eventually(t, func() bool { return heldAttempts(wf) >= 2 }, time.Minute, 100*time.Millisecond, "the second send is held")
	time.Sleep(3500 * time.Millisecond) // longer than resume_grace (3s): the held message becomes stale
	control("resume")
	require.Eventually(t, func() bool {
		c, _, err := app.Store().Counts(ctx, "blast", 0)
		require.NoError(t, err)
		return c["second"] != nil && c["second"].Suppressed["expired"]+c["second"].Sent == total
	}, time.Minute, 100*time.Millisecond)
	c, _, err := app.Store().Counts(ctx, "blast", 0)
	require.NoError(t, err)
	require.Equal(t, total, c["second"].Suppressed["expired"]+c["second"].Sent)
	require.Greater(t, c["second"].Suppressed["expired"], int64(0), "no blast of stale messages on resume")
	t.Logf("%d users: first message held at %d sent, all sent after an in-grace resume; second: %d sent before the pause, %d expired",
		total, held, c["second"].Sent, c["second"].Suppressed["expired"])
	rep, err := app.Report(ctx, "blast", 0)
	require.NoError(t, err)
	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	require.Contains(t, text.String(), "expired")

	// Stop: the run (now in its 1h wait) ends; no new run until resumed.
	body = control("stop")
	require.Equal(t, float64(1), body["runs_cancelled"])
	var status string
	require.Eventually(t, func() bool {
		d, err := app.Client().DescribeWorkflowExecution(ctx, wf, "")
		if err == nil {
			status = d.WorkflowExecutionInfo.Status.String()
		}
		return status == "Canceled"
	}, 20*time.Second, 100*time.Millisecond)
	runs, err := app.Store().Runs(ctx, "blast", 1)
	require.NoError(t, err)
	require.Equal(t, "stopped", runs[0].State)
	c, _, err = app.Store().Counts(ctx, "blast", 0)
	require.NoError(t, err)
	var exited int64
	for _, sc := range c {
		exited += sc.Exited
	}
	require.Equal(t, total, exited, "the users waiting in the run exit (reason stopped)")
	rep, err = app.Report(ctx, "blast", 0)
	require.NoError(t, err)
	text.Reset()
	require.NoError(t, rep.WriteText(&text))
	require.Contains(t, text.String(), fmt.Sprintf("stopped: %d users exited because the run was stopped (at later %d).", total, total))
	code, body = as(t, app, "alice", "POST", "/api/v1/canvases/blast/runs", map[string]any{})
	require.Equal(t, 409, code)
	require.Contains(t, body["error"], "is stopped")
	code, _ = as(t, app, "vic", "POST", "/api/v1/canvases/blast/resume", nil)
	require.Equal(t, 403, code, "viewers cannot resume")
	control("resume")

	code, body = as(t, app, "vic", "GET", "/api/v1/audit?canvas=blast&limit=6", nil)
	require.Equal(t, 200, code)
	var got []string
	for _, e := range body["entries"].([]any) {
		m := e.(map[string]any)
		got = append(got, m["actor"].(string)+" "+m["action"].(string))
	}
	require.Equal(t, []string{"alice resume", "alice stop", "alice resume", "alice pause", "alice resume", "alice pause"}, got)
}

// TestPausedEventEntriesKeepOrDrop: while two event-triggered canvases are
// paused, a user sends their trigger event. The canvas that keeps entries
// (the default) enters the user, who waits and gets the message once it is
// resumed; the canvas with while_paused: drop enters nobody — only users
// whose event came after the resume.
func TestPausedEventEntriesKeepOrDrop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	activities.PauseRecheck = 200 * time.Millisecond
	t.Cleanup(func() { activities.PauseRecheck = 5 * time.Second })
	canvas := func(id, extra string) string {
		return "id: " + id + "\ntrigger: {event: {name: signup" + extra + "}}\nsteps:\n  - {id: hello, push: {channel: outbox, text: 欢迎}}\n"
	}
	app := startGovernedApp(t, "", map[string]string{
		"keeps.yaml": canvas("keeps", ""),
		"drops.yaml": canvas("drops", ", while_paused: drop"),
	})
	ctx := context.Background()
	for _, id := range []string{"keeps", "drops"} {
		code, body := as(t, app, "alice", "POST", "/api/v1/canvases/"+id+"/pause", nil)
		require.Equal(t, 200, code, body)
	}

	sendEvents(t, app, "signup", nil, "u1")
	require.Eventually(t, func() bool {
		runs, err := app.Store().Runs(ctx, "keeps", 5)
		require.NoError(t, err)
		return len(runs) == 1
	}, 30*time.Second, 50*time.Millisecond, "the kept entry starts its run while paused")
	require.Empty(t, outboxOf(t, app, "keeps", "hello"), "paused: the kept user waits")

	for _, id := range []string{"keeps", "drops"} {
		code, body := as(t, app, "alice", "POST", "/api/v1/canvases/"+id+"/resume", nil)
		require.Equal(t, 200, code, body)
	}
	sendEvents(t, app, "signup", nil, "u2") // routed after u1's event, in order
	// u1's held send goes out at its next pause recheck, which may come after
	// u2's whole journey: wait for all three messages, then check exactly.
	require.Eventually(t, func() bool {
		keeps := outboxOf(t, app, "keeps", "hello")
		return keeps["u1"] && keeps["u2"] && outboxOf(t, app, "drops", "hello")["u2"]
	}, 30*time.Second, 50*time.Millisecond, "keep: u1 entered while paused and got the message on resume; both got u2's")
	require.Equal(t, map[string]bool{"u1": true, "u2": true}, outboxOf(t, app, "keeps", "hello"), "keep: u1 entered while paused and got the message on resume")
	require.Equal(t, map[string]bool{"u2": true}, outboxOf(t, app, "drops", "hello"), "drop: u1's event while paused entered nobody")
	c, _, err := app.Store().Counts(ctx, "drops", 0)
	require.NoError(t, err)
	require.Equal(t, int64(1), c["hello"].Entered)
}

// TestStopExitsEveryone stops a run whose first message is held by a pause
// (its cohort is in the middle of the push step, not waiting): the run
// ends, and every user it held exits with reason stopped where they were,
// so each step's entries are accounted for — entered = entered the next
// step + exited — and the report says how many were stopped, and where.
func TestStopExitsEveryone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	activities.PauseRecheck = time.Hour // the held send is not retried before the stop
	t.Cleanup(func() { activities.PauseRecheck = 5 * time.Second })
	app := startGovernedApp(t, "", map[string]string{"halt.yaml": `id: halt
trigger: {manual: {}}
steps:
  - {id: first, push: {channel: outbox, text: "一"}}
  - {id: later, wait: 1h}
  - {id: second, push: {channel: outbox, text: "二"}}
`})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ups []store.ProfileUpdate
	for i := 0; i < 3000; i++ {
		ups = append(ups, store.ProfileUpdate{ID: fmt.Sprintf("h%05d", i), Patch: []byte(`{"name":"x"}`)})
	}
	_, err := app.Store().UpsertProfiles(ctx, ups)
	require.NoError(t, err)
	total := int64(3003)

	code, body := as(t, app, "alice", "POST", "/api/v1/canvases/halt/pause", nil)
	require.Equal(t, 200, code, body)
	// A run that does not come through the API starts while paused (as an
	// event entry's would) and holds at its first send.
	run, err := app.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: app.cfg.Temporal.TaskQueue}, workflows.RunName,
		workflows.RunInput{CanvasID: "halt", PlanHash: mustPlanHash(t, app, "halt"), Trigger: canvases.TriggerSchedule})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d, err := app.Client().DescribeWorkflowExecution(ctx, run.GetID(), "")
		require.NoError(t, err)
		for _, a := range d.PendingActivities {
			if f := a.GetLastFailure(); f != nil && strings.Contains(f.GetMessage(), "is paused") {
				return true
			}
		}
		return false
	}, time.Minute, 50*time.Millisecond, "the first send is held mid-step")

	code, body = as(t, app, "alice", "POST", "/api/v1/canvases/halt/stop", nil)
	require.Equal(t, 200, code, body)
	require.Equal(t, float64(1), body["runs_cancelled"])
	require.Error(t, run.Get(ctx, nil), "the run ended, cancelled")
	require.Eventually(t, func() bool {
		runs, err := app.Store().Runs(ctx, "halt", 1)
		require.NoError(t, err)
		return runs[0].State == "stopped"
	}, 30*time.Second, 50*time.Millisecond)

	c, _, err := app.Store().Counts(ctx, "halt", 0)
	require.NoError(t, err)
	entered := func(step string) int64 {
		if c[step] == nil {
			return 0
		}
		return c[step].Entered
	}
	exited := func(step string) int64 {
		if c[step] == nil {
			return 0
		}
		return c[step].Exited
	}
	require.Equal(t, total, entered("first"))
	steps := []string{"first", "later", "second"}
	var stopped int64
	for i, s := range steps {
		next := int64(0)
		if i+1 < len(steps) {
			next = entered(steps[i+1])
		}
		require.Equal(t, entered(s), next+exited(s), "step %s: every user who entered went on or exited", s)
		if c[s] != nil {
			require.Equal(t, exited(s), c[s].ExitReasons["stopped"], "step %s: the exits are the stop's", s)
			stopped += c[s].ExitReasons["stopped"]
		}
	}
	require.Equal(t, total, stopped, "every user exited, reason stopped")
	require.Zero(t, c["first"].Sent, "nothing was sent: the canvas was paused, then stopped")

	rep, err := app.Report(ctx, "halt", 0)
	require.NoError(t, err)
	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	require.Contains(t, text.String(), fmt.Sprintf("stopped: %d users exited because the run was stopped (at first %d).", total, total))
}

func mustPlanHash(t *testing.T, app *App, canvasID string) string {
	t.Helper()
	c, err := app.Store().Canvas(context.Background(), canvasID)
	require.NoError(t, err)
	return c.PlanHash
}
