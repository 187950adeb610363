package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// postJSON posts body to the app's API as a loopback client and decodes
// the answer into out; it returns the status code.
func postJSON(t *testing.T, app *App, path string, body, out any) int {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post("http://"+app.HTTPAddr()+path, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	return resp.StatusCode
}

// TestPreviewRendersAsARunWould: POST /api/v1/preview renders each message
// of a canvas for the users with their profile, their owner and opt-outs,
// as Send prepares it.
func TestPreviewRendersAsARunWould(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	f := startProviderFakes(t)
	app := startFakesApp(t, f, nil)
	ctx := context.Background()
	_, err := app.store.Suppress(ctx, []store.Suppression{{Subject: store.UserSubject("u004"), Channel: "sms", Source: "api", Display: "u004"}})
	require.NoError(t, err)

	var res server.PreviewResult
	require.Equal(t, 200, postJSON(t, app, "/api/v1/preview", server.PreviewRequest{Canvas: "winback-dormant", Users: []string{"u001", "u004"}}, &res))
	require.Equal(t, "winback-dormant", res.Canvas)
	got := map[string]string{}
	for _, m := range res.Messages {
		key := m.Step + "/" + m.User
		switch {
		case m.Unsent != "":
			got[key] = m.Channel + " unsent:" + m.Unsent
		case m.Message.Template != "":
			got[key] = m.Channel + " " + m.To + " " + m.Message.Template + " name=" + m.Message.Params["name"]
		default:
			got[key] = m.Channel + " " + m.To + " " + m.Message.Text
		}
	}
	require.Equal(t, map[string]string{
		"coupon/u001": "wecom.customer wmE*** (sent by lina) 好久不见！李娜为您准备了回归礼包：满 200 减 50 券已到账，7 天内有效。",
		"coupon/u004": got["coupon/u004"], // u004's owner, checked below
		"sms-a/u001":  "sms 138****0001 SMS_WINBACK_A name=徐静",
		"sms-b/u001":  "sms 138****0001 SMS_WINBACK_B name=徐静",
		"sms-a/u004":  "sms unsent:unsubscribed",
		"sms-b/u004":  "sms unsent:unsubscribed",
	}, got)
	require.Contains(t, got["coupon/u004"], "wecom.customer wmE*** (sent by ")
	require.Len(t, res.Messages, 6, "each push step once per user, in step order")
	require.Equal(t, "coupon", res.Messages[0].Step)

	// A canvas that is not deployed: its source, checked as a deploy checks it.
	src := "id: draft\ntrigger: {manual: {}}\nsteps:\n  - id: hi\n    push: {channel: push, title: 你好, text: '{{ .user.name }}，欢迎'}\n"
	require.Equal(t, 200, postJSON(t, app, "/api/v1/preview", server.PreviewRequest{File: "draft.yaml", Source: src, Users: []string{"u002"}}, &res))
	require.Len(t, res.Messages, 1)
	require.Equal(t, "黄芳，欢迎", res.Messages[0].Message.Text)
	var apiErr map[string]any
	require.Equal(t, 422, postJSON(t, app, "/api/v1/preview", server.PreviewRequest{File: "draft.yaml", Source: src + "  - id: hi\n", Users: []string{"u002"}}, &apiErr))
	require.Contains(t, apiErr["problems"].([]any)[0].(map[string]any)["file"], "draft.yaml")
	require.Equal(t, 404, postJSON(t, app, "/api/v1/preview", server.PreviewRequest{Canvas: "winback-dormant", Users: []string{"u001", "nobody"}}, &apiErr))
	require.Equal(t, "users", apiErr["field"])
	require.Contains(t, apiErr["error"], "nobody")
}

// TestTestSendThroughFakes: a test send reaches the provider fakes through
// the real channels, marked [TEST] where the channel shows text; it is in
// the audit log and leaves reports, frequency caps and the ledger as they
// were; opted-out users still get nothing.
func TestTestSendThroughFakes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	f := startProviderFakes(t)
	app := startFakesApp(t, f, nil)
	ctx := context.Background()
	_, err := app.store.Suppress(ctx, []store.Suppression{{Subject: store.UserSubject("u004"), Channel: "sms", Source: "api", Display: "u004"}})
	require.NoError(t, err)
	uidOf, err := app.store.UIDs(ctx, []string{"u001", "u002", "u004"})
	require.NoError(t, err)
	uids := []int64{uidOf["u001"], uidOf["u002"], uidOf["u004"]}
	reportOf := func(canvas string) string {
		rep, err := app.Report(ctx, canvas, 0)
		require.NoError(t, err)
		b, err := json.Marshal(rep)
		require.NoError(t, err)
		return string(b)
	}
	winbackBefore, cartBefore := reportOf("winback-dormant"), reportOf("cart-reminder")

	send := func(canvas string, req server.TestSendRequest) server.TestSendResult {
		t.Helper()
		var res server.TestSendResult
		require.Equal(t, 200, postJSON(t, app, "/api/v1/canvases/"+canvas+"/test-send", req, &res))
		return res
	}
	outcomes := func(res server.TestSendResult) map[string]string {
		out := map[string]string{}
		for _, s := range res.Sent {
			out[s.User] = s.Outcome
		}
		return out
	}

	// WeCom customer message: the marker is in the text the customer reads.
	res := send("winback-dormant", server.TestSendRequest{Step: "coupon", To: []string{"u001"}})
	require.Equal(t, map[string]string{"u001": "sent"}, outcomes(res))
	require.True(t, res.Sent[0].Marked)
	tasks := f.wecom.Tasks()
	require.Len(t, tasks, 1)
	require.Equal(t, []string{"wmEXT0001"}, tasks[0].ExternalUserID)
	require.Equal(t, "lina", tasks[0].Sender)
	require.True(t, strings.HasPrefix(tasks[0].Text, "[TEST] 好久不见！李娜为您准备了回归礼包"), tasks[0].Text)

	// App push: title and text marked.
	res = send("cart-reminder", server.TestSendRequest{Step: "remind", To: []string{"u001"}})
	require.Equal(t, map[string]string{"u001": "sent"}, outcomes(res))
	pushes := f.push.Pushes()
	require.Len(t, pushes, 1)
	require.Contains(t, string(pushes[0].Body), `"[TEST] 购物车提醒"`)
	require.Contains(t, string(pushes[0].Body), `[TEST] 徐静，您购物车里的商品还在等您`)

	// SMS: a template's text is the provider's, so it goes unmarked; the
	// test users are the config's; the unsubscribed one gets nothing. Twice,
	// over the 1-a-day SMS cap: caps neither hold a test back nor count it.
	app.cfg.TestUsers = []string{"u002", "u004"}
	for range 2 {
		res = send("winback-dormant", server.TestSendRequest{Step: "sms-a"})
		require.Equal(t, map[string]string{"u002": "sent", "u004": "unsent:unsubscribed"}, outcomes(res))
		require.False(t, res.Sent[0].Marked)
	}
	sms := f.sms.Sent()
	require.Len(t, sms, 2)
	for _, m := range sms {
		require.Equal(t, "13800130002", m.Phone)
		require.Equal(t, "SMS_WINBACK_A", m.Template)
		require.Equal(t, "黄芳", m.Params["name"])
	}

	// In no report, no cap, no quota.
	require.Equal(t, winbackBefore, reportOf("winback-dormant"))
	require.Equal(t, cartBefore, reportOf("cart-reminder"))
	touches, err := app.store.Touches(ctx, uids, time.Time{})
	require.NoError(t, err)
	require.Empty(t, touches, "no frequency-cap touch")

	// In the audit log, newest first.
	entries, err := app.store.Audit(ctx, store.AuditQuery{Action: "test-send"})
	require.NoError(t, err)
	require.Len(t, entries, 4)
	e := entries[0]
	require.Equal(t, "winback-dormant", e.CanvasID)
	require.NotEmpty(t, e.PlanHash)
	require.NotEmpty(t, e.Actor)
	var detail struct {
		Step     string            `json:"step"`
		To       []string          `json:"to"`
		Outcomes map[string]string `json:"outcomes"`
	}
	require.NoError(t, json.Unmarshal(e.Detail, &detail))
	require.Equal(t, "sms-a", detail.Step)
	require.Equal(t, []string{"u002", "u004"}, detail.To)
	require.Equal(t, map[string]string{"u002": "sent", "u004": "unsent:unsubscribed"}, detail.Outcomes)
	require.Equal(t, "cart-reminder", entries[2].CanvasID)

	// Mistakes are named.
	var apiErr map[string]any
	for _, tc := range []struct {
		canvas string
		req    server.TestSendRequest
		code   int
		field  string
	}{
		{"winback-dormant", server.TestSendRequest{Step: "wait-coupon", To: []string{"u001"}}, 400, "step"},
		{"winback-dormant", server.TestSendRequest{Step: "nope", To: []string{"u001"}}, 404, "step"},
		{"winback-dormant", server.TestSendRequest{Step: "coupon", To: []string{"nobody"}}, 404, "to"},
		{"nope", server.TestSendRequest{Step: "coupon", To: []string{"u001"}}, 404, "id"},
	} {
		require.Equal(t, tc.code, postJSON(t, app, "/api/v1/canvases/"+tc.canvas+"/test-send", tc.req, &apiErr), "%+v", tc)
		require.Equal(t, tc.field, apiErr["field"], "%+v", tc)
	}
	require.Len(t, f.wecom.Tasks(), 1, "nothing more was sent")
}
