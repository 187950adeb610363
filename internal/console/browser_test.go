package console_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/reports"
)

// go test ./internal/console -run TestConsoleInBrowser -console.screenshots ../../docs/console
// refreshes the screenshots docs/console.md shows.
var screenshots = flag.String("console.screenshots", "", "write screenshots of the console's pages to this directory")

const (
	operatorSecret = "operator-token-browser-0123456789"
)

// startExampleApp runs Huabu with the example config, tokens, and the
// example member-day canvas (its quiet hours taken out, so the test does
// not depend on the hour it runs at), with the example profiles imported.
func startExampleApp(t *testing.T) *app.App {
	t.Helper()
	dir := t.TempDir()
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	text := strings.Replace(string(src), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	require.NotEqual(t, string(src), text)
	text += fmt.Sprintf("\nauth:\n  tokens:\n    - {name: otto, role: operator, token: %q}\n", operatorSecret)
	canvas, err := examples.FS.ReadFile("canvases/member-day.yaml")
	require.NoError(t, err)
	quiet := "policy:\n  quiet_hours: {from: \"21:00\", to: \"09:00\", action: delay}\n"
	require.Contains(t, string(canvas), quiet)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "member-day.yaml"), []byte(strings.Replace(string(canvas), quiet, "", 1)), 0o644))
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(text))
	require.NoError(t, err)
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	running, err := app.Start(context.Background(), app.Options{Config: cfg, DataDir: filepath.Join(dir, "data"), Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	t.Cleanup(func() { running.Close() })
	schema, err := cfg.Schema()
	require.NoError(t, err)
	profiles, err := examples.FS.Open("profiles.jsonl")
	require.NoError(t, err)
	sum, err := ingest.ImportProfiles(context.Background(), running.Store(), schema, profiles, ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, sum.Rejected)
	return running
}

// apiGet reads the admin API with the operator's token.
func apiGet(t *testing.T, app *app.App, path string, out any) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+app.AdminAddr()+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+operatorSecret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}

// TestConsoleInBrowser: in headless Chromium, a person logs in with a
// token, opens the canvas of a run of the example member-day canvas and
// reads each drawn step's counts — the report's (`huabu report --json`) —
// then pauses and resumes the canvas from the run page, which refreshes
// by itself.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal and Chromium")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is missing; .ci/run installs it")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	app := startExampleApp(t)
	ctx := context.Background()
	started, err := app.StartRun(ctx, "member-day", nil)
	require.NoError(t, err)
	// Everyone sent to is now waiting a day for app_open: the counts stand still.
	var runID int64
	require.Eventually(t, func() bool {
		st, err := app.RunStatus(ctx, started.WorkflowID)
		if err != nil || st.Status != "Running" || st.Active != 0 {
			return false
		}
		runID = st.RunID
		for _, s := range st.Steps {
			if s.StepID == "wait-open" {
				return s.Waiting > 0
			}
		}
		return false
	}, 90*time.Second, 200*time.Millisecond)

	base := "http://" + app.AdminAddr()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank"))) // starts the browser: no timeout on it
	bctx, cancel = context.WithTimeout(bctx, 3*time.Minute)                 // a bound on a stuck browser, generous for a loaded machine
	defer cancel()
	shot := func(name string) {
		if *screenshots == "" {
			return
		}
		buf, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(*screenshots, name+".png"), buf, 0o644))
	}

	// Not logged in: the canvas page sends the browser to the login form.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/canvases/member-day"), chromedp.WaitVisible(chromedp.CSS("#token"))))
	url, err := chromedp.Run(bctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, base+"/login?next=%2Fcanvases%2Fmember-day", url)
	shot("login")
	require.NoError(t, chromedp.Do(bctx, chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token-0123456789"), chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#login-error"))))
	require.NoError(t, chromedp.Do(bctx, chromedp.SendKeys(chromedp.CSS("#token"), operatorSecret), chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("svg#flow"))))
	url, err = chromedp.Run(bctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, base+"/canvases/member-day", url)
	shot("canvas")

	// Each drawn step's counts are the report's.
	drawn, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]map[string]int64](`(() => {
	  const out = {};
	  for (const g of document.querySelectorAll("g[data-step]")) {
	    const d = g.dataset, c = {};
	    for (const k of ["entered", "sent", "failed", "suppressed", "unknown", "waiting", "converted"]) c[k] = Number(d[k]);
	    out[d.step] = c;
	  }
	  return out;
	})()`))
	require.NoError(t, err)
	var rep reports.Report
	apiGet(t, app, "/api/v1/canvases/member-day/report", &rep)
	require.Len(t, drawn, len(rep.Steps))
	sum := func(m map[string]int64) (n int64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	var sent int64
	for _, s := range rep.Steps {
		want := map[string]int64{"entered": s.Entered, "sent": s.Sent, "failed": sum(s.Failed), "suppressed": sum(s.Suppressed), "unknown": s.Unknown, "converted": s.Converted}
		got := drawn[s.StepID]
		require.NotNil(t, got, s.StepID)
		delete(got, "waiting")
		require.Equal(t, want, got, s.StepID)
		sent += s.Sent
	}
	require.Positive(t, sent, "the run sent something")
	require.Positive(t, drawn["wait-open"]["entered"])

	// The version history: member-day as deployed at start, its YAML.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#versions tr[data-version] a`)), chromedp.WaitVisible(chromedp.CSS(`#source`))))
	source, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("source").textContent`))
	require.NoError(t, err)
	require.Contains(t, source, "id: member-day")
	shot("version")
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/canvases/member-day"), chromedp.WaitVisible(chromedp.CSS("svg#flow"))))

	// Click a node: its row (reasons) and the link to a sample of who
	// reached it, each with their outcome there and a link to their page.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`g[data-step="push-diamond"]`)),
		chromedp.Click(chromedp.CSS(`#step-push-diamond a.recipients`)), chromedp.WaitVisible(chromedp.CSS(`#recipients[data-step="push-diamond"]`))))
	sample, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#recipients tr[data-user]")).map(r => r.dataset.user + ":" + r.dataset.outcome + ":" + r.querySelector("a").getAttribute("href"))`))
	require.NoError(t, err)
	require.Contains(t, sample, "u002:sent:/users/u002")
	require.LessOrEqual(t, len(sample), 20)
	shot("step")

	// The canvases list.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-canvas="member-day"]`))))
	shot("canvases")

	// The run page: it refreshes by itself (the progress section is replaced).
	runPage := fmt.Sprintf("%s/runs/%d", base, runID)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(runPage), chromedp.WaitVisible(chromedp.CSS("#pause"))))
	_, err = chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("progress").dataset.old = "yes"`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(bctx, chromedp.WaitReady(chromedp.CSS(`#progress:not([data-old])`))))
	shot("run")
	canvasState := func() string {
		var list struct {
			Canvases []struct {
				ID, State string
			}
		}
		apiGet(t, app, "/api/v1/canvases", &list)
		for _, c := range list.Canvases {
			if c.ID == "member-day" {
				return c.State
			}
		}
		return ""
	}
	require.Equal(t, "active", canvasState())
	state := func() string {
		a, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.CSS("#canvas-state"), "data-state"))
		require.NoError(t, err)
		return a.Value
	}
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#pause")), chromedp.WaitVisible(chromedp.CSS("#resume"))))
	require.Equal(t, "paused", state())
	url, err = chromedp.Run(bctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, runPage, url)
	require.Equal(t, "paused", canvasState())
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#resume")), chromedp.WaitVisible(chromedp.CSS("#pause"))))
	require.Equal(t, "active", state())
	require.Equal(t, "active", canvasState())

	// A user's journey, found by phone: entered, the diamond push sent (its
	// text from the outbox), now waiting at wait-open.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/users"), chromedp.WaitVisible(chromedp.CSS("#user-query")),
		chromedp.SendKeys(chromedp.CSS("#user-query"), "13800130002"), chromedp.Submit(chromedp.CSS("#user-query")),
		chromedp.WaitVisible(chromedp.CSS(`#user[data-user="u002"]`))))
	journey, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".journey tr[data-kind]")).map(r => r.dataset.kind + ":" + r.dataset.step)`))
	require.NoError(t, err)
	require.Contains(t, journey, "entered:")
	require.Contains(t, journey, "sent:push-diamond")
	path, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".journey [data-path-step]")).map(s => s.dataset.pathStep)`))
	require.NoError(t, err)
	require.Equal(t, []string{"by-level", "push-diamond", "wait-open"}, path)
	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('.journey tr[data-kind="sent"] .message').textContent`))
	require.NoError(t, err)
	require.Contains(t, text, "今日全场 7 折")
	shot("user")

	// The editor: a broken canvas typed in is checked as it is typed; the
	// error is marked at its line and column.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/editor"), chromedp.WaitVisible(chromedp.CSS("#source")),
		chromedp.SendKeys(chromedp.CSS("#source"), "id: typed\ntrigger: {manual: {}}\nsteps:\n  - id: hello\n    push: {channel: pigeon, text: hi}\n"),
		chromedp.WaitVisible(chromedp.CSS(`#problems li[data-line="5"][data-severity="error"]`))))
	problem, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(() => { const li = document.querySelector('#problems li[data-line="5"]'); return li.dataset.col + " " + li.textContent })()`))
	require.NoError(t, err)
	require.Contains(t, problem, "pigeon")
	require.True(t, strings.HasPrefix(problem, "21 5:21"), problem)
	shot("editor")

	var audit struct {
		Entries []struct {
			Action string
			Actor  string
		}
	}
	apiGet(t, app, "/api/v1/audit?canvas=member-day", &audit)
	var actions []string
	for _, e := range audit.Entries {
		if e.Action == "pause" || e.Action == "resume" {
			require.Equal(t, "otto", e.Actor)
			actions = append(actions, e.Action)
		}
	}
	require.ElementsMatch(t, []string{"pause", "resume"}, actions)
}
