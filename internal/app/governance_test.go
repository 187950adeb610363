package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// Tokens of the governance tests.
var govTokens = map[string]string{
	"alice": "alice-operator-0123456789abcdef", // operator
	"bob":   "bob-approver-0123456789abcdef",   // approver
	"carol": "carol-admin-0123456789abcdef",    // admin
	"vic":   "vic-viewer-0123456789abcdef",     // viewer
}

// startGovernedApp runs Huabu with tokens, more config (configTail: top
// level keys) and the given canvases in a temporary directory; profiles
// u1..u3 exist.
func startGovernedApp(t *testing.T, configTail string, canvasFiles map[string]string) *App {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	for name, body := range canvasFiles {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", name), []byte(body), 0o644))
	}
	text := `canvases: ./canvases
http: {listen: "127.0.0.1:0"}
profile: {attributes: {name: string, phone: string, marketing_ok: bool}}
auth:
  tokens:
    - {name: alice, role: operator, token: ` + govTokens["alice"] + `}
    - {name: bob, role: approver, token: ` + govTokens["bob"] + `}
    - {name: carol, role: admin, token: ` + govTokens["carol"] + `}
    - {name: vic, role: viewer, token: ` + govTokens["vic"] + `}
` + configTail
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(text))
	require.NoError(t, err)
	app := startAppIn(t, cfg, dir)
	_, err = app.Store().UpsertProfiles(context.Background(), []store.ProfileUpdate{
		{ID: "u1", Patch: []byte(`{"name": "一", "phone": "13800000001"}`)},
		{ID: "u2", Patch: []byte(`{"name": "二", "phone": "13800000002"}`)},
		{ID: "u3", Patch: []byte(`{"name": "三", "phone": "13800000003"}`)},
	})
	require.NoError(t, err)
	return app
}

// as calls the admin API with a token and decodes the answer.
func as(t *testing.T, app *App, who, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+app.AdminAddr()+path, rd)
	require.NoError(t, err)
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+govTokens[who])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	return resp.StatusCode, out
}

const promoV1 = `id: promo
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: outbox, text: "第一版"}
`

func TestApprovalPerPlanHash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startGovernedApp(t, "policy:\n  approval: {required: true}\n", map[string]string{"promo.yaml": promoV1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code, body := as(t, app, "vic", "GET", "/api/v1/canvases", nil)
	require.Equal(t, 200, code)
	first := body["canvases"].([]any)[0].(map[string]any)
	require.Equal(t, "awaiting approval", first["approval"])
	require.Equal(t, "system", first["author"], "deployed from the canvases directory at start")

	// Unapproved: the run does not start, and the error says why and what to do.
	code, body = as(t, app, "alice", "POST", "/api/v1/canvases/promo/runs", map[string]any{})
	require.Equal(t, 409, code)
	require.Contains(t, body["error"], "awaiting approval")
	require.Contains(t, body["error"], "huabu approve promo --plan ")

	// carol deploys a new version and may not approve her own; bob may.
	v2 := strings.Replace(promoV1, "第一版", "第二版", 1)
	code, body = as(t, app, "carol", "POST", "/api/v1/deploy", map[string]any{"files": map[string]string{"promo.yaml": v2}})
	require.Equal(t, 200, code)
	deployed := body["canvases"].([]any)[0].(map[string]any)
	require.Equal(t, "awaiting approval", deployed["approval"])
	v2Hash := deployed["plan"].(string)
	code, body = as(t, app, "carol", "POST", "/api/v1/canvases/promo/approve", nil)
	require.Equal(t, 403, code)
	require.Contains(t, body["error"], "carol deployed version")
	code, _ = as(t, app, "alice", "POST", "/api/v1/canvases/promo/approve", nil)
	require.Equal(t, 403, code, "operators do not approve")
	code, body = as(t, app, "bob", "POST", "/api/v1/canvases/promo/approve", map[string]any{"plan": v2Hash})
	require.Equal(t, 200, code, body)
	require.Equal(t, "bob", body["approver"])
	require.Equal(t, "carol", body["author"])

	code, body = as(t, app, "alice", "POST", "/api/v1/canvases/promo/runs", map[string]any{"user_ids": []string{"u1", "u2"}})
	require.Equal(t, 202, code, body)
	res, err := app.WaitRun(ctx, body["workflow_id"].(string))
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Stats.Sent)

	// A third version needs a new approval; redeploying the approved second
	// one makes it runnable again (the approval is for that exact content).
	v3 := strings.Replace(promoV1, "第一版", "第三版", 1)
	code, _ = as(t, app, "alice", "POST", "/api/v1/deploy", map[string]any{"files": map[string]string{"promo.yaml": v3}})
	require.Equal(t, 200, code)
	code, body = as(t, app, "alice", "POST", "/api/v1/canvases/promo/runs", map[string]any{})
	require.Equal(t, 409, code, body)
	c, err := app.Store().Canvas(ctx, "promo")
	require.NoError(t, err)
	v3Hash := c.PlanHash

	// A run of the unapproved version that does not come through the API
	// (a schedule's or the event router's) ends at its first activity.
	run, err := app.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: app.cfg.Temporal.TaskQueue}, workflows.RunName,
		workflows.RunInput{CanvasID: "promo", PlanHash: v3Hash, Trigger: canvases.TriggerSchedule})
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	require.ErrorContains(t, err, "awaiting approval")

	code, _ = as(t, app, "alice", "POST", "/api/v1/deploy", map[string]any{"files": map[string]string{"promo.yaml": v2}})
	require.Equal(t, 200, code)
	code, body = as(t, app, "alice", "POST", "/api/v1/canvases/promo/runs", map[string]any{"user_ids": []string{"u3"}})
	require.Equal(t, 202, code, body)

	// The audit log has each action, who did it and from where; viewers read it.
	code, body = as(t, app, "vic", "GET", "/api/v1/audit?canvas=promo", nil)
	require.Equal(t, 200, code)
	var got []string
	for _, e := range body["entries"].([]any) {
		m := e.(map[string]any)
		got = append(got, m["actor"].(string)+" "+m["action"].(string))
		if m["actor"] != "system" {
			require.Equal(t, "127.0.0.1", m["remote"])
		}
	}
	require.Equal(t, []string{"alice run", "alice deploy", "alice deploy", "alice run", "bob approve", "carol deploy", "system deploy"}, got, "newest first")

	// The version history (console): each deployment with its YAML, who
	// and when — the rollback to v2 is a deployment of its own.
	versions, err := app.CanvasVersions(ctx, "promo")
	require.NoError(t, err)
	var history []string
	for _, v := range versions {
		full, err := app.CanvasVersion(ctx, "promo", v.ID)
		require.NoError(t, err)
		history = append(history, v.Author+" "+full.Source)
	}
	require.Equal(t, []string{"alice " + v2, "alice " + v3, "carol " + v2, "system " + promoV1}, history, "newest first")
	_, err = app.CanvasVersion(ctx, "promo", versions[0].ID+1)
	require.ErrorIs(t, err, server.ErrNotFound)
}

func TestApprovalHoldsSchedules(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startGovernedApp(t, "policy:\n  approval: {channels: [sms]}\n", map[string]string{
		"weekly.yaml": `id: weekly
trigger: {schedule: {cron: "0 10 * * MON"}}
steps:
  - {id: sms, push: {channel: sms, template: SMS_1}}
`,
		"digest.yaml": `id: digest
trigger: {schedule: {cron: "0 9 * * *"}}
steps:
  - {id: note, push: {channel: outbox, text: "hi"}}
`,
	})
	ctx := context.Background()
	paused := func(id string) (bool, string) {
		d, err := app.Client().ScheduleClient().GetHandle(ctx, schedulePrefix+id).Describe(ctx)
		require.NoError(t, err)
		return d.Schedule.State.Paused, d.Schedule.State.Note
	}
	p, note := paused("weekly")
	require.True(t, p, "an SMS canvas needs approval: its schedule waits")
	require.Contains(t, note, "awaiting approval")
	p, _ = paused("digest")
	require.False(t, p, "approval is only for canvases that send SMS")

	code, _ := as(t, app, "bob", "POST", "/api/v1/canvases/weekly/approve", nil)
	require.Equal(t, 200, code)
	p, _ = paused("weekly")
	require.False(t, p, "approved: the schedule runs")
}

// TestApprovalAboveN: with policy.approval: {above: 3}, a version whose run
// would reach more than three users (the audience estimate, or the users a
// manual run names) needs an approval; one that reaches fewer does not.
func TestApprovalAboveN(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	canvas := func(id, audience string) string {
		return "id: " + id + "\ntrigger: {manual: {}}\n" + audience + "steps:\n  - {id: hello, push: {channel: outbox, text: 你好}}\n"
	}
	app := startGovernedApp(t, "policy:\n  approval: {above: 3}\n", map[string]string{
		"few.yaml":  canvas("few", "audience: 'user.name == \"一\"'\n"),
		"many.yaml": canvas("many", ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := app.Store().UpsertProfiles(ctx, []store.ProfileUpdate{
		{ID: "u4", Patch: []byte(`{"name": "四"}`)}, {ID: "u5", Patch: []byte(`{"name": "五"}`)},
	})
	require.NoError(t, err)
	run := func(canvas string, body map[string]any) (int, map[string]any) {
		return as(t, app, "alice", "POST", "/api/v1/canvases/"+canvas+"/runs", body)
	}
	sent := func(body map[string]any) int64 {
		res, err := app.WaitRun(ctx, body["workflow_id"].(string))
		require.NoError(t, err)
		return res.Stats.Sent
	}

	code, body := run("few", map[string]any{})
	require.Equal(t, 202, code, "one user in the audience: no approval needed")
	require.Equal(t, int64(1), sent(body))
	code, body = run("many", map[string]any{})
	require.Equal(t, 409, code, "five users in the audience")
	require.Contains(t, body["error"], "awaiting approval")
	code, body = run("many", map[string]any{"user_ids": []string{"u1", "u2"}})
	require.Equal(t, 202, code, "a run that names two users reaches two")
	require.Equal(t, int64(2), sent(body))

	code, body = as(t, app, "bob", "POST", "/api/v1/canvases/many/approve", nil)
	require.Equal(t, 200, code, body)
	code, body = run("many", map[string]any{})
	require.Equal(t, 202, code, body)
	require.Equal(t, int64(5), sent(body))

	code, body = as(t, app, "vic", "GET", "/api/v1/canvases", nil)
	require.Equal(t, 200, code)
	approval := map[string]any{}
	for _, c := range body["canvases"].([]any) {
		m := c.(map[string]any)
		approval[m["id"].(string)] = m["approval"]
	}
	require.Equal(t, map[string]any{"few": nil, "many": "approved"}, approval)
}
