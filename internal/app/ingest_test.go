package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// accepted is the SDK's callback: when each message was accepted (the
// batch carrying it was answered 200) or why it failed.
type accepted struct {
	mu   sync.Mutex
	at   map[string]time.Time
	errs []error
}

func (a *accepted) Success(m analytics.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at[messageID(m)] = time.Now()
}

func (a *accepted) Failure(m analytics.Message, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, fmt.Errorf("%s: %w", messageID(m), err))
}

func messageID(m analytics.Message) string {
	switch m := m.(type) {
	case analytics.Identify:
		return m.MessageId
	case analytics.Track:
		return m.MessageId
	case analytics.Page:
		return m.MessageId
	case analytics.Alias:
		return m.MessageId
	}
	return ""
}

func (a *accepted) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.at, id)
}

// wait returns when the message was accepted.
func (a *accepted) wait(t *testing.T, id string) time.Time {
	t.Helper()
	var at time.Time
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		require.Empty(t, a.errs)
		at = a.at[id]
		return !at.IsZero()
	}, 30*time.Second, 2*time.Millisecond, "message %s not accepted", id)
	return at
}

// countingTransport records how many messages each /v1/batch request carried.
type countingTransport struct {
	mu      sync.Mutex
	batches []int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && strings.HasSuffix(r.URL.Path, "/v1/batch") {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body.Close()
		var b struct{ Batch []json.RawMessage }
		_ = json.Unmarshal(body, &b)
		c.mu.Lock()
		c.batches = append(c.batches, len(b.Batch))
		c.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) largest() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Max(append([]int{0}, c.batches...))
}

type quietLogger struct{ t *testing.T }

func (l quietLogger) Logf(format string, args ...any)   {}
func (l quietLogger) Errorf(format string, args ...any) { l.t.Logf("analytics: "+format, args...) }

func profileDoc(t *testing.T, app *App, id string) map[string]any {
	t.Helper()
	// The API answers once a request is in the accept log; the store has
	// it a moment later.
	require.NoError(t, app.WaitIngested(context.Background()))
	row, err := app.Store().ProfileByID(context.Background(), id)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(row.Doc, &doc))
	return doc
}

func hasTag(doc map[string]any, tag string) bool {
	tags, _ := doc["tags"].([]any)
	return slices.Contains(tags, any(tag))
}

// TestSegmentClientEndToEnd is the acceptance of issue 4 as a new user
// tries it: an app sends identify, track and batches through the real
// Segment Go SDK (analytics-go v3.3.0) pointed at Huabu, with the example
// config's dev write key. A purchase puts the purchase follow-up's message
// in the outbox within a second; a dormant customer who got the win-back
// coupon and then uses it leaves the wait by the used path at once.
func TestSegmentClientEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startExampleApp(t, nil)
	ctx := context.Background()
	require.NotEmpty(t, app.cfg.HTTP.WriteKeys, "the example config has a dev write key")
	cb := &accepted{at: map[string]time.Time{}}
	transport := &countingTransport{}
	client, err := analytics.NewWithConfig(app.cfg.HTTP.WriteKeys[0], analytics.Config{
		Endpoint: "http://" + app.HTTPAddr(), Interval: 20 * time.Millisecond, BatchSize: 100,
		Callback: cb, Transport: transport, Logger: quietLogger{t},
	})
	require.NoError(t, err)
	defer client.Close()

	// Identify: a new customer with the traits the channels read.
	require.NoError(t, client.Enqueue(analytics.Identify{MessageId: "id-sdk-001", UserId: "sdk-001",
		Traits: analytics.NewTraits().SetName("周婷").SetPhone("13900000001").Set("city", "上海").Set("level", "金卡").
			Set("owner", "lina").Set("wecom_external_userid", "wmEXTsdk1")}))
	cb.wait(t, "id-sdk-001")
	doc := profileDoc(t, app, "sdk-001")
	require.Equal(t, "周婷", doc["name"])
	require.Equal(t, "上海", doc["city"])

	// Track: a purchase of 500 or more starts the follow-up, whose first
	// step sends at once.
	sent := time.Now()
	require.NoError(t, client.Enqueue(analytics.Track{MessageId: "buy-sdk-001", UserId: "sdk-001", Event: "purchase",
		Properties: analytics.NewProperties().Set("amount", 688).Set("order_id", "o-1001").Set("sku", "SKU-1")}))
	acceptedAt := cb.wait(t, "buy-sdk-001")
	var msg store.OutboxMessage
	require.Eventually(t, func() bool {
		msgs, err := app.Store().Outbox(ctx, "purchase-followup", 100)
		require.NoError(t, err)
		for _, m := range msgs {
			if m.UserID == "sdk-001" && m.StepID == "thank-you" {
				msg = m
				return true
			}
		}
		return false
	}, 30*time.Second, 5*time.Millisecond)
	seen := time.Now()
	// The latency target (within a second) is measured by `huabu bench
	// events` (p50/p99, README), not here: on a machine shared with the
	// rest of the suite a wall-time bound only flakes.
	t.Logf("purchase sent → accepted %s → thank-you in the outbox %s (row written %s after acceptance)",
		acceptedAt.Sub(sent).Round(time.Millisecond), seen.Sub(acceptedAt).Round(time.Millisecond), msg.CreatedAt.Sub(acceptedAt).Round(time.Millisecond))
	require.Contains(t, string(msg.Message), "感谢您的信任")

	// The traits follow the purchase.
	require.NoError(t, app.WaitTraits(ctx))
	traits, _ := profileDoc(t, app, "sdk-001")["traits"].(map[string]any)
	require.Equal(t, 1.0, traits["orders_30d"])
	require.Equal(t, 688.0, traits["spend_90d"])

	// A batch: several calls the SDK sends in one /v1/batch request.
	batch := []analytics.Message{
		analytics.Identify{MessageId: "id-sdk-002", UserId: "sdk-002", Traits: analytics.NewTraits().SetName("钱磊").Set("city", "杭州")},
		analytics.Track{MessageId: "open-sdk-002", UserId: "sdk-002", Event: "app_open"},
		analytics.Track{MessageId: "buy-sdk-002", UserId: "sdk-002", Event: "purchase", Properties: analytics.NewProperties().Set("amount", 120)},
		analytics.Page{MessageId: "page-anon", AnonymousId: "anon-7", Name: "home"},
		analytics.Alias{MessageId: "alias-anon", PreviousId: "anon-7", UserId: "sdk-002"},
	}
	for _, m := range batch {
		require.NoError(t, client.Enqueue(m))
	}
	for _, m := range batch {
		cb.wait(t, messageID(m))
	}
	require.GreaterOrEqual(t, transport.largest(), 2, "the SDK batched the calls")
	require.NoError(t, app.WaitIngested(ctx)) // answered on acceptance; stored a moment later
	evs, err := app.Store().UserEvents(ctx, "sdk-002")
	require.NoError(t, err)
	var names []string
	for _, e := range evs {
		names = append(names, e.Type+":"+e.Name)
	}
	require.ElementsMatch(t, []string{"identify:", "track:app_open", "track:purchase", "page:page", "alias:"}, names, "the page of anon-7 moved to sdk-002 with the alias")
	require.Equal(t, "钱磊", profileDoc(t, app, "sdk-002")["name"])
	// A purchase under 500 starts no follow-up; resending a message stores nothing twice.
	cb.forget("buy-sdk-002")
	require.NoError(t, client.Enqueue(batch[2]))
	cb.wait(t, "buy-sdk-002")
	time.Sleep(300 * time.Millisecond)
	require.False(t, outboxOf(t, app, "purchase-followup", "thank-you")["sdk-002"])
	require.NoError(t, app.WaitIngested(ctx))
	evs, err = app.Store().UserEvents(ctx, "sdk-002")
	require.NoError(t, err)
	require.Len(t, evs, 5, "messageId dedupes")

	// The dormant win-back: a big spender whose purchases are half a year
	// old (imported history, as `huabu import events` loads it) and recent
	// small buyers; RFM makes the first dormant and valuable.
	for i, u := range []string{"w-old", "w-r1", "w-r2", "w-r3", "w-r4", "w-r5", "w-r6"} {
		require.NoError(t, client.Enqueue(analytics.Identify{MessageId: "id-" + u, UserId: u,
			Traits: analytics.NewTraits().SetName("客户"+u).SetPhone(fmt.Sprintf("1390000010%d", i)).Set("owner", "lina").Set("wecom_external_userid", "wmEXT"+u)}))
	}
	cb.wait(t, "id-w-r6")
	var history strings.Builder
	now := time.Now()
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&history, `{"userId":"w-old","event":"purchase","properties":{"amount":900},"timestamp":%q}`+"\n", now.AddDate(0, 0, -200+i).Format(time.RFC3339))
	}
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&history, `{"userId":"w-r%d","event":"purchase","properties":{"amount":%d},"timestamp":%q}`+"\n", i, 20+i, now.AddDate(0, 0, -i).Format(time.RFC3339))
	}
	schema, err := app.cfg.Schema()
	require.NoError(t, err)
	sum, err := ingest.ImportEvents(ctx, app.Store(), ingest.NewValidator(schema), strings.NewReader(history.String()), ingest.Options{})
	require.NoError(t, err)
	require.Equal(t, 12, sum.Imported)
	require.NoError(t, app.WaitTraits(ctx))
	require.NoError(t, app.traits.RefreshRFM(ctx))
	old := profileDoc(t, app, "w-old")
	rfm, _ := old["rfm"].(map[string]any)
	require.Equal(t, 1.0, rfm["r"], old)
	require.Equal(t, 5.0, rfm["m"], old)
	require.True(t, hasTag(old, "dormant"), old)
	require.Empty(t, outboxOf(t, app, "purchase-followup", "thank-you")["w-old"], "imported history starts no journey")

	// Monday 10:00: the win-back sends the coupon and waits for its use.
	require.NoError(t, app.TriggerSchedule(ctx, "winback-dormant"))
	var run store.Run
	require.Eventually(t, func() bool {
		runs, err := app.Store().Runs(ctx, "winback-dormant", 1)
		if err != nil || len(runs) == 0 {
			return false
		}
		run = runs[0]
		wf, _, _ := strings.Cut(run.WorkflowID, "/") // workflow id / run id
		st, err := app.RunStatus(ctx, wf)
		require.NoError(t, err)
		require.Contains(t, []string{"Running", "Completed"}, st.Status)
		return st.Active == 0 && st.Waiting != nil
	}, 60*time.Second, 20*time.Millisecond, "run %+v", &run)
	require.True(t, outboxOf(t, app, "winback-dormant", "coupon")["w-old"], "the dormant big spender got the coupon")

	sent = time.Now()
	require.NoError(t, client.Enqueue(analytics.Track{MessageId: "coupon-w-old", UserId: "w-old", Event: "coupon_used",
		Properties: analytics.NewProperties().Set("coupon", "WB50")}))
	acceptedAt = cb.wait(t, "coupon-w-old")
	require.Eventually(t, func() bool { return hasTag(profileDoc(t, app, "w-old"), "winback-converted") }, 30*time.Second, 5*time.Millisecond)
	t.Logf("coupon_used accepted → left the wait by the used path (tagged) in %s", time.Since(acceptedAt).Round(time.Millisecond))
	counts, _, err := app.Store().Counts(ctx, "winback-dormant", run.ID)
	require.NoError(t, err)
	require.NotNil(t, counts["thanks"])
	require.Equal(t, int64(1), counts["thanks"].Entered)
	if n := counts["nudge"]; n != nil {
		require.Zero(t, n.Entered)
	}
}

// TestIngestionAtTheApp checks the ingestion routes of the running app
// with plain HTTP: the write key, and 4xx JSON naming the problem with
// nothing stored (ingest's handler tests cover every case).
func TestIngestionAtTheApp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startExampleApp(t, map[string]string{"first-order.yaml": `
id: first-order
trigger:
  event: {name: purchase, when: 'user.traits.orders_30d == 1'}
steps:
  - id: welcome
    push: {channel: outbox, text: 首单礼}
`})
	ctx := context.Background()
	key := app.cfg.HTTP.WriteKeys[0]
	require.True(t, app.currentRouter().ReadsUser([]ingest.Event{{Name: "purchase"}}), "first-order reads user.traits")
	require.False(t, app.currentRouter().ReadsUser([]ingest.Event{{Name: "coupon_used"}, {Name: "app_open"}}))
	post := func(path, body, auth string) (int, map[string]any) {
		req, err := http.NewRequest("POST", "http://"+app.HTTPAddr()+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	before, err := app.Store().CountEvents(ctx)
	require.NoError(t, err)
	huge := `{"batch":[` + strings.Repeat(`{"type":"track","userId":"u1","event":"e","properties":{"pad":"`+strings.Repeat("y", 20000)+`"}},`, 30) + `{"type":"track","userId":"u1","event":"e"}]}`
	for _, tc := range []struct {
		name, path, body, auth string
		code                   int
		field, msg             string
	}{
		{"no key", "/v1/track", `{"userId":"u001","event":"purchase"}`, "", 401, "Authorization", "write key"},
		{"wrong key", "/v1/track", `{"userId":"u001","event":"purchase"}`, "Bearer nope", 401, "Authorization", "write key"},
		{"malformed JSON", "/v1/track", `{"userId":"u001","event":`, "Bearer " + key, 400, "", "invalid JSON"},
		{"no user", "/v1/batch", `{"batch":[{"type":"track","userId":"u001","event":"x"},{"type":"track","event":"purchase"}]}`, "Bearer " + key, 400, "batch[1].userId", "userId or anonymousId is required"},
		{"wrong type", "/v1/track", `{"userId":"u001","event":"purchase","properties":{"amount":"lots"}}`, "Bearer " + key, 400, "properties.amount", "expected a number"},
		{"oversize batch", "/v1/batch", huge, "Bearer " + key, 400, "batch", "500 KB"},
	} {
		code, out := post(tc.path, tc.body, tc.auth)
		require.Equal(t, tc.code, code, tc.name)
		field, _ := out["field"].(string)
		require.Equal(t, tc.field, field, tc.name)
		require.Contains(t, out["error"], tc.msg, tc.name)
	}
	require.NoError(t, app.WaitIngested(ctx))
	after, err := app.Store().CountEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing from a refused request is stored")

	code, out := post("/v1/track", `{"userId":"u003","event":"purchase","properties":{"amount":520}}`, "Bearer "+key)
	require.Equal(t, 200, code)
	require.Equal(t, true, out["success"])
	require.Eventually(t, func() bool { return outboxOf(t, app, "purchase-followup", "thank-you")["u003"] }, 30*time.Second, 5*time.Millisecond)
	// The trigger condition over the computed traits saw this purchase
	// counted: the feed had the traits recomputed before routing it.
	require.Eventually(t, func() bool { return outboxOf(t, app, "first-order", "welcome")["u003"] }, 30*time.Second, 5*time.Millisecond)
	code, _ = post("/v1/track", `{"userId":"u003","event":"purchase","properties":{"amount":30}}`, "Basic "+base64.StdEncoding.EncodeToString([]byte(key+":")))
	require.Equal(t, 200, code)
	require.NoError(t, app.WaitTraits(ctx))
	time.Sleep(300 * time.Millisecond)
	msgs, err := app.Store().Outbox(ctx, "first-order", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1, "the second purchase is not a first order")

	// The ingestion counters are on /metrics.
	resp, err := http.Get("http://" + app.HTTPAddr() + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `huabu_ingest_messages_total{outcome="accepted",type="track"} 2`)
	require.Contains(t, string(body), "huabu_ingest_applied_messages_total 2\n")
	require.Contains(t, string(body), `huabu_ingest_rejected_requests_total{reason="auth"} 2`)
	// So are the deliveries the purchase started.
	require.Contains(t, string(body), `huabu_deliveries_total{channel="wecom.customer",reason="",state="sent"}`)
}
