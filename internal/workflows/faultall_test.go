package workflows

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// The standing proof that every activity is idempotent (issue 11): every
// example canvas, plus loop, wait-for-event, split, merge, quiet-hours and
// staff cases, runs once without faults and then with faults injected into
// the first attempt of activities — (a) failing before the activity runs,
// (b) running it and losing its completion — and each user's outcome (the
// steps entered on each visit, so the arm taken; every delivery and its
// state; every message written; exits; staff-task customers; what the
// WeCom fake received) must equal the fault-free run's.
//
// By default each run faults every activity type at once (the first
// attempt of every activity execution fails), one run per fault kind.
// -faults.exhaustive runs one activity type at a time instead: for every
// type the fault-free run executed, each fault kind once.

var exhaustiveFaults = flag.Bool("faults.exhaustive", false, "fault-injection harness: fault one activity type per run (every type × fault kind), not all at once")

// interpreterActivities are the activity types the interpreter runs (the
// cases below must execute each of them). Not here: StaffTask (the outbox
// stub of runs recorded before the staff SOP loop, replay only), SendOne
// (the one-workflow-per-user comparison of `huabu bench`),
// SyncWeComDirectory (its own workflow), BeginRun, EnterHead and EnterRest
// (audience runs: the cases here name their users, whose runs begin with
// BeginEnter; TestAudienceEntersInTwoParts faults them), and Enter (runs of
// named users recorded before beginEnterChange).
var interpreterActivities = []string{
	"LoadPlan", "BeginEnter", "EnterStep", "Send", "Subtract", "Union", "Partition", "Tag", "Exit",
	"AwaitEvent", "CollectArrivals", "FinishRun",
	"StaffAssign", "StaffDispatch", "StaffPoll", "StaffRemind", "StaffEscalate", "StaffFinish",
}

// arrival is users sending the event a run waits for, at an offset from
// the run's start.
type arrival struct {
	after time.Duration
	event string
	users func(i int) bool // by the user's index in the case's users
}

type faultCase struct {
	name   string
	canvas string // source
	start  string // "2006-01-02 15:04", Shanghai
	// allUsers: the named users enter whatever the audience says (canvases
	// whose audience reads computed traits the harness does not compute).
	allUsers bool
	arrivals []arrival
	confirm  []string // staff who send their tasks an hour after receiving them
}

// exampleArrivals: every wait for an event in the canvas hears from a
// third of the users two hours in, and from another third a day later.
func exampleArrivals(plan *canvases.Plan) []arrival {
	var out []arrival
	for _, s := range plan.Steps {
		if s.Kind == canvases.StepWait && s.Wait.Kind == canvases.WaitEvent {
			out = append(out,
				arrival{after: 2 * time.Hour, event: s.Wait.Event, users: func(i int) bool { return i%3 == 0 }},
				arrival{after: 26 * time.Hour, event: s.Wait.Event, users: func(i int) bool { return i%3 == 1 }})
		}
	}
	return out
}

func faultCases(t *testing.T) []faultCase {
	var cases []faultCase
	entries, err := examples.FS.ReadDir("canvases")
	require.NoError(t, err)
	for _, e := range entries {
		src, err := examples.FS.ReadFile("canvases/" + e.Name())
		require.NoError(t, err)
		id := strings.TrimSuffix(e.Name(), ".yaml")
		cases = append(cases, faultCase{
			name: "example " + id, canvas: string(src), start: "2027-03-01 09:00",
			allUsers: id == "winback-dormant" || id == "trial-expiry", // RFM and trial dates relative to now
			confirm:  []string{"lina", "wangfang"},
		})
	}
	return append(cases,
		faultCase{name: "loop", start: "2027-03-01 10:00", canvas: `
id: fi-loop
trigger: {manual: {}}
steps:
  - id: remind
    push: {channel: sms, template: SMS_REMIND, params: {name: '{{ .user.name | default "顾客" }}'}}
  - id: wait-day
    wait: {event: purchase, timeout: 1d, on_timeout: remind}
  - id: bought
    exit: {reason: converted}
`, arrivals: []arrival{
			{after: time.Hour, event: "purchase", users: func(i int) bool { return i%3 == 0 }},
			{after: 25 * time.Hour, event: "purchase", users: func(i int) bool { return i%3 == 1 }},
			{after: 49 * time.Hour, event: "purchase", users: func(i int) bool { return i%3 == 2 }},
		}},
		faultCase{name: "wait for event", start: "2027-03-01 10:00", canvas: `
id: fi-wait
trigger: {manual: {}}
steps:
  - id: offer
    push: {channel: push, title: 新品, text: '{{ .user.name | default "您好" }}，新品上架'}
  - id: wait-buy
    wait: {event: purchase, timeout: 2d, on_timeout: nudge}
  - id: thanks
    tag: {add: [fi-bought]}
    next: done
  - id: nudge
    push: {channel: email, subject: 还在考虑吗, text: 新品限时优惠}
  - id: done
    exit: {}
`, arrivals: []arrival{
			{after: 3 * time.Hour, event: "purchase", users: func(i int) bool { return i%4 == 0 }},
			{after: 30 * time.Hour, event: "purchase", users: func(i int) bool { return i%4 == 1 }},
			{after: 30*time.Hour + time.Minute, event: "purchase", users: func(i int) bool { return i%4 == 1 || i%4 == 2 }},
		}},
		faultCase{name: "split and merge", start: "2027-03-01 10:00", canvas: `
id: fi-split
trigger: {manual: {}}
audience: 'user.city != "深圳"'
steps:
  - id: by-level
    branch:
      - {when: 'user.level in ["金卡", "钻石"]', goto: ab}
      - {else: plain}
  - id: ab
    split: [{weight: 40, goto: arm-a}, {weight: 30, goto: arm-b}, {weight: 30, goto: arm-c}]
  - id: arm-a
    push: {channel: sms, template: SMS_A, params: {name: '{{ .user.name | default "顾客" }}'}}
    next: pause
  - id: arm-b
    push: {channel: push, title: B, text: 方案B}
    next: pause
  - id: arm-c
    tag: {add: [fi-c]}
    next: pause
  - id: plain
    push: {channel: webhook, text: plain}
  - id: pause
    wait: 1d
  - id: after
    push: {channel: email, subject: 回访, text: 感谢参与}
`},
		faultCase{name: "quiet hours", start: "2027-03-01 22:00", canvas: `
id: fi-quiet
trigger: {manual: {}}
policy:
  quiet_hours: {from: "21:00", to: "09:00", action: delay}
steps:
  - id: night
    push: {channel: push, title: 早安, text: 早上好}
  - id: tag
    tag: {add: [fi-morning]}
`},
		faultCase{name: "staff", start: "2027-03-01 09:00", confirm: []string{"lina", "zhangwei"}, canvas: `
id: fi-staff
trigger: {manual: {}}
audience: 'user.owner != ""'
steps:
  - id: task
    staff_task:
      text: "今日新品已上架，请转发给您的客户。"
      deadline: {at: "18:00"}
      remind: ["14:00"]
      escalate_to: owner.leader
  - id: pause
    wait: 1d
  - id: follow
    push: {channel: sms, template: SMS_FOLLOW, params: {name: '{{ .user.name | default "顾客" }}'}}
`},
	)
}

// faultOutcome is what one run of a case left, user by user, and which
// activity types ran and were faulted.
type faultOutcome struct {
	users    map[string][]string
	counts   map[string]*store.StepCounts
	entered  int64
	seen     map[string]int
	injected map[string]int
}

// runFaultCase runs a case in a fresh store under faults (nil: none).
func runFaultCase(t *testing.T, c faultCase, faults *faultInjector) faultOutcome {
	t.Helper()
	ctx := context.Background()
	h := newStaffHarness(t, "")
	cfg := exampleConfig(t)
	schema, err := cfg.Schema()
	require.NoError(t, err)
	var users []string
	for _, file := range []string{"profiles.jsonl", "staff-profiles.jsonl"} {
		raw, err := examples.FS.ReadFile(file)
		require.NoError(t, err)
		sum, err := ingest.ImportProfiles(ctx, h.store, schema, bytes.NewReader(raw), ingest.Options{})
		require.NoError(t, err)
		require.Empty(t, sum.Rejected)
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var p struct {
				UserID string `json:"userId"`
				Traits struct {
					Name, Owner string
					External    string `json:"wecom_external_userid"`
				}
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &p))
			users = append(users, p.UserID)
			if p.Traits.Owner != "" && p.Traits.External != "" {
				h.fake.AddContact(p.Traits.Owner, p.Traits.External, p.Traits.Name)
			}
		}
	}
	for _, s := range c.confirm {
		h.fake.AutoConfirm(s, time.Hour)
	}
	plan := h.deploy(c.canvas)
	arrivals := c.arrivals
	if strings.HasPrefix(c.name, "example ") {
		arrivals = exampleArrivals(plan)
	}

	h.faults = faults
	env := h.newEnv()
	env.SetStartTime(at(t, strings.Fields(c.start)[0], strings.Fields(c.start)[1]))
	uids, err := h.store.UIDs(ctx, users)
	require.NoError(t, err)
	for _, a := range arrivals {
		var who []int64
		for i, u := range users {
			if a.users(i) {
				who = append(who, uids[u])
			}
		}
		env.RegisterDelayedCallback(func() {
			// As the router does: arrivals of members of the run's open
			// waits for the event, then a signal.
			runs, err := h.store.Runs(ctx, plan.ID, 1)
			require.NoError(t, err)
			if len(runs) == 0 {
				return
			}
			waits, err := h.store.WaitsIn(ctx, []int64{runs[0].ID}, a.event)
			require.NoError(t, err)
			for _, w := range waits {
				var members []int64
				for _, uid := range who {
					in, err := h.store.InCohort(ctx, w.CohortID, uid)
					require.NoError(t, err)
					if in {
						members = append(members, uid)
					}
				}
				_, err := h.store.RecordArrivals(ctx, w.CohortID, members, env.Now())
				require.NoError(t, err)
			}
			if len(waits) > 0 {
				env.SignalWorkflow(ArrivalsSignal, nil)
			}
		}, a.after)
	}
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual", UserIDs: users, ApplyAudience: !c.allUsers})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res RunResult
	require.NoError(t, env.GetWorkflowResult(&res))

	out := faultOutcome{users: userOutcomes(t, h, res.RunID, store.RunCompleted), entered: res.Stats.Entered}
	// The step counters the writes maintained (ADR 020) must say what the
	// rows say, retried writes or not.
	counts, converted, err := h.store.Counts(ctx, plan.ID, res.RunID)
	require.NoError(t, err)
	require.NoError(t, h.store.RecountRun(ctx, res.RunID))
	recounted, reconverted, err := h.store.Counts(ctx, plan.ID, res.RunID)
	require.NoError(t, err)
	require.Equal(t, recounted, counts, "step counters differ from the rows they count")
	require.Equal(t, reconverted, converted, "conversion counter differs from the conversions")
	out.counts = counts
	if faults != nil {
		out.seen, out.injected = faults.counts()
	}
	return out
}

func exampleConfig(t *testing.T) *config.Config {
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse("huabu.yaml", "", src)
	require.NoError(t, err)
	return cfg
}

// userOutcomes reads what a run left in the store and the WeCom fake, as a
// sorted list of items per user (staff keyed "staff:ID").
func userOutcomes(t *testing.T, h *staffHarness, runID int64, state string) map[string][]string {
	ctx := context.Background()
	tr, err := h.store.Trace(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, state, tr.Run.State)
	ids := map[int64]string{}
	user := func(uid int64) string {
		if id, ok := ids[uid]; ok {
			return id
		}
		rows, err := h.store.Profiles(ctx, []int64{uid})
		require.NoError(t, err)
		require.Len(t, rows, 1)
		ids[uid] = rows[0].ID
		return rows[0].ID
	}
	items := map[string][]string{}
	add := func(uid int64, item string) { items[user(uid)] = append(items[user(uid)], item) }
	members := func(cohort int64) []int64 {
		c, err := h.store.GetCohort(ctx, cohort)
		require.NoError(t, err)
		pages, err := h.store.Pages(ctx, cohort, 0, c.PageSpan)
		require.NoError(t, err)
		var out []int64
		for _, p := range pages {
			out = append(out, p.Members...)
		}
		return out
	}
	for _, e := range tr.StepEntries {
		for _, u := range members(e.CohortID) {
			add(u, fmt.Sprintf("enter %s #%d", e.StepID, e.Visit))
		}
	}
	for _, d := range tr.Deliveries {
		add(d.UID, fmt.Sprintf("delivery %s #%d %s %s %s", d.StepID, d.Visit, d.Channel, d.State, d.Reason))
	}
	for _, m := range tr.Messages {
		items[m.UserID] = append(items[m.UserID], fmt.Sprintf("message %s %s %s", m.StepID, m.Channel, canonicalJSON(t, m.Message)))
	}
	for _, x := range tr.Exits {
		add(x.UID, fmt.Sprintf("left %s %s", x.StepID, x.Reason))
	}
	for _, x := range tr.CohortExits {
		for _, u := range members(x.CohortID) {
			add(u, fmt.Sprintf("finished %s %s", x.StepID, x.Reason))
		}
	}
	for _, c := range tr.StaffCustomers {
		add(c.UID, fmt.Sprintf("staff %s %s %s", c.StepID, c.Staff, c.Status))
	}
	for _, task := range h.fake.Tasks() {
		externals := slices.Sorted(slices.Values(task.ExternalUserID))
		items["staff:"+task.Sender] = append(items["staff:"+task.Sender], fmt.Sprintf("wecom task %s %v", task.Text, externals))
	}
	for _, m := range h.fake.AppMessages() {
		items["staff:"+m.To] = append(items["staff:"+m.To], fmt.Sprintf("wecom app %s %s", m.MsgType, m.Content))
	}
	for _, w := range h.fake.Welcomes() {
		items["staff:"+w.Staff] = append(items["staff:"+w.Staff], fmt.Sprintf("wecom welcome %s %s", w.ExternalUserID, w.Text))
	}
	for id, list := range items {
		row, err := h.store.ProfileByID(ctx, id)
		if err == nil {
			var doc struct {
				Tags []string `json:"tags"`
			}
			require.NoError(t, json.Unmarshal(row.Doc, &doc))
			list = append(list, "tags "+strings.Join(slices.Sorted(slices.Values(doc.Tags)), ","))
		}
		slices.Sort(list)
		items[id] = list
	}
	return items
}

func canonicalJSON(t *testing.T, raw json.RawMessage) string {
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestEveryActivityIsIdempotent is the fault-injection harness over every
// example canvas and the loop, wait, split, merge, quiet-hours and staff
// cases (see the top of this file).
func TestEveryActivityIsIdempotent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every example canvas several times")
	}
	covered := map[string]bool{}
	for _, c := range faultCases(t) {
		t.Run(c.name, func(t *testing.T) {
			base := runFaultCase(t, c, newFaultInjector("", failBefore))
			require.Positive(t, base.entered, "nobody entered: the case proves nothing")
			types := slices.Sorted(maps.Keys(base.seen))
			for _, typ := range types {
				covered[typ] = true
			}
			targets := []string{everyActivity}
			if *exhaustiveFaults {
				targets = types
			}
			for _, target := range targets {
				for _, mode := range []fault{failBefore, loseCompletion} {
					got := runFaultCase(t, c, newFaultInjector(target, mode))
					for _, typ := range types {
						if target == everyActivity || target == typ {
							require.Positive(t, got.injected[typ], "%s of %s was not injected", mode, typ)
						}
					}
					require.Equal(t, base.users, got.users, "%s of %s: a user's outcome differs from the fault-free run", mode, target)
					require.Equal(t, base.counts, got.counts, "%s of %s: the report's counts differ from the fault-free run's", mode, target)
				}
			}
			t.Logf("%d users, activity types %v", len(base.users), types)
		})
	}
	if !t.Failed() {
		for _, typ := range interpreterActivities {
			require.True(t, covered[typ], "no case runs activity %s", typ)
		}
	}
}
