package app

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

const waitCanvas = `
id: coupon-wait
trigger: {manual: {}}
audience: 'user.city in ["上海", "北京", "杭州", "深圳"]'
exit: {event: unsubscribe}
steps:
  - id: coupon
    push: {channel: outbox, text: 券已到账}
  - id: wait-use
    wait: {event: coupon_used, when: 'event.coupon == "C1"', timeout: 1h, on_timeout: remind}
  - id: thanks
    push: {channel: outbox, text: 感谢使用}
    next: done
  - id: remind
    push: {channel: outbox, text: 券快过期了}
  - id: done
    exit: {}
`

// sendEvents stores track events the way the ingestion API does and tells
// the sink, which routes what is stored.
func sendEvents(t *testing.T, app *App, name string, props map[string]any, users ...string) {
	t.Helper()
	raw := []byte("{}")
	if props != nil {
		var err error
		raw, err = json.Marshal(props)
		require.NoError(t, err)
	}
	var msgs []store.Message
	for i, u := range users {
		msgs = append(msgs, store.Message{Type: "track", MessageID: fmt.Sprintf("t-%d-%d", time.Now().UnixNano(), i), UserID: u, Name: name,
			Properties: raw, Timestamp: time.Now()})
	}
	res, err := app.Store().Ingest(context.Background(), msgs, store.IngestOptions{Realtime: true})
	require.NoError(t, err)
	require.Len(t, res.Events, len(users))
	evs := make([]ingest.Event, len(res.Events))
	for i, e := range res.Events {
		evs[i] = ingest.Event{ID: e.ID, UID: e.UID, UserID: e.UserID, Name: name, Properties: props, Timestamp: msgs[e.Index].Timestamp, ReceivedAt: e.ReceivedAt, FromRealtime: true}
	}
	app.EventSink().Events(context.Background(), evs)
}

func outboxOf(t *testing.T, app *App, canvas, step string) map[string]bool {
	msgs, err := app.Store().Outbox(context.Background(), canvas, 10000)
	require.NoError(t, err)
	got := map[string]bool{}
	for _, m := range msgs {
		if m.StepID == step {
			got[m.UserID] = true
		}
	}
	return got
}

// TestEventsReachCanvases drives the router on the embedded server: an event
// trigger, a wait for an event, an exit and a goal. It logs how soon each
// took effect; the latency target (within a second) is `huabu bench
// events`'s to measure — a wall-time bound here flakes on a shared machine.
func TestEventsReachCanvases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startExampleApp(t, map[string]string{"coupon-wait.yaml": waitCanvas})
	ctx := context.Background()

	// The feed reads only events some plan names: triggers, waits, exits, goals.
	names, err := app.currentRouter().RoutedEvents(ctx)
	require.NoError(t, err)
	require.Subset(t, names, []string{"purchase", "coupon_used", "unsubscribe", "wecom.contact_added"})
	require.NotContains(t, names, "video_watched")
	sendEvents(t, app, "video_watched", nil, "u001")
	last, err := app.Store().LastEventID(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return app.EventsRouted() >= last }, 30*time.Second, 5*time.Millisecond, "passed over, not stuck on")

	// An event trigger: purchases of 500 or more start the follow-up.
	start := time.Now()
	sendEvents(t, app, "purchase", map[string]any{"amount": 599.0}, "u001", "u003")
	sendEvents(t, app, "purchase", map[string]any{"amount": 99.0}, "u002")
	require.Eventually(t, func() bool { return len(outboxOf(t, app, "purchase-followup", "thank-you")) == 2 }, 30*time.Second, 10*time.Millisecond)
	t.Logf("purchase → thank-you in the outbox: %s", time.Since(start).Round(time.Millisecond))
	got := outboxOf(t, app, "purchase-followup", "thank-you")
	require.True(t, got["u001"] && got["u003"] && !got["u002"])

	// A later purchase is a conversion of the run the user is in.
	sendEvents(t, app, "purchase", map[string]any{"amount": 50.0}, "u001")
	require.Eventually(t, func() bool {
		rep, err := app.Report(ctx, "purchase-followup", 0)
		return err == nil && rep.Converted == 1
	}, 30*time.Second, 20*time.Millisecond)

	// A wait for an event: the user who uses the coupon leaves the wait now.
	started, err := app.StartRun(ctx, "coupon-wait", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := app.RunStatus(ctx, started.WorkflowID)
		return err == nil && st.Active == 0 && st.Waiting != nil
	}, 30*time.Second, 20*time.Millisecond)
	entered := outboxOf(t, app, "coupon-wait", "coupon")
	require.GreaterOrEqual(t, len(entered), 2)
	var user, other string
	for u := range entered {
		if user == "" {
			user = u
		} else if other == "" {
			other = u
		}
	}
	start = time.Now()
	sendEvents(t, app, "coupon_used", map[string]any{"coupon": "C2"}, other) // not the awaited coupon
	sendEvents(t, app, "coupon_used", map[string]any{"coupon": "C1"}, user)
	require.Eventually(t, func() bool { return outboxOf(t, app, "coupon-wait", "thanks")[user] }, 30*time.Second, 10*time.Millisecond)
	t.Logf("coupon_used → thanks in the outbox: %s", time.Since(start).Round(time.Millisecond))
	require.False(t, outboxOf(t, app, "coupon-wait", "thanks")[other], "a coupon_used event that fails the wait's condition")

	// The exit event takes a user out of the run.
	sendEvents(t, app, "unsubscribe", nil, other)
	require.Eventually(t, func() bool {
		runs, _ := app.Store().Runs(ctx, "coupon-wait", 1)
		ids, _ := app.Store().UIDs(ctx, []string{other})
		exited, _ := app.Store().ExitedAmong(ctx, runs[0].ID, []int64{ids[other]})
		return exited[ids[other]]
	}, 30*time.Second, 20*time.Millisecond)
	rep, err := app.Report(ctx, "coupon-wait", 0)
	require.NoError(t, err)
	require.Equal(t, int64(1), rep.ExitedEarly)
	_ = store.RunRunning
}
