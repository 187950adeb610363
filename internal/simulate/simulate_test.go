package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
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
	"github.com/huabu/huabu/internal/simulate"
	"github.com/huabu/huabu/internal/store"
)

var cst = time.FixedZone("CST", 8*3600)

func exampleConfig(t *testing.T) *config.Config {
	t.Helper()
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse("huabu.yaml", "", src)
	require.NoError(t, err)
	return cfg
}

func configWith(t *testing.T, extra string) *config.Config {
	t.Helper()
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse("huabu.yaml", "", append(src, []byte(extra)...))
	require.NoError(t, err)
	return cfg
}

func exampleFile(t *testing.T, name string) *bytes.Reader {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	require.NoError(t, err)
	return bytes.NewReader(raw)
}

func exampleCanvas(t *testing.T, id string) []byte {
	t.Helper()
	src, err := examples.FS.ReadFile("canvases/" + id + ".yaml")
	require.NoError(t, err)
	return src
}

// winback is the README's example: the win-back canvas over the example
// profiles, staff and purchase history, with the fortnight's events.
func winback(t *testing.T) *simulate.Result {
	t.Helper()
	res, err := simulate.Run(context.Background(), simulate.Options{
		Config: exampleConfig(t), File: "winback-dormant.yaml", Source: exampleCanvas(t, "winback-dormant"),
		From: time.Date(2026, 11, 23, 0, 0, 0, 0, cst), For: 14 * 24 * time.Hour,
		Profiles: exampleFile(t, "profiles.jsonl"), Staff: exampleFile(t, "staff.jsonl"),
		Events: io.MultiReader(exampleFile(t, "events.jsonl"), exampleFile(t, "simulate-events.jsonl")),
	})
	require.NoError(t, err)
	return res
}

// TestSimulateWinback: the weekly win-back over the example data. The
// Monday 10:00 run takes the eight lapsed big spenders; u002 uses the
// coupon (thanks), u003 buys (the exit event, and the goal), the others
// time out after three days and get one of the two SMS texts; the next
// Monday's run enters nobody (re-entry after 30 days).
func TestSimulateWinback(t *testing.T) {
	res := winback(t)
	require.Len(t, res.Runs, 2, "Mondays 23 and 30 November")
	require.Equal(t, int64(8), res.Runs[0].Entered)
	require.Equal(t, int64(0), res.Runs[1].Entered, "the re-entry rule keeps last week's users out")
	require.Equal(t, 4, res.Replayed)
	f := res.Steps
	require.Equal(t, simulate.Funnel{Entered: 8, Sent: 8}, *f["coupon"])
	require.Equal(t, int64(8), f["wait-coupon"].Entered)
	require.Equal(t, map[string]int64{"thanks": 1, "nudge": 6}, f["wait-coupon"].Next)
	require.Equal(t, int64(1), f["wait-coupon"].Exited)
	require.Equal(t, int64(1), f["wait-coupon"].Converted)
	require.Equal(t, int64(6), f["nudge"].Entered)
	require.Equal(t, f["nudge"].Next["sms-a"], f["sms-a"].Sent)
	require.Equal(t, f["nudge"].Next["sms-b"], f["sms-b"].Sent)
	require.Equal(t, int64(6), f["sms-a"].Sent+f["sms-b"].Sent)
	require.Equal(t, int64(7), f["done"].Exited)

	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	monday10 := time.Date(2026, 11, 23, 10, 0, 0, 0, cst)
	u002 := res.Users["u002"]
	require.Equal(t, []string{"coupon", "wait-coupon", "thanks", "done"}, steps(u002))
	require.Equal(t, "sent", u002[0].Outcome)
	require.Equal(t, "wecom.customer", u002[0].Channel)
	require.Contains(t, string(u002[0].Message), "王芳为您准备了回归礼包", "rendered with the owner's name from the staff directory")
	require.True(t, at(u002[0].At).Equal(monday10))
	require.Equal(t, "coupon_used", u002[1].Event)
	require.True(t, at(u002[1].Until).Equal(time.Date(2026, 11, 24, 12, 30, 0, 0, cst)), "went on when the coupon was used")
	require.Equal(t, "tagged", u002[2].Outcome)

	u003 := res.Users["u003"]
	require.Equal(t, []string{"coupon", "wait-coupon"}, steps(u003))
	require.Equal(t, "exited", u003[1].Outcome)
	require.Equal(t, "exit_event", u003[1].Reason)
	require.True(t, at(u003[1].Until).Equal(time.Date(2026, 11, 25, 20, 15, 0, 0, cst)))
	require.NotEmpty(t, u003[1].Converted)

	u001 := res.Users["u001"]
	require.Equal(t, "waited", u001[1].Outcome)
	require.True(t, u001[1].TimedOut)
	require.True(t, at(u001[1].Until).Equal(monday10.Add(72*time.Hour)), "the three-day timeout")
	require.Regexp(t, `^branch:sms-[ab]$`, u001[2].Outcome)
	require.Equal(t, "sms", u001[3].Channel)
	require.Contains(t, string(u001[3].Message), `"name":"徐静"`)
	require.Equal(t, "exited", u001[4].Outcome)
}

func steps(path []simulate.Passage) []string {
	var out []string
	for _, p := range path {
		out = append(out, p.Step)
	}
	return out
}

var outcome = regexp.MustCompile(`^(sent|suppressed:[a-z_]+|failed:[a-z_]+|branch:[a-z0-9-]+|waited|exited|tagged)$`)

// TestSimulateJSONContract: `huabu simulate --json` is {"steps": {...},
// "users": {...}} and nothing else at the top; each step has entered,
// sent, suppressed and failed; each passage a step, an RFC 3339 time and
// an outcome of the contract's forms.
func TestSimulateJSONContract(t *testing.T) {
	raw, err := json.Marshal(winback(t))
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	require.Len(t, top, 2)
	var doc struct {
		Steps map[string]map[string]any   `json:"steps"`
		Users map[string][]map[string]any `json:"users"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Len(t, doc.Steps, 7)
	for id, s := range doc.Steps {
		for _, k := range []string{"entered", "sent", "suppressed", "failed"} {
			require.Contains(t, s, k, id)
		}
	}
	require.Len(t, doc.Users, 8)
	for user, path := range doc.Users {
		require.NotEmpty(t, path, user)
		for _, p := range path {
			require.IsType(t, "", p["step"])
			_, err := time.Parse(time.RFC3339, p["at"].(string))
			require.NoError(t, err)
			require.Regexp(t, outcome, p["outcome"], user)
		}
	}
}

// TestSimulateQuietHours: with quiet hours 21:00–08:00 (delay), a thank-you
// for a 22:30 purchase goes out at 08:00 the next morning, and the passage
// says so; with action drop it is suppressed. The 30-day wait then outlasts
// the simulation.
func TestSimulateQuietHours(t *testing.T) {
	event := `{"userId":"u021","event":"purchase","properties":{"amount":880,"order_id":"q-1","sku":"x"},"timestamp":"2026-11-23T22:30:00+08:00"}` + "\n" +
		`{"userId":"u022","event":"purchase","properties":{"amount":990,"order_id":"q-2","sku":"x"},"timestamp":"2026-11-24T15:00:00+08:00"}`
	for _, action := range []string{"delay", "drop"} {
		t.Run(action, func(t *testing.T) {
			cfg := configWith(t, "\n# quiet hours for this test\n")
			cfg.Policy.QuietHours = &config.QuietHoursConfig{From: "21:00", To: "08:00", Action: action}
			res, err := simulate.Run(context.Background(), simulate.Options{
				Config: cfg, File: "purchase-followup.yaml", Source: exampleCanvas(t, "purchase-followup"),
				From: time.Date(2026, 11, 23, 0, 0, 0, 0, cst), For: 14 * 24 * time.Hour,
				Profiles: exampleFile(t, "profiles.jsonl"), Staff: exampleFile(t, "staff.jsonl"), Events: strings.NewReader(event),
			})
			require.NoError(t, err)
			night, day := res.Users["u021"], res.Users["u022"]
			require.Equal(t, []string{"thank-you", "wait-30d"}, steps(night))
			require.Equal(t, "sent", day[0].Outcome, "15:00 is not quiet")
			require.Empty(t, day[0].Entered)
			if action == "delay" {
				require.Equal(t, "sent", night[0].Outcome)
				require.Equal(t, "2026-11-24T08:00:00+08:00", night[0].At, "sent when quiet hours end")
				require.Equal(t, "2026-11-23T22:30:00+08:00", night[0].Entered)
				require.Equal(t, int64(1), res.Steps["thank-you"].Delayed)
				// The 30 days start when the message went, and outlast the fortnight.
				require.True(t, night[1].Waiting)
				require.Equal(t, "2026-12-24T08:00:00+08:00", night[1].Until)
			} else {
				require.Equal(t, "suppressed:quiet_hours", night[0].Outcome)
				require.Equal(t, "2026-11-23T22:30:00+08:00", night[0].At)
				require.Equal(t, map[string]int64{"suppressed:quiet_hours": 1}, res.Steps["thank-you"].Reasons)
			}
		})
	}
}

// TestSimulateFromTheStore: without profile files the simulation copies a
// store — its profiles, computed traits, frequency-cap touches and earlier
// entries apply — and leaves the store as it was.
func TestSimulateFromTheStore(t *testing.T) {
	ctx := context.Background()
	cfg := exampleConfig(t)
	path := filepath.Join(t.TempDir(), "huabu.db")
	st, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	schema, err := cfg.Schema()
	require.NoError(t, err)
	_, err = ingest.ImportProfiles(ctx, st, schema, exampleFile(t, "profiles.jsonl"), ingest.Options{})
	require.NoError(t, err)
	_, err = ingest.ImportStaff(ctx, st, exampleFile(t, "staff.jsonl"))
	require.NoError(t, err)
	from := time.Date(2026, 11, 23, 9, 0, 0, 0, cst)
	// u021 had three messages in the last hours: the example's
	// any-channel cap (3 a day) holds the thank-you back.
	uids, err := st.UIDs(ctx, []string{"u021"})
	require.NoError(t, err)
	require.NoError(t, st.RecordTouches(ctx, 1, "wecom.customer", []int64{uids["u021"]}, from.Add(-time.Hour)))
	require.NoError(t, st.RecordTouches(ctx, 1, "push", []int64{uids["u021"]}, from.Add(-2*time.Hour)))
	require.NoError(t, st.RecordTouches(ctx, 1, "email", []int64{uids["u021"]}, from.Add(-3*time.Hour)))
	before, err := st.CountProfiles(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Close())

	events := `{"userId":"u021","event":"purchase","properties":{"amount":880,"order_id":"s-1","sku":"x"},"timestamp":"2026-11-23T10:00:00+08:00"}` + "\n" +
		`{"userId":"new-user","event":"purchase","properties":{"amount":880,"order_id":"s-2","sku":"x"},"timestamp":"2026-11-23T10:05:00+08:00"}`
	res, err := simulate.Run(ctx, simulate.Options{
		Config: cfg, File: "purchase-followup.yaml", Source: exampleCanvas(t, "purchase-followup"),
		From: from, For: 24 * time.Hour, Store: path, Events: strings.NewReader(events),
	})
	require.NoError(t, err)
	require.Equal(t, "suppressed:frequency_cap", res.Users["u021"][0].Outcome, "three messages today already: the any-channel cap")
	require.Equal(t, "suppressed:no_owner", res.Users["new-user"][0].Outcome, "a user first seen in an event has no owner")

	st, err = store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer st.Close()
	after, err := st.CountProfiles(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after, "the store is not touched")
	runs, err := st.Runs(ctx, "purchase-followup", 10)
	require.NoError(t, err)
	require.Empty(t, runs)
}

// TestSimulateInputErrors: a canvas with errors, a bad events file and a
// bad period are the user's errors, named.
func TestSimulateInputErrors(t *testing.T) {
	cfg := exampleConfig(t)
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, cst)
	_, err := simulate.Run(context.Background(), simulate.Options{Config: cfg, File: "bad.yaml",
		Source: []byte("id: bad\ntrigger: {manual: {}}\nsteps:\n  - id: x\n    push: {channel: pigeon, text: hi}\n"), From: from, For: time.Hour})
	require.ErrorIs(t, err, simulate.ErrInput)
	var problems canvases.Problems
	require.True(t, errors.As(err, &problems))
	require.Contains(t, problems.Error(), "bad.yaml:5:")

	_, err = simulate.Run(context.Background(), simulate.Options{Config: cfg, File: "w.yaml", Source: exampleCanvas(t, "winback-dormant"),
		From: from, For: time.Hour, Events: strings.NewReader("{\"userId\":\"u1\",\"event\":\"purchase\",\"timestamp\":\"2026-11-23T01:00:00Z\"}\nnot json\n")})
	require.ErrorIs(t, err, simulate.ErrInput)
	require.Contains(t, err.Error(), "line 2")

	_, err = simulate.Run(context.Background(), simulate.Options{Config: cfg, File: "w.yaml", Source: exampleCanvas(t, "winback-dormant"), From: from})
	require.ErrorIs(t, err, simulate.ErrInput)
}
