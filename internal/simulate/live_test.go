package simulate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/simulate"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/traits"
)

// The example canvases, made to run in seconds: days become seconds,
// schedules become manual starts, and each canvas gets its own segment of
// the example users, so that no user's frequency caps are shared between
// canvases (each simulation sees one canvas).
type liveCanvas struct {
	file, id, segment string
	edits             [][2]string // regexp → replacement
}

var liveCanvases = []liveCanvas{
	{"winback-dormant.yaml", "winback-dormant", "A", [][2]string{
		{`schedule: \{cron: .*\}`, `manual: {}`}, {`timeout: 3d`, `timeout: 12s`}}},
	{"member-day.yaml", "member-day", "B", [][2]string{
		{`schedule: \{cron: .*\}`, `manual: {}`}, {`timeout: 1d`, `timeout: 12s`}, {`(?m)^policy:\n.*\n`, ``}}},
	{"purchase-followup.yaml", "purchase-followup", "C", [][2]string{{`wait: 30d`, `wait: 3s`}}},
	{"cart-reminder.yaml", "cart-reminder", "D", [][2]string{{`timeout: 1d`, `timeout: 7s`}}},
	{"hq-daily-sop.yaml", "hq-daily-sop", "F", [][2]string{
		{`schedule: \{cron: .*\}`, `manual: {}`}, {`deadline: \{at: "18:00"\}`, `deadline: 30s`}, {`remind: \["14:00"\]`, `remind: [20s]`}}},
}

// quietCanvases hold a push back by quiet hours that cover the whole test
// (delay) or drop it.
func quietCanvases(now time.Time, loc *time.Location) map[string]string {
	from, to := now.In(loc).Add(-time.Hour).Format("15:04"), now.In(loc).Add(2*time.Hour).Format("15:04")
	canvas := func(id, event, action string) string {
		return fmt.Sprintf(`id: %s
trigger: {event: {name: %s}}
audience: 'user.segment == "E"'
policy:
  quiet_hours: {from: "%s", to: "%s", action: %s}
steps:
  - id: hello
    push: {channel: sms, template: SMS_HELLO, params: {name: '{{ .user.name | default "顾客" }}'}}
  - id: later
    wait: 2s
  - id: again
    push: {channel: push, title: 你好, text: 'again'}
`, id, event, from, to, action)
	}
	return map[string]string{"quiet-delay.yaml": canvas("quiet-delay", "quiet_delay", "delay"), "quiet-drop.yaml": canvas("quiet-drop", "quiet_drop", "drop")}
}

// segments assigns the 40 example users, ten canvases' worth of four to ten.
func segmentOf(i int) string {
	switch {
	case i <= 10:
		return "A"
	case i <= 20:
		return "B"
	case i <= 25:
		return "C"
	case i <= 30:
		return "D"
	case i <= 35:
		return "E"
	}
	return "F"
}

// liveEvent is an event the test sends to the live engine, at an offset
// from the start and, if it has one, once the live engine is where the
// event is meant to find it (the live engine is late by its latency, more
// on a busy machine; the simulation is not). It is replayed into the
// simulation at the time it was sent.
type liveEvent struct {
	after       time.Duration
	user, event string
	props       string
	// ready is a live condition to wait for: canvas's run has a cohort
	// waiting at step (on that visit).
	ready *waiting
}

type waiting struct {
	canvas, step string
	visit        int
}

var liveEvents = []liveEvent{
	{200 * time.Millisecond, "u026", "add_to_cart", `{}`, nil},
	{200 * time.Millisecond, "u028", "add_to_cart", `{}`, nil},
	{300 * time.Millisecond, "u021", "purchase", `{"amount": 800, "order_id": "l-1", "sku": "x"}`, nil},
	{300 * time.Millisecond, "u022", "purchase", `{"amount": 120, "order_id": "l-2", "sku": "x"}`, nil},
	{600 * time.Millisecond, "u023", "purchase", `{"amount": 900, "order_id": "l-3", "sku": "x"}`, nil},
	{600 * time.Millisecond, "u031", "quiet_delay", `{}`, nil},
	{600 * time.Millisecond, "u032", "quiet_delay", `{}`, nil},
	{600 * time.Millisecond, "u034", "quiet_drop", `{}`, nil},
	// Within the twelve-second waits, once they wait: long enough that the
	// live engine, late by seconds under full-suite load, routes them
	// before the timeout (with 6 s, coupon_used, purchase and app_open were
	// once routed after it). The staff SOP's 30 s deadline is longer, so
	// this costs the test no time.
	{1500 * time.Millisecond, "u002", "coupon_used", `{"coupon": "WB"}`, &waiting{"winback-dormant", "wait-coupon", 0}},
	{1500 * time.Millisecond, "u013", "app_open", `{}`, &waiting{"member-day", "wait-open", 0}},
	{2000 * time.Millisecond, "u003", "purchase", `{"amount": 328, "order_id": "l-4", "sku": "x"}`, &waiting{"winback-dormant", "wait-coupon", 0}},
	// During the cart's second seven-second wait: a purchase on a later
	// visit of a loop. The wait is long enough that the live engine, late
	// by its latency on a busy machine, still routes the purchase inside
	// it (with four seconds it was once routed after the timeout).
	{7700 * time.Millisecond, "u028", "purchase", `{"amount": 66, "order_id": "l-5", "sku": "x"}`, &waiting{"cart-reminder", "wait-purchase", 1}},
}

// isWaiting reports whether a live run of the canvas has a cohort
// registered at the wait step, on the visit, for the event.
func isWaiting(t *testing.T, st *store.SQLite, w *waiting, event string) bool {
	ctx := context.Background()
	runs, err := st.Runs(ctx, w.canvas, 10)
	require.NoError(t, err)
	for _, r := range runs {
		tr, err := st.Trace(ctx, r.ID)
		require.NoError(t, err)
		waits, err := st.WaitsIn(ctx, []int64{r.ID}, event)
		require.NoError(t, err)
		for _, e := range tr.StepEntries {
			for _, wt := range waits {
				if e.StepID == w.step && e.Visit == w.visit && wt.CohortID == e.CohortID {
					return true
				}
			}
		}
	}
	return false
}

// TestSimulationMatchesLiveEngine runs example canvases on the live engine
// (embedded Temporal, the store, the router, events through the HTTP API)
// and simulates each over the same profiles and events from the same
// start: every user must pass the same steps, get the same messages with
// the same outcomes at the same times (within the live engine's latency),
// leave and convert the same way — waits for events (arrived and timed
// out), branches, A/B splits, a loop with visits, exit events, goals,
// staff tasks, and quiet hours holding messages back or dropping them.
func TestSimulationMatchesLiveEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cfgText, canvasFiles := liveSetup(t)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(cfgText))
	require.NoError(t, err)
	loc, err := time.LoadLocation(cfg.Timezone)
	require.NoError(t, err)
	for name, body := range quietCanvases(time.Now(), loc) {
		canvasFiles[name] = body
	}
	for name, body := range canvasFiles {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", name), []byte(body), 0o644))
	}
	profiles, staff, history := liveInput(t)

	running, err := app.Start(ctx, app.Options{Config: cfg, DataDir: filepath.Join(dir, "data"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	defer running.Close()
	st := running.Store()
	schema, err := cfg.Schema()
	require.NoError(t, err)
	_, err = ingest.ImportProfiles(ctx, st, schema, bytes.NewReader(profiles), ingest.Options{})
	require.NoError(t, err)
	_, err = ingest.ImportStaff(ctx, st, bytes.NewReader(staff))
	require.NoError(t, err)
	sum, err := ingest.ImportEvents(ctx, st, ingest.NewValidator(schema), bytes.NewReader(history), ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, sum.Rejected)
	eng, err := traits.New(cfg, st, nil)
	require.NoError(t, err)
	require.NoError(t, eng.Sync(ctx))
	_, err = eng.RefreshDue(ctx)
	require.NoError(t, err)
	require.NoError(t, eng.RefreshRFM(ctx))

	// The live run: manual canvases now, events at their offsets.
	t0 := time.Now()
	for _, c := range liveCanvases {
		if strings.Contains(canvasFiles[c.file], "manual: {}") {
			_, err := running.StartRun(ctx, c.id, nil)
			require.NoError(t, err)
		}
	}
	var sent bytes.Buffer
	for i, e := range liveEvents {
		if d := time.Until(t0.Add(e.after)); d > 0 {
			time.Sleep(d)
		}
		if e.ready != nil {
			waitFor := map[string]string{"wait-coupon": "coupon_used", "wait-open": "app_open", "wait-purchase": "purchase"}[e.ready.step]
			require.Eventually(t, func() bool { return isWaiting(t, st, e.ready, waitFor) }, 10*time.Second, 20*time.Millisecond,
				"%s waits at %s", e.ready.canvas, e.ready.step)
		}
		line := fmt.Sprintf(`{"type":"track","userId":%q,"event":%q,"properties":%s,"timestamp":%q,"messageId":"live-%d"}`,
			e.user, e.event, e.props, time.Now().Format(time.RFC3339Nano), i)
		track(t, running.HTTPAddr(), line)
		sent.WriteString(line + "\n")
	}
	// Until every run is done, but for the one quiet hours keep waiting.
	require.Eventually(t, func() bool { return liveSettled(t, running, canvasFiles) }, 60*time.Second, 200*time.Millisecond)

	for _, c := range append(liveCanvases, liveCanvas{file: "quiet-delay.yaml", id: "quiet-delay"}, liveCanvas{file: "quiet-drop.yaml", id: "quiet-drop"}) {
		t.Run(c.id, func(t *testing.T) {
			live := view(t, ctx, st, c.id, t0, canvasFiles[c.file])
			require.NotEmpty(t, live.items, "the live run did something")
			var sim storeView
			res, err := simulate.Run(ctx, simulate.Options{
				Config: cfg, File: c.file, Source: []byte(canvasFiles[c.file]), From: t0, For: time.Minute,
				Profiles: bytes.NewReader(profiles), Staff: bytes.NewReader(staff),
				Events: io.MultiReader(bytes.NewReader(history), bytes.NewReader(sent.Bytes())),
				Inspect: func(ctx context.Context, st *store.SQLite) error {
					sim = view(t, ctx, st, c.id, t0, canvasFiles[c.file])
					return nil
				},
			})
			require.NoError(t, err)
			var text bytes.Buffer
			require.NoError(t, res.WriteText(&text, -1))
			t.Log(text.String())
			require.Equal(t, live.items, sim.items, "the same steps, messages, outcomes, exits and conversions per user")
			// Times: the live engine is late by its latency (more on a busy
			// machine), never early; the waits between one user's messages
			// are never shorter live, and longer only by that latency (the
			// second message may be late when the first was not: 3 s was
			// seen under full-suite load).
			require.Equal(t, len(live.times), len(sim.times))
			for user, lt := range live.times {
				st := sim.times[user]
				require.Len(t, st, len(lt), user)
				for i := range lt {
					require.Equal(t, lt[i].key, st[i].key, user)
					late := lt[i].at - st[i].at
					require.True(t, late > -500*time.Millisecond && late < 8*time.Second, "%s: live %s, simulated %s after the start", lt[i].key, lt[i].at, st[i].at)
					if i > 0 {
						liveGap, simGap := lt[i].at-lt[i-1].at, st[i].at-st[i-1].at
						require.True(t, liveGap > simGap-2500*time.Millisecond && liveGap < simGap+8*time.Second,
							"%s: the time between %s and %s: live %s, simulated %s", user, lt[i-1].key, lt[i].key, liveGap, simGap)
					}
				}
			}
			// What `huabu simulate --json` says is what the live engine did.
			for user, path := range res.Users {
				var got []string
				for _, p := range path {
					if p.Outcome == "sent" && len(p.Message) > 0 {
						got = append(got, fmt.Sprintf("message %s %s %s", p.Step, p.Channel, canonical(t, p.Message)))
					}
					if strings.HasPrefix(p.Outcome, "suppressed:") || strings.HasPrefix(p.Outcome, "failed:") {
						state, reason, _ := strings.Cut(p.Outcome, ":")
						got = append(got, fmt.Sprintf("settled %s %s %s", p.Step, state, reason))
					}
					if p.Reason == "quiet_hours" && p.Waiting {
						until, err := time.Parse(time.RFC3339, p.Until)
						require.NoError(t, err)
						got = append(got, fmt.Sprintf("deferred %s until %s", p.Step, until.UTC().Format(time.RFC3339)))
					}
				}
				var want []string
				for _, it := range live.items[user] {
					if strings.HasPrefix(it, "message ") || strings.HasPrefix(it, "settled ") || strings.HasPrefix(it, "deferred ") {
						want = append(want, it)
					}
				}
				slices.Sort(got)
				require.Equal(t, want, got, "user %s in the simulation's paths", user)
			}
			passages := 0
			for _, p := range res.Users {
				passages += len(p)
			}
			t.Logf("%s: %d users, %d step passages; live and simulated agree", c.id, len(res.Users), passages)
		})
	}
}

// liveSetup is the example config (listening on a free port, with the
// segment attribute) and the edited example canvases.
func liveSetup(t *testing.T) (string, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "huabu.yaml"))
	require.NoError(t, err)
	text := strings.Replace(string(raw), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	text = strings.Replace(text, "    trial_ends_at: time\n", "    trial_ends_at: time\n    segment: string\n", 1)
	require.Contains(t, text, "segment: string")
	files := map[string]string{}
	for _, c := range liveCanvases {
		raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "canvases", c.file))
		require.NoError(t, err)
		body := string(raw)
		for _, e := range c.edits {
			re := regexp.MustCompile(e[0])
			require.Regexp(t, re, body, "%s: %s", c.file, e[0])
			body = re.ReplaceAllString(body, e[1])
		}
		seg := fmt.Sprintf(`user.segment == "%s"`, c.segment)
		if m := regexp.MustCompile(`(?m)^audience: '(.*)'$`).FindStringSubmatch(body); m != nil {
			body = strings.Replace(body, m[0], fmt.Sprintf(`audience: '%s && (%s)'`, seg, m[1]), 1)
		} else {
			body = strings.Replace(body, "\nsteps:\n", fmt.Sprintf("\naudience: '%s'\nsteps:\n", seg), 1)
		}
		files[c.file] = body
	}
	return text, files
}

// liveInput is the example profiles (with their segments), staff and
// purchase history.
func liveInput(t *testing.T) (profiles, staff, history []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "profiles.jsonl"))
	require.NoError(t, err)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for i := 1; sc.Scan(); i++ {
		var p map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &p))
		p["traits"].(map[string]any)["segment"] = segmentOf(i)
		b, _ := json.Marshal(p)
		profiles = append(append(profiles, b...), '\n')
	}
	staff, err = os.ReadFile(filepath.Join("..", "..", "examples", "staff.jsonl"))
	require.NoError(t, err)
	history, err = os.ReadFile(filepath.Join("..", "..", "examples", "events.jsonl"))
	require.NoError(t, err)
	return profiles, staff, history
}

func track(t *testing.T, addr, line string) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+addr+"/v1/track", strings.NewReader(line))
	require.NoError(t, err)
	req.SetBasicAuth("dev-write-key", "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(body))
}

// liveSettled reports whether every run of the test canvases has ended,
// except quiet-delay's, which waits for quiet hours to end.
func liveSettled(t *testing.T, app *app.App, files map[string]string) bool {
	ctx := context.Background()
	for file := range files {
		id := strings.TrimSuffix(file, ".yaml")
		runs, err := app.Store().Runs(ctx, id, 100)
		require.NoError(t, err)
		if id == "quiet-delay" {
			if len(runs) == 0 {
				return false
			}
			continue
		}
		if (id == "purchase-followup" || id == "cart-reminder" || id == "quiet-drop") && len(runs) == 0 {
			return false
		}
		for _, r := range runs {
			if r.State == store.RunRunning {
				return false
			}
		}
	}
	// quiet-delay: both users are held back (written into a wake cohort).
	runs, _ := app.Store().Runs(ctx, "quiet-delay", 100)
	held := 0
	for _, r := range runs {
		tr, err := app.Store().Trace(ctx, r.ID)
		require.NoError(t, err)
		for _, e := range tr.StepEntries {
			kids, err := app.Store().ChildCohorts(ctx, e.CohortID, e.StepID)
			require.NoError(t, err)
			for _, k := range kids {
				if !k.WakeAt.IsZero() && k.Sealed {
					held += int(k.Size)
				}
			}
		}
	}
	return held == 2
}

// storeView is what a store says the runs of a canvas did, per user, in
// terms that do not depend on which engine ran them: steps entered (on
// which visit), deliveries settled, messages recorded, messages held back
// by quiet hours (until when), staff tasks, exits, conversions and tags;
// and when each message was recorded, after the start.
type storeView struct {
	items map[string][]string
	times map[string][]timed // per user, in time order
}

type timed struct {
	key string
	at  time.Duration
}

func view(t *testing.T, ctx context.Context, st *store.SQLite, canvasID string, t0 time.Time, canvas string) storeView {
	t.Helper()
	v := storeView{items: map[string][]string{}, times: map[string][]timed{}}
	// The tags the canvas sets (auto-tags follow computed traits, which
	// the simulation recomputes only for the users it reads).
	var ours []string
	for _, m := range regexp.MustCompile(`tag: \{add: \[([^\]]*)\]`).FindAllStringSubmatch(canvas, -1) {
		ours = append(ours, strings.Split(m[1], ", ")...)
	}
	runs, err := st.Runs(ctx, canvasID, 100)
	require.NoError(t, err)
	ids := map[int64]string{}
	user := func(uid int64) string {
		if id, ok := ids[uid]; ok {
			return id
		}
		rows, err := st.Profiles(ctx, []int64{uid})
		require.NoError(t, err)
		require.Len(t, rows, 1)
		ids[uid] = rows[0].ID
		return rows[0].ID
	}
	add := func(uid int64, item string) { v.items[user(uid)] = append(v.items[user(uid)], item) }
	members := func(cohort int64) []int64 {
		c, err := st.GetCohort(ctx, cohort)
		require.NoError(t, err)
		pages, err := st.Pages(ctx, cohort, 0, c.PageSpan)
		require.NoError(t, err)
		var out []int64
		for _, p := range pages {
			out = append(out, p.Members...)
		}
		return out
	}
	loc := time.FixedZone("", 0)
	for _, r := range runs {
		tr, err := st.Trace(ctx, r.ID)
		require.NoError(t, err)
		for _, e := range tr.StepEntries {
			for _, u := range members(e.CohortID) {
				add(u, fmt.Sprintf("enter %s #%d", e.StepID, e.Visit))
			}
			kids, err := st.ChildCohorts(ctx, e.CohortID, e.StepID)
			require.NoError(t, err)
			for _, k := range kids {
				if k.WakeAt.IsZero() || !k.Sealed {
					continue
				}
				for _, u := range members(k.ID) {
					delivered := false
					for _, d := range tr.Deliveries {
						delivered = delivered || d.UID == u && d.StepID == e.StepID
					}
					if !delivered {
						add(u, fmt.Sprintf("deferred %s until %s", e.StepID, k.WakeAt.In(loc).Format(time.RFC3339)))
					}
				}
			}
		}
		for _, d := range tr.Deliveries {
			if d.State != store.DeliverySent {
				add(d.UID, fmt.Sprintf("settled %s %s %s", d.StepID, d.State, d.Reason))
			}
			add(d.UID, fmt.Sprintf("delivery %s #%d %s %s %s", d.StepID, d.Visit, d.Channel, d.State, d.Reason))
		}
		for _, m := range tr.Messages {
			item := fmt.Sprintf("message %s %s %s", m.StepID, m.Channel, canonical(t, m.Message))
			v.items[m.UserID] = append(v.items[m.UserID], item)
			v.times[m.UserID] = append(v.times[m.UserID], timed{m.StepID + " " + m.Channel, m.At.Sub(t0)})
		}
		for _, x := range tr.Exits {
			add(x.UID, "exit "+x.Reason)
		}
		for _, c := range tr.Conversions {
			add(c.UID, "converted")
		}
		for _, c := range tr.StaffCustomers {
			add(c.UID, fmt.Sprintf("staff %s %s %s", c.StepID, c.Staff, c.Status))
		}
	}
	for id, items := range v.items {
		row, err := st.ProfileByID(ctx, id)
		if err == nil {
			var doc struct {
				Tags []string `json:"tags"`
			}
			_ = json.Unmarshal(row.Doc, &doc)
			doc.Tags = slices.DeleteFunc(doc.Tags, func(tag string) bool { return !slices.Contains(ours, tag) })
			sort.Strings(doc.Tags)
			items = append(items, "tags "+strings.Join(doc.Tags, ","))
		}
		slices.Sort(items)
		v.items[id] = items
	}
	return v
}

// canonical re-encodes JSON with sorted keys.
func canonical(t *testing.T, raw json.RawMessage) string {
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
