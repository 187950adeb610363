package app

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/reports"
)

// scrape reads /metrics and returns the value of each sample line.
func scrape(t *testing.T, app *App) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + app.HTTPAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// TestMetricsAfterRuns: after the staff SOP (against the WeCom fake, one
// staff member refused), the win-back (a wait for an event) and an event
// that starts the purchase follow-up, /metrics has what an SRE alerts on:
// runs by canvas and state, users entering steps, cohorts and users
// waiting, staff tasks by state, event → entry lag, activity latency, and
// provider latency and errors by the provider's code.
func TestMetricsAfterRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app, fake := startWeComApp(t, func(name string, b []byte) []byte {
		if name != "winback-dormant.yaml" {
			return b
		}
		// No purchase history here, so no RFM scores: name the audience.
		s := regexp.MustCompile(`(?m)^audience: .*$`).ReplaceAllString(string(b), `audience: 'user.id in ["u002", "u004", "u006"]'`)
		require.NotEqual(t, string(b), s)
		return []byte(s)
	})
	fake.FailSender("lina", fakes.SenderFault{Errcode: 60111})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sop, err := app.StartRun(ctx, "hq-daily-sop", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		rep, err := app.StaffReport(ctx, "hq-daily-sop", 0, reports.ByStaff)
		return err == nil && rep.Total.Open == 3 && rep.Total.Failed == 1
	}, 20*time.Second, 100*time.Millisecond, "three tasks open until 18:00, lina's refused")
	_ = sop

	winback, err := app.StartRun(ctx, "winback-dormant", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := app.RunStatus(ctx, winback.WorkflowID)
		return err == nil && st.Active == 0 && st.Waiting != nil
	}, 20*time.Second, 100*time.Millisecond, "the win-back waits for coupon_used")

	sendEvents(t, app, "purchase", map[string]any{"amount": 800.0}, "u005")
	require.Eventually(t, func() bool {
		return scrape(t, app)[`huabu_runs_started_total{canvas="purchase-followup"}`] == 1
	}, 20*time.Second, 100*time.Millisecond, "the purchase started the follow-up")

	m := scrape(t, app)
	for name, want := range map[string]float64{
		`huabu_runs_started_total{canvas="hq-daily-sop"}`:                 1,
		`huabu_runs_running{canvas="hq-daily-sop"}`:                       1,
		`huabu_runs_started_total{canvas="winback-dormant"}`:              1,
		`huabu_staff_tasks{canvas="hq-daily-sop",state="open"}`:           3,
		`huabu_staff_tasks{canvas="hq-daily-sop",state="failed"}`:         1,
		`huabu_metrics_store_up`:                                          1,
		`huabu_event_entry_lag_seconds_count{canvas="purchase-followup"}`: 1,
	} {
		require.Equal(t, want, m[name], name)
	}
	require.Greater(t, m[`huabu_step_entered_total{canvas="winback-dormant",step="coupon"}`], 0.0)
	require.Equal(t, m[`huabu_step_entered_total{canvas="winback-dormant",step="coupon"}`], m[`huabu_users_waiting{canvas="winback-dormant",for="event"}`],
		"everyone who got the coupon waits for coupon_used")
	require.Equal(t, 1.0, m[`huabu_cohorts_waiting{canvas="winback-dormant",for="event"}`])
	require.Greater(t, m[`huabu_activity_duration_seconds_count{activity="Send",outcome="ok"}`], 0.0)
	require.Greater(t, m[`huabu_activity_duration_seconds_count{activity="EnterHead",outcome="ok"}`], 0.0) // the audience runs enter their head first (ADR 034)
	require.Greater(t, m[`huabu_provider_send_duration_seconds_count{channel="wecom.customer",provider="wecom"}`], 0.0)
	// u005's owner is lina too: her thank-you is refused like her task.
	require.Eventually(t, func() bool {
		return scrape(t, app)[`huabu_provider_call_errors_total{api="/cgi-bin/externalcontact/add_msg_template",class="permanent",code="60111",provider="wecom"}`] == 2
	}, 20*time.Second, 100*time.Millisecond, "lina's refused task and thank-you, by WeCom's errcode")
	for k, v := range m {
		if strings.Contains(k, "provider") {
			t.Log(k, v)
		}
	}
	require.Greater(t, m[`huabu_provider_call_duration_seconds_count{api="/cgi-bin/externalcontact/add_msg_template",provider="wecom"}`], 1.0)
	lag := m[`huabu_event_entry_lag_seconds_sum{canvas="purchase-followup"}`]
	require.Greater(t, lag, 0.0)
	require.Less(t, lag, 10.0)

	// JSON lists are lists, also when empty.
	for _, path := range []string{"/api/v1/runs?canvas=member-day", "/api/v1/outbox?canvas=member-day"} {
		resp, err := http.Get("http://" + app.HTTPAddr() + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Regexp(t, regexp.MustCompile(`:\[\]`), string(body), path)
	}
}
