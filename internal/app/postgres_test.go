package app

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/huabu/huabu/internal/store/storetest"
)

// everyKindCanvas is replayCanvas with the staff task first, reached by
// one cohort: which of several cohorts reaching a staff_task step makes
// its tasks depends on timing (see the board), and the outcomes compared
// here must not.
const everyKindCanvas = `
id: every-kind
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: push, title: 你好, text: "{{ .user.name }}，欢迎", fallback: sms, template: SMS_1}
  - id: brief
    staff_task:
      text: "{{ .staff.name }}，今日推荐"
      deadline: 9h
  - id: pause
    wait: 1s
  - id: level
    branch:
      - {when: 'user.level == "钻石"', goto: vip}
      - {else: ab}
  - id: vip
    tag: {add: [pg-vip]}
    next: done
  - id: ab
    split: [{weight: 50, goto: coupon}, {weight: 50, goto: done}]
  - id: coupon
    wait: {event: coupon_used, timeout: 1s, on_timeout: done}
  - id: done
    exit: {reason: finished}
`

// TestPostgresStoreRunsLikeSQLite runs a canvas of every step kind (push
// with fallback, staff task, waits, branch, split, tag, wait for an event,
// exit) over the example profiles on the embedded Temporal twice: with the
// default SQLite store and with store.driver postgres. The reports and the
// messages sent must be the same.
func TestPostgresStoreRunsLikeSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal twice")
	}
	dsn := storetest.PostgresDSN(t)
	type outcome struct {
		Report   string
		Messages []string
	}
	run := func(driver string) outcome {
		edit := func(cfg string) string {
			if driver != "postgres" {
				return cfg
			}
			return strings.Replace(cfg, "  driver: sqlite ", "  driver: postgres\n  dsn: \""+dsn+"\"\n ", 1)
		}
		app := startApp(t, map[string]string{"every-kind.yaml": everyKindCanvas}, edit, nil)
		defer app.Close()
		require.Equal(t, driver == "postgres", app.Store().Postgres())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		started, err := app.StartRun(ctx, "every-kind", nil)
		require.NoError(t, err)
		_, err = app.WaitRun(ctx, started.WorkflowID)
		require.NoError(t, err)
		// The staff task children outlive the run (ParentClosePolicy
		// ABANDON): compare once every workflow has closed.
		require.Eventually(t, func() bool {
			open, err := app.Client().ListOpenWorkflow(ctx, &workflowservice.ListOpenWorkflowExecutionsRequest{Namespace: app.cfg.Temporal.Namespace})
			return err == nil && len(open.Executions) == 0
		}, time.Minute, 50*time.Millisecond)
		rep, err := app.Report(ctx, "every-kind", 0)
		require.NoError(t, err)
		require.Greater(t, rep.Entered, int64(0))
		for i := range rep.Runs {
			rep.Runs[i].StartedAt, rep.Runs[i].FinishedAt = time.Time{}, nil
		}
		b, err := json.MarshalIndent(rep, "", "  ")
		require.NoError(t, err)
		msgs, err := app.Store().Outbox(ctx, "every-kind", 100000)
		require.NoError(t, err)
		var out outcome
		out.Report = string(b)
		for _, m := range msgs {
			out.Messages = append(out.Messages, m.StepID+" "+m.Channel+" "+m.UserID+" "+m.Address+" "+m.Sender+" "+string(m.Message))
		}
		sort.Strings(out.Messages)
		require.NotEmpty(t, out.Messages)
		return out
	}
	// The staff notice names its deadline (the run's start + 9h, to the
	// minute): the two runs start seconds apart and may fall either side of
	// a minute.
	deadline := regexp.MustCompile(`请在 \d\d-\d\d \d\d:\d\d 前`)
	maskDeadlines := func(msgs []string) []string {
		out := make([]string, len(msgs))
		for i, m := range msgs {
			out[i] = deadline.ReplaceAllString(m, "请在 MM-DD hh:mm 前")
		}
		return out
	}
	lite := run("sqlite")
	pg := run("postgres")
	require.Equal(t, lite.Report, pg.Report)
	require.Equal(t, maskDeadlines(lite.Messages), maskDeadlines(pg.Messages))
}
