package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// carryCanvas has, at once, a staff task whose child runs for seconds, a
// cohort waiting for an event and users arriving: with continue-as-new
// suggested every few events, the run continues as new again and again
// with all of them in flight.
const carryCanvas = `
id: carry-across
trigger: {manual: {}}
steps:
  - id: route
    branch:
      - {when: 'user.level in ["金卡", "钻石"]', goto: task}
      - {else: hello}
  - id: task
    staff_task: {text: "今日推荐：会员日专属权益", deadline: 8s, remind: [3s]}
    next: done
  - id: hello
    push: {channel: outbox, text: 你好}
  - id: wait-open
    wait: {event: app_open, timeout: 8s, on_timeout: nudge}
  - id: opened
    exit: {reason: 已打开}
  - id: nudge
    push: {channel: outbox, text: 提醒}
  - id: done
    exit: {}
`

// TestRunCarriesWorkAcrossContinueAsNew (issue 11, defect 4) on the
// embedded server, with continue-as-new suggested after 20 events: a
// staff task's child outlives the runs that continue as new meanwhile and
// reports its end to the current one, arrivals reach whichever run is
// current, and every user ends where they should, once.
func TestRunCarriesWorkAcrossContinueAsNew(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app, fake := startWeComAppWith(t, nil, map[string]string{"carry.yaml": carryCanvas},
		map[string]any{"limit.historyCount.suggestContinueAsNew": 20})
	fake.AutoConfirm("zhangwei", 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started, err := app.StartRun(ctx, "carry-across", nil)
	require.NoError(t, err)

	// Three of those greeted open the app while the others wait.
	var greeted []string
	require.Eventually(t, func() bool {
		msgs, err := app.Store().Outbox(ctx, "carry-across", 1000)
		require.NoError(t, err)
		greeted = greeted[:0]
		for _, m := range msgs {
			if m.StepID == "hello" {
				greeted = append(greeted, m.UserID)
			}
		}
		return len(greeted) > 3
	}, 30*time.Second, 50*time.Millisecond)
	opened := greeted[:3]
	// They open it once the greeted wait for it (an event before that is
	// not what the wait is for).
	require.Eventually(t, func() bool {
		runs, err := app.Store().Runs(ctx, "carry-across", 1)
		require.NoError(t, err)
		waits, err := app.Store().WaitsIn(ctx, []int64{runs[0].ID}, "app_open")
		require.NoError(t, err)
		return len(waits) > 0
	}, 30*time.Second, 50*time.Millisecond)
	var batch []string
	for _, u := range opened {
		batch = append(batch, fmt.Sprintf(`{"type":"track","userId":%q,"event":"app_open"}`, u))
	}
	req, err := http.NewRequest("POST", "http://"+app.HTTPAddr()+"/v1/batch", strings.NewReader(`{"batch":[`+strings.Join(batch, ",")+`]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+app.cfg.HTTP.WriteKeys[0])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	res, err := app.WaitRun(ctx, started.WorkflowID)
	require.NoError(t, err)

	// The run continued as new several times, and later runs were told
	// of the arrivals and of the staff task's end.
	runs := historyChain(t, ctx, app.Client(), started.WorkflowID)
	require.GreaterOrEqual(t, len(runs), 3, "continue-as-new was suggested every 20 events")
	signals := map[string]int{}
	for _, h := range runs[1:] {
		for _, ev := range h.Events {
			if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
				signals[a.GetSignalName()]++
			}
		}
	}
	require.Positive(t, signals["staff-done"], "the staff task reported to a run that continued as new after it started")

	// Every user once where they belong.
	msgs, err := app.Store().Outbox(ctx, "carry-across", 1000)
	require.NoError(t, err)
	per := map[string]int{}
	for _, m := range msgs {
		per[m.StepID+"/"+m.UserID]++
	}
	for k, n := range per {
		require.Equal(t, 1, n, "%s %d times", k, n)
	}
	for _, u := range opened {
		require.Zero(t, per["nudge/"+u], "%s opened the app", u)
	}
	c, _, err := app.Store().Counts(ctx, "carry-across", res.RunID)
	require.NoError(t, err)
	require.Equal(t, int64(len(greeted)), c["hello"].Sent)
	require.Equal(t, int64(3), c["opened"].Exited)
	require.Equal(t, int64(len(greeted)-3), c["nudge"].Sent)
	require.Equal(t, c["task"].Entered+c["nudge"].Entered, c["done"].Exited, "the staff task and the nudge both lead to done")
	require.Positive(t, c["task"].Entered)
	require.Equal(t, res.Stats.Entered, c["route"].Entered)
	for _, owner := range []string{"zhangwei", "lina", "wangfang", "liuyang", "sunli"} {
		require.LessOrEqual(t, len(fake.TasksFor(owner)), 1, "one task for %s", owner)
	}

	if *recordHistories {
		dir := filepath.Join("..", "workflows", "testdata")
		for i, h := range runs {
			writeHistory(t, filepath.Join(dir, fmt.Sprintf("carry-across-run%d.json", i+1)), started.WorkflowID, h)
		}
		staff := childHistories(t, ctx, app.Client(), runs)
		require.NotEmpty(t, staff)
		for i, h := range staff {
			writeHistory(t, filepath.Join(dir, fmt.Sprintf("carry-across-staff%d.json", i+1)), h.id, h.History)
		}
	}
}

// historyChain returns the histories of a workflow's runs, first to last,
// following continue-as-new back from the current run.
func historyChain(t *testing.T, ctx context.Context, c client.Client, workflowID string) []*historypb.History {
	t.Helper()
	var out []*historypb.History
	runID := ""
	for {
		h := history(t, ctx, c, workflowID, runID)
		out = append([]*historypb.History{h}, out...)
		prev := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		if prev == "" {
			return out
		}
		runID = prev
	}
}

func history(t *testing.T, ctx context.Context, c client.Client, workflowID, runID string) *historypb.History {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

type workflowHistory struct {
	id string
	*historypb.History
}

// childHistories returns the histories of every run of the staff_task
// children the runs started.
func childHistories(t *testing.T, ctx context.Context, c client.Client, runs []*historypb.History) []workflowHistory {
	t.Helper()
	var out []workflowHistory
	for _, h := range runs {
		for _, ev := range h.Events {
			if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
				id := a.GetWorkflowExecution().GetWorkflowId()
				for _, ch := range historyChain(t, ctx, c, id) {
					out = append(out, workflowHistory{id, ch})
				}
			}
		}
	}
	return out
}

// writeHistory writes a history for the replay test, and its workflow id
// into workflow-ids.json beside it: workflows derive ids (their children's)
// from their own, so the replay must run under the same one.
func writeHistory(t *testing.T, path, workflowID string, h *historypb.History) {
	t.Helper()
	idsPath := filepath.Join(filepath.Dir(path), "workflow-ids.json")
	ids := map[string]string{}
	if b, err := os.ReadFile(idsPath); err == nil {
		require.NoError(t, json.Unmarshal(b, &ids))
	}
	ids[filepath.Base(path)] = workflowID
	b, err := json.MarshalIndent(ids, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(idsPath, append(b, '\n'), 0o644))
	b, err = protojsonMarshal(h)
	require.NoError(t, err)
	var pretty any
	require.NoError(t, json.Unmarshal(b, &pretty))
	out, err := json.MarshalIndent(pretty, "", " ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, out, 0o644))
	t.Logf("recorded %d events to %s", len(h.Events), path)
}
