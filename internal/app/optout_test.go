package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/store"
)

const replyToken = "reply-token-0123456789abcdef"

// TestSuppressionSourcesAndForget: opt-outs from the API, from an SMS reply
// pushed by Aliyun, and from Aliyun refusing a number are all enforced on
// the next marketing send with reason unsubscribed; a transactional canvas
// still reaches them; forget removes a user and what identifies them, and
// the same id coming back is a new user. Each action is in the audit log.
func TestSuppressionSourcesAndForget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	sms := fakes.NewAliyunSMS("demo-key", "demo-secret")
	t.Cleanup(sms.Close)
	sms.Refused = map[string]bool{"13800000003": true} // unsubscribed at the carrier: Aliyun refuses it
	app := startGovernedApp(t, fmt.Sprintf(`channels:
  sms: {provider: aliyun, endpoint: %q, access_key_id: demo-key, access_key_secret: demo-secret, sign_name: 华布, reply_token: %s}
`, sms.Endpoint(), replyToken), map[string]string{
		"promo.yaml": `id: promo
trigger: {manual: {}}
steps:
  - {id: offer, push: {channel: sms, template: SMS_PROMO}}
`,
		"otp.yaml": `id: otp
trigger: {manual: {}}
policy: {kind: transactional}
steps:
  - {id: code, push: {channel: sms, template: SMS_CODE}}
`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := app.Store().UpsertProfiles(ctx, []store.ProfileUpdate{
		{ID: "u4", Patch: []byte(`{"name": "四", "phone": "13800000004"}`)},
		{ID: "u5", Patch: []byte(`{"name": "五", "phone": "+86 138 0000 0005"}`)},
	})
	require.NoError(t, err)
	_, err = app.Store().Ingest(ctx, []store.Message{{Type: "track", MessageID: "m-u4", UserID: "u4", Name: "purchase", Properties: []byte(`{"amount": 5}`), Timestamp: time.Now()}}, store.IngestOptions{})
	require.NoError(t, err)
	oldUID, err := app.Store().UIDs(ctx, []string{"u4"})
	require.NoError(t, err)

	// The API: alice takes u1 off every channel.
	code, body := as(t, app, "alice", "POST", "/api/v1/suppressions", map[string]any{"users": []string{"u1"}, "reason": "asked by phone"})
	require.Equal(t, 200, code, body)
	require.Equal(t, float64(1), body["added"])
	// An SMS reply: u2 answers ＴＤ (full width); Aliyun pushes it to /sms/replies.
	url := "http://" + app.HTTPAddr() + "/sms/replies?token=" + replyToken
	require.NoError(t, sms.Reply(ctx, url, "13800000002", "ＴＤ"))
	require.NoError(t, sms.Reply(ctx, url, "13800000004", "好的，谢谢"), "an ordinary reply unsubscribes nobody")
	require.ErrorContains(t, sms.Reply(ctx, "http://"+app.HTTPAddr()+"/sms/replies?token=wrong", "13800000005", "TD"), "403")

	run := func(canvas string) reports.Report {
		t.Helper()
		code, body := as(t, app, "alice", "POST", "/api/v1/canvases/"+canvas+"/runs", map[string]any{})
		require.Equal(t, 202, code, body)
		res, err := app.WaitRun(ctx, body["workflow_id"].(string))
		require.NoError(t, err)
		rep, err := app.Report(ctx, canvas, res.RunID)
		require.NoError(t, err)
		return *rep
	}
	rep := run("promo")
	step := rep.Steps[0]
	require.Equal(t, int64(2), step.Sent, "u4 and u5")
	require.Equal(t, map[string]int64{"unsubscribed": 2}, step.Suppressed, "u1 (API) and u2 (reply)")
	require.Equal(t, map[string]int64{"unsubscribed": 1}, step.Failed, "u3: Aliyun refused it")
	before := len(sms.Sent())

	// The refusal put u3's number on the list: the next send does not try it.
	rep = run("promo")
	require.Equal(t, map[string]int64{"unsubscribed": 3}, rep.Steps[0].Suppressed)
	require.Empty(t, rep.Steps[0].Failed)
	require.Equal(t, before+2, len(sms.Sent()), "only u4 and u5 reached Aliyun")

	// Transactional canvases are exempt: the code reaches u1 and u2 (Aliyun
	// itself still refuses u3).
	rep = run("otp")
	require.Equal(t, int64(4), rep.Steps[0].Sent)
	require.Empty(t, rep.Steps[0].Suppressed)

	code, body = as(t, app, "vic", "GET", "/api/v1/suppressions", nil)
	require.Equal(t, 200, code)
	sources := map[string]string{}
	for _, e := range body["suppressions"].([]any) {
		m := e.(map[string]any)
		sources[m["display"].(string)] = m["source"].(string)
	}
	require.Equal(t, map[string]string{"u1": "api", "138****0002": "aliyun_reply", "138****0003": "provider_refusal"}, sources,
		"numbers are kept as hashes, shown masked")

	// Removing u1's entry lets marketing reach u1 again.
	code, body = as(t, app, "alice", "POST", "/api/v1/suppressions/remove", map[string]any{"users": []string{"u1"}})
	require.Equal(t, 200, code)
	require.Equal(t, float64(1), body["removed"])

	// u2 is suppressed by number; forgetting u2 keeps that. u4 is forgotten
	// with their events; coming back, u4 is someone new.
	code, _ = as(t, app, "alice", "DELETE", "/api/v1/users/u4", nil)
	require.Equal(t, 403, code, "operators cannot delete users")
	code, body = as(t, app, "carol", "POST", "/api/v1/users/forget", map[string]any{"users": []string{"u4", "u2", "nobody"}})
	require.Equal(t, 200, code, body)
	require.Equal(t, float64(2), body["forgotten"])
	require.Equal(t, []any{"nobody"}, body["unknown"])
	require.Equal(t, float64(1), body["events"])
	code, _ = as(t, app, "carol", "DELETE", "/api/v1/users/u4", nil)
	require.Equal(t, 404, code, "already forgotten")
	_, err = app.Store().ProfileByID(ctx, "u4")
	require.ErrorIs(t, err, store.ErrNotFound)
	evs, err := app.Store().UserEvents(ctx, "u4")
	require.NoError(t, err)
	require.Empty(t, evs)
	_, err = app.Store().UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u4", Patch: []byte(`{"phone": "13800000004"}`)}})
	require.NoError(t, err)
	newUID, err := app.Store().UIDs(ctx, []string{"u4"})
	require.NoError(t, err)
	require.NotEqual(t, oldUID["u4"], newUID["u4"], "a forgotten user who comes back is a new user")
	rep = run("promo")
	require.Equal(t, int64(3), rep.Steps[0].Sent, "u1 (no longer suppressed), the new u4, u5")
	require.Equal(t, map[string]int64{"unsubscribed": 1}, rep.Steps[0].Suppressed, "u3; u2 is gone")
	all, err := app.Report(ctx, "promo", 0)
	require.NoError(t, err)
	require.Equal(t, int64(14), all.Entered, "reports keep the forgotten users' counts: 5 + 5 + 4")

	code, body = as(t, app, "vic", "GET", "/api/v1/audit", nil)
	require.Equal(t, 200, code)
	var got []string
	for _, e := range body["entries"].([]any) {
		m := e.(map[string]any)
		if a := m["action"].(string); a == "suppress" || a == "unsuppress" || a == "forget" {
			got = append(got, m["actor"].(string)+" "+a+" "+fmt.Sprint(m["detail"]))
		}
	}
	require.Len(t, got, 4)
	require.Contains(t, got[0], "carol forget")
	require.NotContains(t, got[0], "u4", "the audit log does not keep forgotten ids")
	require.Contains(t, got[1], "alice unsuppress")
	require.Contains(t, got[2], "aliyun_reply suppress")
	require.Contains(t, got[3], "alice suppress")
}

// TestRequireConsent: with policy.require_consent, marketing goes only to
// users whose trait is true; transactional canvases need no consent.
func TestRequireConsent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startGovernedApp(t, `policy: {require_consent: marketing_ok}
`, map[string]string{
		"promo.yaml":  "id: promo\ntrigger: {manual: {}}\nsteps:\n  - {id: offer, push: {channel: outbox, text: hi}}\n",
		"notice.yaml": "id: notice\ntrigger: {manual: {}}\npolicy: {kind: transactional}\nsteps:\n  - {id: note, push: {channel: outbox, text: bill}}\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := app.Store().UpsertProfiles(ctx, []store.ProfileUpdate{
		{ID: "u1", Patch: []byte(`{"marketing_ok": true}`)},
		{ID: "u2", Patch: []byte(`{"marketing_ok": false}`)},
	}) // u3 never said
	require.NoError(t, err)
	for canvas, want := range map[string][2]int64{"promo": {1, 2}, "notice": {3, 0}} {
		code, body := as(t, app, "alice", "POST", "/api/v1/canvases/"+canvas+"/runs", map[string]any{})
		require.Equal(t, 202, code, body)
		res, err := app.WaitRun(ctx, body["workflow_id"].(string))
		require.NoError(t, err)
		rep, err := app.Report(ctx, canvas, res.RunID)
		require.NoError(t, err)
		require.Equal(t, want[0], rep.Steps[0].Sent, canvas)
		if want[1] > 0 {
			require.Equal(t, map[string]int64{"no_consent": want[1]}, rep.Steps[0].Suppressed, canvas)
		}
	}
}
