package estimate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/traits"
)

// now is a Monday, 10:00 in Shanghai, three days after the last example event.
var now = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

type fixture struct {
	ctx  context.Context
	cfg  *config.Config
	comp *canvases.Compiler
	st   *store.SQLite
	acts *activities.Activities
	est  *estimate.Estimator
}

// exampleStore loads the example profiles, staff and purchase history the
// way `huabu import` does, with traits and RFM computed as of now.
func exampleStore(t *testing.T, extraEvents ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse("huabu.yaml", "", src)
	require.NoError(t, err)
	comp, err := cfg.Compiler()
	require.NoError(t, err)
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	st.SetClock(func() time.Time { return now })
	schema, err := cfg.Schema()
	require.NoError(t, err)
	for _, f := range []string{"profiles.jsonl", "staff-profiles.jsonl"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "examples", f))
		require.NoError(t, err)
		_, err = ingest.ImportProfiles(ctx, st, schema, bytes.NewReader(raw), ingest.Options{})
		require.NoError(t, err)
	}
	staff, err := examples.FS.ReadFile("staff.jsonl")
	require.NoError(t, err)
	_, err = ingest.ImportStaff(ctx, st, bytes.NewReader(staff))
	require.NoError(t, err)
	events, err := examples.FS.ReadFile("events.jsonl")
	require.NoError(t, err)
	events = append(events, []byte(strings.Join(extraEvents, "\n"))...)
	sum, err := ingest.ImportEvents(ctx, st, ingest.NewValidator(schema), bytes.NewReader(events), ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, sum.Rejected)
	eng, err := traits.New(cfg, st, nil)
	require.NoError(t, err)
	require.NoError(t, eng.Sync(ctx))
	_, err = eng.RefreshDue(ctx)
	require.NoError(t, err)
	require.NoError(t, eng.RefreshRFM(ctx))
	acts := &activities.Activities{Store: st, Compiler: comp, Policy: app.PolicyOf(cfg.Policy), Now: func() time.Time { return now }}
	return &fixture{ctx: ctx, cfg: cfg, comp: comp, st: st, acts: acts,
		est: &estimate.Estimator{Store: st, Compiler: comp, Policy: acts}}
}

func (f *fixture) plan(t *testing.T, name string) *canvases.Plan {
	t.Helper()
	src, err := examples.FS.ReadFile("canvases/" + name + ".yaml")
	require.NoError(t, err)
	return f.compile(t, name+".yaml", string(src))
}

func (f *fixture) compile(t *testing.T, file, src string) *canvases.Plan {
	t.Helper()
	p, problems := f.comp.Compile(file, []byte(src))
	require.False(t, problems.HasErrors(), problems.Error())
	return p
}

// enter runs the engine's Enter activity for the plan over the whole
// store: who a run started now would take in.
func (f *fixture) enter(t *testing.T, p *canvases.Plan) int64 {
	t.Helper()
	_, err := f.st.SavePlan(f.ctx, p.ID, p.Hash, p.JSON(), "")
	require.NoError(t, err)
	run, err := f.st.BeginRun(f.ctx, fmt.Sprintf("wf-%s-%d", p.ID, time.Now().UnixNano()), p.ID, p.Hash, "manual")
	require.NoError(t, err)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	v, err := env.ExecuteActivity(f.acts.Enter, activities.EnterInput{RunID: run.ID, CanvasID: p.ID, PlanHash: p.Hash})
	require.NoError(t, err)
	var ref activities.CohortRef
	require.NoError(t, v.Get(&ref))
	return ref.Size
}

// TestEstimateIsWhatEnterTakes: for every example canvas, the exact
// estimate's entering count is the size of the entry cohort the engine's
// own Enter activity writes for a run started at the same moment — and
// again after a run, when re-entry rules keep people out.
func TestEstimateIsWhatEnterTakes(t *testing.T) {
	f := exampleStore(t)
	files, problems, err := f.comp.CompileAll(canvases.FS{FS: examples.FS}, []string{"canvases"})
	require.NoError(t, err)
	require.False(t, problems.HasErrors())
	require.GreaterOrEqual(t, len(files), 7, "the example canvases")
	for _, file := range files {
		p := file.Plan
		t.Run(p.ID, func(t *testing.T) {
			res, err := f.est.Estimate(f.ctx, p, estimate.Options{Now: now, Exact: true})
			require.NoError(t, err)
			require.True(t, res.Exact)
			require.Equal(t, int64(46), res.Profiles, "40 customers and 6 staff")
			require.Equal(t, res.Profiles, res.Evaluated)
			require.Zero(t, res.Matched.Margin)
			entered := f.enter(t, p)
			require.Equal(t, entered, res.Entering.N, "the estimate is what Enter takes")
			require.LessOrEqual(t, len(res.Sample), estimate.Samples)
			require.Equal(t, min(int(entered), estimate.Samples), len(res.Sample))

			again, err := f.est.Estimate(f.ctx, p, estimate.Options{Now: now, Exact: true})
			require.NoError(t, err)
			require.Equal(t, res.Matched, again.Matched)
			if p.Entry.Reentry == canvases.ReentryAlways {
				require.Equal(t, res.Entering, again.Entering)
			} else {
				require.Zero(t, again.Entering.N, "everyone just entered: the re-entry rule keeps them out")
				require.Equal(t, entered, again.ReentryBlocks)
				require.Equal(t, f.enter(t, p), again.Entering.N)
			}
		})
	}
}

// TestEstimateWinback checks the numbers an operator reads for the
// win-back canvas against the example data by hand.
func TestEstimateWinback(t *testing.T) {
	f := exampleStore(t)
	p := f.plan(t, "winback-dormant")
	res, err := f.est.Estimate(f.ctx, p, estimate.Options{Now: now, Exact: true})
	require.NoError(t, err)
	require.Positive(t, res.Entering.N)

	// Count by hand: who matches, and who has an owner and a WeCom
	// external id (wecom.customer goes through the owner).
	audience, err := f.comp.CompileCondition(p.Audience, "")
	require.NoError(t, err)
	var matched, reachable int64
	var ids []string
	for uid := int64(1); uid <= 46; uid++ {
		rows, err := f.st.Profiles(f.ctx, []int64{uid})
		require.NoError(t, err)
		doc := decode(t, rows[0].Doc)
		if ok, _ := audience.Eval(doc, nil); ok {
			matched++
			ids = append(ids, rows[0].ID)
			if doc["owner"] != nil && doc["wecom_external_userid"] != nil {
				reachable++
			}
		}
	}
	require.Equal(t, matched, res.Matched.N)
	require.Len(t, res.Channels, 2, "wecom.customer for the coupon, sms for both reminders")
	customer := res.Channels[0]
	require.Equal(t, "wecom.customer", customer.Channel)
	require.Equal(t, []string{"coupon"}, customer.Steps)
	require.Equal(t, reachable, customer.Reach)
	require.Equal(t, matched-reachable, customer.Unreach)
	sms := res.Channels[1]
	require.Equal(t, "sms", sms.Channel)
	require.Equal(t, []string{"sms-a", "sms-b"}, sms.Steps)
	var sample []string
	for _, s := range res.Sample {
		sample = append(sample, s.ID)
		require.Contains(t, s.Fields, "rfm", "the sample shows what the audience reads")
		require.Contains(t, s.Fields, "tags")
		require.NotContains(t, s.Fields, "phone")
	}
	require.Subset(t, ids, sample)

	// Two of them had an SMS today: the daily SMS cap holds them back now;
	// a third had three messages on other channels: the any-channel cap.
	uids, err := f.st.UIDs(f.ctx, ids[:3])
	require.NoError(t, err)
	require.NoError(t, f.st.RecordTouches(f.ctx, 99, "sms", []int64{uids[ids[0]], uids[ids[1]]}, now.Add(-time.Hour)))
	require.NoError(t, f.st.RecordTouches(f.ctx, 99, "push", []int64{uids[ids[2]]}, now.Add(-time.Hour)))
	require.NoError(t, f.st.RecordTouches(f.ctx, 98, "push", []int64{uids[ids[2]]}, now.Add(-2*time.Hour)))
	require.NoError(t, f.st.RecordTouches(f.ctx, 97, "email", []int64{uids[ids[2]]}, now.Add(-3*time.Hour)))
	res, err = f.est.Estimate(f.ctx, p, estimate.Options{Now: now, Exact: true})
	require.NoError(t, err)
	smsCapped := int64(0)
	for _, id := range ids[:3] {
		doc := f.doc(t, id)
		if doc["phone"] != nil {
			smsCapped++
		}
	}
	require.Equal(t, smsCapped, res.Channels[1].Capped, "sms: the two with an SMS today and the one with three messages")
	require.Equal(t, int64(1), res.Channels[0].Capped, "wecom.customer: only the any-channel cap")

	// A fourth unsubscribed from SMS (huabu suppress): suppressed on SMS
	// only, as Send would find it.
	_, err = f.st.Suppress(f.ctx, []store.Suppression{{Subject: store.UserSubject(ids[3]), Channel: "sms", Source: "api", Display: ids[3]}})
	require.NoError(t, err)
	res, err = f.est.Estimate(f.ctx, p, estimate.Options{Now: now, Exact: true})
	require.NoError(t, err)
	require.NotNil(t, f.doc(t, ids[3])["phone"])
	require.Equal(t, []estimate.Reason{{Reason: "unsubscribed", N: 1}}, res.Channels[1].Suppressed)
	require.Empty(t, res.Channels[0].Suppressed)
}

func (f *fixture) doc(t *testing.T, id string) map[string]any {
	row, err := f.st.ProfileByID(f.ctx, id)
	require.NoError(t, err)
	return decode(t, row.Doc)
}

// TestEstimateEventTrigger: the purchase follow-up starts on purchases of
// 500 or more; over the last seven days, who sent a purchase, and who sent
// one that would have started the journey.
func TestEstimateEventTrigger(t *testing.T) {
	ev := func(user string, amount int, at time.Time) string {
		return fmt.Sprintf(`{"userId":%q,"event":"purchase","properties":{"amount":%d,"order_id":"t-%s-%d","sku":"x"},"timestamp":%q}`,
			user, amount, user, at.Unix(), at.Format(time.RFC3339))
	}
	f := exampleStore(t,
		ev("u001", 800, now.Add(-24*time.Hour)),
		ev("u001", 80, now.Add(-48*time.Hour)),
		ev("u002", 120, now.Add(-3*24*time.Hour)),
		ev("u003", 999, now.Add(-8*24*time.Hour)), // before the window
		ev("u004", 650, now.Add(-6*24*time.Hour)),
	)
	p := f.plan(t, "purchase-followup")
	res, err := f.est.Estimate(f.ctx, p, estimate.Options{Now: now, Exact: true})
	require.NoError(t, err)
	require.NotNil(t, res.Event)
	require.Equal(t, "purchase", res.Event.Event)
	require.Equal(t, now.Add(-7*24*time.Hour), res.Event.Since)
	// The example history has purchases of its own in the window too.
	history, err := f.st.EventsOfUsers(f.ctx, allUIDs(46), "purchase", res.Event.Since)
	require.NoError(t, err)
	senders, big := map[string]bool{}, map[string]bool{}
	for _, e := range history {
		senders[e.UserID] = true
		if decode(t, e.Properties)["amount"].(float64) >= 500 {
			big[e.UserID] = true
		}
	}
	require.True(t, big["u001"] && big["u004"] && !big["u002"] && !big["u003"])
	require.Equal(t, int64(len(senders)), res.Event.Sent.N)
	require.Equal(t, int64(len(big)), res.Event.Entering.N)
	require.Equal(t, "thank-you", res.Channels[0].Steps[0])
	require.Equal(t, "fallback", res.Channels[1].Role)
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func allUIDs(n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// TestEstimateSamples: with pages of eight uids, a sample of half the pages
// scales its counts up, and the margin of error covers the exact count.
func TestEstimateSamples(t *testing.T) {
	f := exampleStore(t)
	f.est.PageSpan = 4
	p := f.compile(t, "everyone.yaml", `
id: everyone
trigger: {manual: {}}
audience: 'user.level in ["金卡", "钻石"]'
steps:
  - id: hello
    push: {channel: sms, template: SMS_HELLO}
`)
	exact, err := f.est.Estimate(f.ctx, p, estimate.Options{Now: now, Exact: true})
	require.NoError(t, err)
	require.True(t, exact.Exact)
	sampled, err := f.est.Estimate(f.ctx, p, estimate.Options{Now: now, MaxPages: 6})
	require.NoError(t, err)
	require.False(t, sampled.Exact)
	require.Equal(t, int64(24), sampled.Evaluated, "six full pages of four")
	require.Positive(t, sampled.Matched.Margin)
	require.InDelta(t, exact.Matched.N, sampled.Matched.N, float64(sampled.Matched.Margin))
	require.InDelta(t, exact.Profiles, sampled.Profiles, 12)
	again, err := f.est.Estimate(f.ctx, p, estimate.Options{Now: now, MaxPages: 6})
	require.NoError(t, err)
	again.Elapsed = sampled.Elapsed
	require.Equal(t, sampled, again, "the same pages every time")
}
