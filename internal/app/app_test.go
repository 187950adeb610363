package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/workflows"
)

var quietHours = regexp.MustCompile(`(?m)^policy:\n\s*quiet_hours:.*\n`)

var recordHistories = flag.Bool("record-histories", false, "write the histories of the replay canvas to ../workflows/testdata")

// startExampleApp runs the whole stack on the example config, with its
// canvases from the embedded examples, in a temporary data directory.
func startExampleApp(t *testing.T, extraCanvases map[string]string) *App {
	t.Helper()
	return startApp(t, extraCanvases, nil, nil)
}

// startApp is startExampleApp with the config's text and the example
// canvases edited first (either func may be nil).
func startApp(t *testing.T, extraCanvases map[string]string, editConfig func(string) string, editCanvas func(name string, b []byte) []byte) *App {
	t.Helper()
	dir := t.TempDir()
	app := startAppIn(t, exampleConfig(t, dir, extraCanvases, editConfig, editCanvas), dir)
	importExamples(t, app)
	return app
}

// exampleConfig writes the example config and canvases (plus extra ones,
// edited as startApp says) into dir, listening on a free port.
func exampleConfig(t *testing.T, dir string, extraCanvases map[string]string, editConfig func(string) string, editCanvas func(name string, b []byte) []byte) *config.Config {
	t.Helper()
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	canvasDir := filepath.Join(dir, "canvases")
	require.NoError(t, os.MkdirAll(canvasDir, 0o755))
	entries, err := examples.FS.ReadDir("canvases")
	require.NoError(t, err)
	for _, e := range entries {
		b, err := examples.FS.ReadFile("canvases/" + e.Name())
		require.NoError(t, err)
		// Quiet hours would make these tests depend on the time of day.
		b = quietHours.ReplaceAll(b, nil)
		if editCanvas != nil {
			b = editCanvas(e.Name(), b)
		}
		require.NoError(t, os.WriteFile(filepath.Join(canvasDir, e.Name()), b, 0o644))
	}
	for name, body := range extraCanvases {
		require.NoError(t, os.WriteFile(filepath.Join(canvasDir, name), []byte(body), 0o644))
	}
	text := strings.Replace(string(src), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	if editConfig != nil {
		text = editConfig(text)
	}
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(text))
	require.NoError(t, err)
	return cfg
}

// startAppIn starts the stack of cfg with its data under dir/data; Close
// runs at the end of the test (closing it earlier is fine).
func startAppIn(t *testing.T, cfg *config.Config, dir string) *App {
	t.Helper()
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := Start(context.Background(), Options{Config: cfg, DataDir: filepath.Join(dir, "data"), Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

// importExamples loads the example profiles and staff.
func importExamples(t *testing.T, app *App) {
	t.Helper()
	schema, err := app.cfg.Schema()
	require.NoError(t, err)
	profiles, _ := examples.FS.Open("profiles.jsonl")
	sum, err := ingest.ImportProfiles(context.Background(), app.Store(), schema, profiles, ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, sum.Rejected)
	staff, _ := examples.FS.Open("staff.jsonl")
	_, err = ingest.ImportStaff(context.Background(), app.Store(), staff)
	require.NoError(t, err)
}

func apiGet(t *testing.T, app *App, path string, out any) int {
	t.Helper()
	resp, err := http.Get("http://" + app.HTTPAddr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// TestExampleCanvasesEndToEnd runs example canvases on the embedded server.
func TestExampleCanvasesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startExampleApp(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.Equal(t, 200, apiGet(t, app, "/healthz", nil))
	var list struct{ Canvases []map[string]any }
	require.Equal(t, 200, apiGet(t, app, "/api/v1/canvases", &list))
	require.Len(t, list.Canvases, 8)

	// The HQ daily SOP runs to its end: one task per owner.
	started, err := app.StartRun(ctx, "hq-daily-sop", nil)
	require.NoError(t, err)
	res, err := app.WaitRun(ctx, started.WorkflowID)
	require.NoError(t, err)
	require.Greater(t, res.Stats.Entered, int64(0))
	msgs, err := app.Store().Outbox(ctx, "hq-daily-sop", 100)
	require.NoError(t, err)
	require.Len(t, msgs, 4, "one task for each of the four owners")

	// Member day pushes by level, then waits a day for app opens.
	started, err = app.StartRun(ctx, "member-day", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := app.RunStatus(ctx, started.WorkflowID)
		return err == nil && st.Status == "Running" && st.Active == 0 && st.Waiting != nil
	}, 30*time.Second, 100*time.Millisecond)
	var rep struct {
		Entered int64
		Steps   []struct {
			Step    string
			Entered int64
			Sent    int64
		}
	}
	require.Equal(t, 200, apiGet(t, app, "/api/v1/canvases/member-day/report", &rep))
	var sent int64
	for _, s := range rep.Steps {
		sent += s.Sent
	}
	require.Equal(t, rep.Entered, sent, "every member gets the push of their level: %+v", rep)
	require.Greater(t, sent, int64(0))
}

// replayCanvas covers every step kind with short waits; its histories are
// recorded for the replay test in workflows/.
const replayCanvas = `
id: replay-all-steps
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: push, title: 你好, text: "{{ .user.name }}，欢迎", fallback: sms, template: SMS_1}
  - id: pause
    wait: 1s
  - id: level
    branch:
      - {when: 'user.level == "钻石"', goto: vip}
      - {else: ab}
  - id: vip
    tag: {add: [replay-vip]}
    next: brief
  - id: ab
    split: [{weight: 50, goto: coupon}, {weight: 50, goto: brief}]
  - id: coupon
    wait: {event: coupon_used, timeout: 1s, on_timeout: brief}
  - id: brief
    staff_task:
      text: "{{ .staff.name }}，今日推荐"
      deadline: 9h
  - id: done
    exit: {reason: finished}
`

func TestRecordReplayHistories(t *testing.T) {
	if !*recordHistories {
		t.Skip("run with -record-histories to refresh workflows/testdata")
	}
	app := startExampleApp(t, map[string]string{"replay.yaml": replayCanvas})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started, err := app.StartRun(ctx, "replay-all-steps", nil)
	require.NoError(t, err)
	_, err = app.WaitRun(ctx, started.WorkflowID)
	require.NoError(t, err)
	// replay-all-steps.json is the history of the interpreter before
	// loopChange, -v1.json before enterHeadChange; both stay as they are and
	// this records the current one beside them.
	path := filepath.Join("..", "workflows", "testdata", "replay-all-steps-v2.json")
	writeHistory(t, path, started.WorkflowID, history(t, ctx, app.Client(), started.WorkflowID, ""))
	_ = canvases.StepPush
	_ = workflows.RunName
	_ = fmt.Sprint
}

// TestRecordNamedRunHistory records a run of named users (as an entry
// window starts one) over every step kind: since localRunChange its
// BeginRun, Enter, Exit, FinishRun and whole-cohort sends are local
// activities (replay-named-users.json), and since beginEnterChange one
// BeginEnter begins and enters it (replay-named-users-v2.json, recorded
// beside the older file, which stays as it is).
func TestRecordNamedRunHistory(t *testing.T) {
	if !*recordHistories {
		t.Skip("run with -record-histories to refresh workflows/testdata")
	}
	app := startExampleApp(t, map[string]string{"replay.yaml": replayCanvas})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := app.Store().ScanProfiles(ctx, 0, 40)
	require.NoError(t, err)
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	started, err := app.StartRun(ctx, "replay-all-steps", ids)
	require.NoError(t, err)
	_, err = app.WaitRun(ctx, started.WorkflowID)
	require.NoError(t, err)
	h := history(t, ctx, app.Client(), started.WorkflowID, "")
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			switch a.GetActivityType().GetName() {
			case "BeginRun", "Enter", "BeginEnter", "Exit", "FinishRun", "Send":
				t.Fatalf("%s ran as a regular activity in a run of named users", a.GetActivityType().GetName())
			}
		}
	}
	var began bool
	for _, ev := range h.Events {
		if m := ev.GetMarkerRecordedEventAttributes(); m != nil && strings.Contains(m.GetDetails()["data"].String(), "BeginEnter") {
			began = true
		}
	}
	require.True(t, began, "no BeginEnter local activity in the history")
	path := filepath.Join("..", "workflows", "testdata", "replay-named-users-v2.json")
	writeHistory(t, path, started.WorkflowID, h)
}
