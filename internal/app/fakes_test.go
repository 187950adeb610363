package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/store"
)

// providerFakes are the fakes examples/huabu-fakes.yaml points at, started
// in-process on free ports.
type providerFakes struct {
	wecom   *fakes.WeCom
	sms     *fakes.AliyunSMS
	push    *fakes.JPush
	webhook *fakes.Webhook
}

func startProviderFakes(t *testing.T) *providerFakes {
	t.Helper()
	f := &providerFakes{
		wecom:   fakes.NewWeCom("ww-demo", "demo-secret", "1000002"),
		sms:     fakes.NewAliyunSMS("demo-key", "demo-secret"),
		push:    fakes.NewJPush("demo-key", "demo-secret"),
		webhook: fakes.NewWebhook("demo-secret"),
	}
	t.Cleanup(func() { f.wecom.Close(); f.sms.Close(); f.push.Close(); f.webhook.Close() })
	// The WeCom address book and customers of the examples, as `huabu fake
	// wecom` has them: the directory sync finds what the import loaded.
	f.wecom.AddDepartment(fakes.Department{ID: 1, Name: "总部"})
	grids := map[string]int{}
	for _, s := range fakesExampleJSONL(t, "staff.jsonl") {
		grid := s["grid"].(string)
		if grids[grid] == 0 {
			grids[grid] = len(grids) + 2
			f.wecom.AddDepartment(fakes.Department{ID: grids[grid], Name: grid, ParentID: 1})
		}
		m := fakes.Member{UserID: s["userid"].(string), Name: s["name"].(string), Departments: []int{grids[grid]}}
		if l, _ := s["leader"].(string); l != "" {
			m.DirectLeaders = []string{l}
		}
		f.wecom.AddMember(m)
	}
	for _, p := range fakesExampleJSONL(t, "profiles.jsonl") {
		tr := p["traits"].(map[string]any)
		f.wecom.AddContact(tr["owner"].(string), tr["wecom_external_userid"].(string), tr["name"].(string))
	}
	return f
}

func fakesExampleJSONL(t *testing.T, name string) []map[string]any {
	t.Helper()
	r, err := examples.FS.Open(name)
	require.NoError(t, err)
	defer r.Close()
	var out []map[string]any
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, m)
	}
	return out
}

// startFakesApp runs the whole stack on examples/huabu-fakes.yaml with its
// provider addresses pointed at f, the way a user runs `huabu dev -c
// examples/huabu-fakes.yaml` against `huabu fake ...`: profiles and staff
// imported first, then the app started. editCanvas may change an example
// canvas (shorter waits).
func startFakesApp(t *testing.T, f *providerFakes, editCanvas func(name string, b []byte) []byte) *App {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "huabu-fakes.yaml"))
	require.NoError(t, err)
	text := string(src)
	for from, to := range map[string]string{
		"http://127.0.0.1:9001":  f.wecom.URL(),
		"http://127.0.0.1:9002":  f.sms.Endpoint(),
		"http://127.0.0.1:9004":  f.push.URL(),
		"http://127.0.0.1:9005/": f.webhook.URL() + "/",
		"listen: 127.0.0.1:8080": "listen: 127.0.0.1:0",
	} {
		require.Contains(t, text, from, "examples/huabu-fakes.yaml no longer has %s", from)
		text = strings.ReplaceAll(text, from, to)
	}
	dir := t.TempDir()
	canvasDir := filepath.Join(dir, "canvases")
	require.NoError(t, os.MkdirAll(canvasDir, 0o755))
	entries, err := examples.FS.ReadDir("canvases")
	require.NoError(t, err)
	for _, e := range entries {
		b, err := examples.FS.ReadFile("canvases/" + e.Name())
		require.NoError(t, err)
		b = fakesQuietHours.ReplaceAll(b, nil)
		if editCanvas != nil {
			b = editCanvas(e.Name(), b)
		}
		require.NoError(t, os.WriteFile(filepath.Join(canvasDir, e.Name()), b, 0o644))
	}
	cfg, err := config.Parse(filepath.Join(dir, "huabu-fakes.yaml"), dir, []byte(text))
	require.NoError(t, err)
	dataDir := filepath.Join(dir, "data")

	// huabu import profiles / staff, before huabu dev.
	ctx := context.Background()
	st, err := OpenStore(ctx, cfg, dataDir)
	require.NoError(t, err)
	schema, err := cfg.Schema()
	require.NoError(t, err)
	profiles, _ := examples.FS.Open("profiles.jsonl")
	sum, err := ingest.ImportProfiles(ctx, st, schema, profiles, ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, sum.Rejected)
	staff, _ := examples.FS.Open("staff.jsonl")
	_, err = ingest.ImportStaff(ctx, st, staff)
	require.NoError(t, err)
	require.NoError(t, st.Close())

	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := Start(ctx, Options{Config: cfg, DataDir: dataDir, Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

var (
	// fakesQuietHours: quiet hours would make the test depend on the time of day.
	fakesQuietHours = regexp.MustCompile(`(?m)^policy:\n\s*quiet_hours:.*\n`)
	trialWait       = regexp.MustCompile(`(?m)^(\s+wait:) 3d$`)
)

// fakesStepTotals sums the counts of the named steps of a report.
func fakesStepTotals(rep *reports.Report, ids ...string) store.StepCounts {
	sum := store.StepCounts{Failed: map[string]int64{}, Suppressed: map[string]int64{}}
	for _, s := range rep.Steps {
		for _, id := range ids {
			if s.StepID != id {
				continue
			}
			sum.Entered += s.Entered
			sum.Sent += s.Sent
			sum.Unknown += s.Unknown
			for k, v := range s.Failed {
				sum.Failed[k] += v
			}
			for k, v := range s.Suppressed {
				sum.Suppressed[k] += v
			}
		}
	}
	return sum
}

// TestExampleCanvasesAgainstFakes is the trial a new user makes: huabu dev
// on examples/huabu-fakes.yaml with every channel pointed at a local fake,
// the example profiles imported, example canvases run. Messages reach the
// fakes through the real channel code (signatures, wire formats, provider
// error codes, retries), and the report counts failures by the reason the
// provider gave.
func TestExampleCanvasesAgainstFakes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	f := startProviderFakes(t)
	// u003 unsubscribed from SMS, u010's number is refused as illegal;
	// u003, u010, u017 and u025 have no device for app push.
	f.sms.Refused = map[string]bool{"13800130003": true}
	f.sms.Invalid = map[string]bool{"13800130010": true}
	f.push.Unbound = map[string]bool{"u003": true, "u010": true, "u017": true, "u025": true}
	// And each provider's first answer is a server error: retried, never doubled.
	f.sms.Script(fakes.ServerError)
	f.push.Script(fakes.HTTP5xx)

	app := startFakesApp(t, f, func(name string, b []byte) []byte {
		if name == "trial-expiry.yaml" { // the 3 days until the offer
			b = trialWait.ReplaceAll(b, []byte("$1 2s"))
		}
		return b
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var userIDs []string
	for _, p := range fakesExampleJSONL(t, "profiles.jsonl") {
		userIDs = append(userIDs, p["userId"].(string))
	}
	sort.Strings(userIDs)

	// Purchase follow-up: a WeCom customer mass-send per owner, through base_url.
	started, err := app.StartRun(ctx, "purchase-followup", userIDs)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := app.RunStatus(ctx, started.WorkflowID)
		return err == nil && st.Status == "Running" && st.Active == 0 && st.Waiting != nil
	}, time.Minute, 100*time.Millisecond)
	owners := map[string]bool{}
	customers := 0
	for _, task := range f.wecom.Tasks() {
		owners[task.Sender] = true
		customers += len(task.ExternalUserID)
	}
	require.Len(t, owners, 4, "one mass-send task per owner")
	require.Equal(t, 40, customers)
	rep, err := reports.Build(ctx, app.Store(), "purchase-followup", 0)
	require.NoError(t, err)
	require.Equal(t, int64(40), fakesStepTotals(rep, "thank-you").Sent)

	// Trial expiry: the reminder by push, by SMS for those with no device;
	// after the (shortened) wait an SMS offer, A/B.
	started, err = app.StartRun(ctx, "trial-expiry", userIDs)
	require.NoError(t, err)
	res, err := app.WaitRun(ctx, started.WorkflowID)
	require.NoError(t, err)
	require.Equal(t, int64(40), res.Stats.Entered)

	// At the fakes: 36 pushes; SMS reminders to u017 and u025, then offers to
	// everyone but them (SMS cap 1 a day) and the two refused numbers.
	require.Equal(t, 36, f.push.Total())
	require.Zero(t, f.push.Count("u003"))
	require.Empty(t, f.push.Duplicates())
	require.Equal(t, 2+36, f.sms.Total())
	require.Equal(t, 1, f.sms.Count("13800130017"))
	require.Equal(t, 1, f.sms.Count("13800130001"))
	require.Zero(t, f.sms.Count("13800130003"))
	require.Zero(t, f.sms.Count("13800130010"))
	require.Empty(t, f.sms.Duplicates())
	templates := map[string]int{}
	for _, m := range f.sms.Sent() {
		templates[m.Template]++
		require.Equal(t, "华布", m.Sign)
		require.NotEmpty(t, m.Params["name"])
	}
	require.Equal(t, 2, templates["SMS_TRIAL_REMINDER"])
	require.Equal(t, 36, templates["SMS_TRIAL_DISCOUNT"]+templates["SMS_TRIAL_FIRST_MONTH"])
	require.Equal(t, map[fakes.Fault]int{fakes.ServerError: 1}, f.sms.Injected())
	require.Equal(t, map[fakes.Fault]int{fakes.HTTP5xx: 1}, f.push.Injected())

	// The report: failed by the providers' reasons, apart from what policy held back.
	rep, err = reports.Build(ctx, app.Store(), "trial-expiry", 0)
	require.NoError(t, err)
	refused := map[string]int64{"invalid_address": 1, "unsubscribed": 1}
	reminder := fakesStepTotals(rep, "reminder")
	require.Equal(t, int64(40), reminder.Entered)
	require.Equal(t, int64(38), reminder.Sent)
	require.Equal(t, refused, reminder.Failed)
	require.Empty(t, reminder.Suppressed)
	offer := fakesStepTotals(rep, "offer-discount", "offer-first-month")
	require.Equal(t, int64(40), offer.Entered)
	require.Equal(t, int64(36), offer.Sent)
	// Aliyun's refusal of the unsubscribed number in the reminder put it on
	// the suppression list: the offer does not try it again.
	require.Equal(t, map[string]int64{"invalid_address": 1}, offer.Failed)
	require.Equal(t, map[string]int64{"frequency_cap": 2, "unsubscribed": 1}, offer.Suppressed)
	var text bytes.Buffer
	require.NoError(t, rep.WriteText(&text))
	t.Logf("huabu report trial-expiry:\n%s", text.String())
	require.Regexp(t, `(?m)^reminder\s+40\s+38\s+2 \(invalid_address 1, unsubscribed 1\)\s+0\s`, text.String())
}
