package workflows

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// The staff SOP loop in Temporal's test environment (virtual time) against
// the WeCom fake, through the real activities, channels and store. The fake
// and the activities read the workflow's clock, so "14:00" is 14:00 for
// everyone, and a day passes in milliseconds.

// staffHarness is the harness with WeCom pointed at the fake.
type staffHarness struct {
	*harness
	fake *fakes.WeCom
}

const staffDirectory = `{"userid": "zhangwei", "name": "张伟", "grid": "浦东一网格", "leader": "chenjing"}
{"userid": "lina", "name": "李娜", "grid": "浦东一网格", "leader": "chenjing"}
{"userid": "wangfang", "name": "王芳", "grid": "徐汇二网格", "leader": "zhaolei"}
{"userid": "liuyang", "name": "刘洋", "grid": "徐汇二网格", "leader": "zhaolei"}
{"userid": "sunli", "name": "孙丽", "grid": "徐汇二网格", "leader": "zhaolei"}
{"userid": "chenjing", "name": "陈静", "grid": "浦东一网格", "leader": ""}
{"userid": "zhaolei", "name": "赵磊", "grid": "徐汇二网格", "leader": ""}
`

func newStaffHarness(t *testing.T, extra string) *staffHarness {
	t.Helper()
	fake := fakes.NewWeCom("ww-corp", "secret", "1000002")
	t.Cleanup(fake.Close)
	h := newHarnessWith(t, fmt.Sprintf(`channels:
  wecom: {corp_id: ww-corp, agent_id: 1000002, secret: secret, base_url: "%s", timeout: 500ms, staff_poll_interval: 30m%s}
`, fake.URL(), extra))
	// One clock: the workflow's. Activities and the fake read it, so task
	// creation, confirmations, reminders and deadlines line up.
	clock := func() time.Time {
		if h.env == nil { // before the first run: setting up
			return time.Now()
		}
		return h.env.Now()
	}
	h.acts.Now = clock
	fake.Now = clock
	h.store.SetClock(clock)
	_, err := ingest.ImportStaff(context.Background(), h.store, strings.NewReader(staffDirectory))
	require.NoError(t, err)
	return &staffHarness{harness: h, fake: fake}
}

// remindByHand reminds a task the way another tool (or an admin) would.
func (h *staffHarness) remindByHand(msgID string) {
	h.t.Helper()
	api, err := wecom.NewAPI(map[string]any{"corp_id": "ww-corp", "agent_id": "1000002", "secret": "secret", "base_url": h.fake.URL()}, channels.Deps{})
	require.NoError(h.t, err)
	require.NoError(h.t, api.RemindMassTask(context.Background(), msgID))
}

// customer is one profile of the staff tests.
type customer struct {
	id, owner, external string
}

func (h *staffHarness) customers(cs ...customer) {
	h.t.Helper()
	var ups []store.ProfileUpdate
	for _, c := range cs {
		doc := fmt.Sprintf(`{"name": "客户%s"`, c.id)
		if c.owner != "" {
			doc += fmt.Sprintf(`, "owner": %q`, c.owner)
		}
		if c.external != "" {
			doc += fmt.Sprintf(`, "wecom_external_userid": %q`, c.external)
		}
		ups = append(ups, store.ProfileUpdate{ID: c.id, Patch: []byte(doc + "}")})
		if c.owner != "" && c.external != "" && !strings.HasPrefix(c.external, "stranger") {
			h.fake.AddContact(c.owner, c.external, "客户"+c.id)
		}
	}
	_, err := h.store.UpsertProfiles(context.Background(), ups)
	require.NoError(h.t, err)
}

// start runs the canvas from start (virtual time) to its end.
func (h *staffHarness) start(plan *canvases.Plan, start time.Time, setup func()) RunResult {
	h.t.Helper()
	env := h.newEnv()
	env.SetStartTime(start)
	if setup != nil {
		setup()
	}
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.True(h.t, env.IsWorkflowCompleted())
	require.NoError(h.t, env.GetWorkflowError())
	var res RunResult
	require.NoError(h.t, env.GetWorkflowResult(&res))
	return res
}

func (h *staffHarness) tasks(runID int64, step string) map[string]store.StaffTask {
	h.t.Helper()
	ts, err := h.store.StaffTasks(context.Background(), runID, step)
	require.NoError(h.t, err)
	out := map[string]store.StaffTask{}
	for _, t := range ts {
		out[t.Staff] = t
	}
	return out
}

// msgID is the one task the fake holds for sender.
func (h *staffHarness) msgID(sender string) string {
	h.t.Helper()
	ts := h.fake.TasksFor(sender)
	require.Len(h.t, ts, 1, "tasks of %s", sender)
	return ts[0].MsgID
}

func at(t *testing.T, day, clock string) time.Time {
	v, err := time.ParseInLocation("2006-01-02 15:04", day+" "+clock, shanghai(t))
	require.NoError(t, err)
	return v
}

func clocks(ts []time.Time, loc *time.Location) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.In(loc).Format("15:04"))
	}
	return out
}

// TestStaffTaskLoop runs one staff_task step through a working day: a task
// per owner (one refused by WeCom, one retried after a transient error),
// notices, polling every 30 minutes, reminders at 11:00, 14:00 and 16:00
// to those not done, escalation to the grid leader at 18:00, a late
// confirmation inside the late window, and the completion report by grid.
func TestStaffTaskLoop(t *testing.T) {
	h := newStaffHarness(t, ", staff_late_window: 3h")
	h.customers(
		customer{"c01", "zhangwei", "wm01"}, customer{"c02", "zhangwei", "wm02"}, customer{"c03", "zhangwei", "wm03"},
		customer{"c04", "lina", "wm04"}, customer{"c05", "lina", "wm05"}, customer{"c13", "lina", "stranger13"},
		customer{"c06", "wangfang", "wm06"}, customer{"c07", "wangfang", "wm07"},
		customer{"c08", "liuyang", "wm08"},
		customer{"c09", "sunli", "wm09"}, customer{"c10", "sunli", "wm10"},
		customer{"c11", "zhangwei", ""}, // no WeCom id: left out
		customer{"c12", "", "wm12"},     // nobody owns them: left out
	)
	plan := h.deploy(`
id: daily
name: 每日群发
trigger: {manual: {}}
steps:
  - id: task
    staff_task:
      text: "【今日推荐】会员日专属权益已上线"
      notice: "{{ .staff.name }}，今天有 {{ .task.customers }} 位客户待发送，请在 {{ .task.deadline | date \"15:04\" }} 前完成。"
      deadline: {at: "18:00"}
      remind: ["11:00", "14:00", "16:00"]
      escalate_to: owner.leader
`)
	loc := shanghai(t)
	day := "2026-03-02"
	h.fake.FailSender("liuyang", fakes.SenderFault{Errcode: 60111})         // not a member any more: refused
	h.fake.FailSender("zhangwei", fakes.SenderFault{Errcode: -1, Times: 1}) // system busy once
	h.fake.AlreadyReceived("wm03")                                          // had another mass-send today
	h.fake.AutoConfirm("zhangwei", time.Hour)                               // 10:00, before any reminder
	h.fake.AutoConfirm("lina", 5*time.Hour+30*time.Minute)                  // 14:30, after two
	h.fake.AutoConfirm("wangfang", 10*time.Hour)                            // 19:00, after the deadline
	// The report read during the day: who is done so far.
	live := map[string]reports.StaffRow{}
	readReport := func(when string) func() {
		return func() {
			rep, err := reports.BuildStaff(context.Background(), h.store, "daily", 0, reports.ByStaff)
			require.NoError(t, err)
			for _, r := range rep.Rows {
				live[when+"/"+r.Staff] = r
			}
		}
	}
	res := h.start(plan, at(t, day, "09:00"), func() {
		// lina's customer wm05 deletes her at 12:00, after the task exists.
		h.env.RegisterDelayedCallback(func() { h.fake.RemoveContact("lina", "wm05") }, 3*time.Hour)
		h.env.RegisterDelayedCallback(readReport("15:00"), 6*time.Hour)
		h.env.RegisterDelayedCallback(readReport("18:30"), 9*time.Hour+30*time.Minute)
	})
	for key, want := range map[string][3]int64{ // on time, open, not done
		"15:00/zhangwei": {1, 0, 0}, "15:00/lina": {1, 0, 0}, "15:00/wangfang": {0, 1, 0}, "15:00/sunli": {0, 1, 0},
		"18:30/wangfang": {0, 0, 1}, "18:30/sunli": {0, 0, 1},
	} {
		r := live[key]
		require.Equal(t, want, [3]int64{r.OnTime, r.Open, r.NotDone}, key)
	}
	require.Equal(t, int64(1), live["15:00/liuyang"].Failed)
	require.Zero(t, *live["15:00/wangfang"].CompletionRate, "an open task counts in the denominator")

	// One task per owner, the transient failure retried, the refused one
	// not stopping the others; nobody got two.
	calls := h.fake.CreateCalls()
	require.Equal(t, map[string]int{"zhangwei": 2, "lina": 1, "wangfang": 1, "liuyang": 1, "sunli": 1}, calls)
	for _, s := range []string{"zhangwei", "lina", "wangfang", "sunli"} {
		require.Len(t, h.fake.TasksFor(s), 1, s)
	}
	require.Empty(t, h.fake.TasksFor("liuyang"))
	require.ElementsMatch(t, []string{"wm01", "wm02", "wm03"}, h.fake.TasksFor("zhangwei")[0].ExternalUserID, "c11 has no WeCom id")

	// Each staff member with a task was told, once, with their count.
	for staff, want := range map[string]string{"zhangwei": "张伟，今天有 3 位客户待发送，请在 18:00 前完成。", "lina": "李娜，今天有 2 位客户待发送",
		"wangfang": "王芳，今天有 2 位客户待发送", "sunli": "孙丽，今天有 2 位客户待发送"} {
		msgs := h.fake.AppMessagesTo(staff)
		require.Len(t, msgs, 1, staff)
		require.Contains(t, msgs[0].Content, want)
	}
	require.Empty(t, h.fake.AppMessagesTo("liuyang"))

	// Reminders at the configured times, only while not done.
	require.Empty(t, h.fake.ReminderTimes(h.msgID("zhangwei")))
	require.Equal(t, []string{"11:00", "14:00"}, clocks(h.fake.ReminderTimes(h.msgID("lina")), loc))
	require.Equal(t, []string{"11:00", "14:00", "16:00"}, clocks(h.fake.ReminderTimes(h.msgID("wangfang")), loc))
	require.Equal(t, []string{"11:00", "14:00", "16:00"}, clocks(h.fake.ReminderTimes(h.msgID("sunli")), loc))

	// Escalation at the deadline: the 徐汇 leader hears about wangfang and
	// sunli; the 浦东 leader, whose staff were done, hears nothing.
	require.Empty(t, h.fake.AppMessagesTo("chenjing"))
	esc := h.fake.AppMessagesTo("zhaolei")
	require.Len(t, esc, 1)
	require.Equal(t, "18:00", esc[0].At.In(loc).Format("15:04"))
	require.Contains(t, esc[0].Content, "【每日群发】截至 03-02 18:00")
	require.Contains(t, esc[0].Content, "王芳：2 位客户未发送")
	require.Contains(t, esc[0].Content, "孙丽：2 位客户未发送")
	require.NotContains(t, esc[0].Content, "刘洋", "a task that was never created is not the member's lateness")

	// Outcomes.
	tasks := h.tasks(res.RunID, "task")
	require.Equal(t, store.StaffOnTime, tasks["zhangwei"].Result)
	require.Equal(t, store.StaffOnTime, tasks["lina"].Result)
	require.Equal(t, store.StaffLate, tasks["wangfang"].Result)
	require.Equal(t, store.StaffTaskFailed, tasks["liuyang"].Result)
	require.Equal(t, store.StaffNotDone, tasks["sunli"].Result)
	require.Equal(t, at(t, day, "14:30").UTC(), tasks["lina"].DoneAt.UTC())
	require.Equal(t, at(t, day, "19:00").UTC(), tasks["wangfang"].DoneAt.UTC())
	require.False(t, tasks["sunli"].EscalatedAt.IsZero())
	require.True(t, tasks["lina"].EscalatedAt.IsZero())

	// The run's stats count customers: sent c01 c02 c04 c06 c07; failed
	// c03 (quota) c05 (deleted) c13 (not a contact) c09 c10 (unsent) and
	// c08 (task refused); left out c11 c12.
	require.Equal(t, int64(5), res.Stats.Sent)
	require.Equal(t, int64(6), res.Stats.Failed)
	require.Equal(t, int64(2), res.Stats.Suppressed)

	// The per-step report reads the same verdicts from the ledger.
	c := h.counts("daily", res.RunID)
	require.Equal(t, int64(5), c["task"].Sent)
	require.Equal(t, int64(2), c["task"].Failed["not_friend"], "%+v", c["task"])
	require.Equal(t, int64(1), c["task"].Failed["over_quota"])
	require.Equal(t, int64(2), c["task"].Failed["unsent"])

	// The completion report, by grid and by staff member.
	rep, err := reports.BuildStaff(context.Background(), h.store, "daily", res.RunID, reports.ByGrid)
	require.NoError(t, err)
	require.Len(t, rep.Rows, 2)
	grids := map[string]reports.StaffRow{}
	for _, r := range rep.Rows {
		grids[r.Grid] = r
	}
	pd, xh := grids["浦东一网格"], grids["徐汇二网格"]
	require.Equal(t, 2, pd.Staffs)
	require.Equal(t, int64(2), pd.Tasks)
	require.Equal(t, int64(2), pd.OnTime)
	require.Equal(t, 1.0, *pd.OnTimeRate)
	require.Equal(t, int64(3), pd.Sent)
	require.Equal(t, int64(2), pd.NotFriend)
	require.Equal(t, int64(1), pd.OverQuota)
	require.Equal(t, 3, xh.Staffs)
	require.Equal(t, int64(3), xh.Tasks)
	require.Equal(t, int64(1), xh.Late)
	require.Equal(t, int64(1), xh.NotDone)
	require.Equal(t, int64(1), xh.Failed)
	require.Equal(t, 0.0, *xh.OnTimeRate)
	require.Equal(t, 0.5, *xh.CompletionRate)
	require.Equal(t, int64(2), xh.Sent)
	require.Equal(t, int64(2), xh.Unsent)
	require.Equal(t, int64(5), rep.Total.Tasks)
	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	t.Logf("\n%s", text.String())
}

// TestStaffTaskRemindersCappedPerDay: a two-day task with three reminder
// times a day gets six reminders in all, never more than three in any 24
// hours; when WeCom refuses one anyway (reminded from elsewhere), the loop
// counts it as capped and goes on rather than retrying.
func TestStaffTaskRemindersCappedPerDay(t *testing.T) {
	h := newStaffHarness(t, ", staff_late_window: 0s")
	h.customers(customer{"c01", "zhangwei", "wm01"}, customer{"c02", "lina", "wm02"})
	plan := h.deploy(`
id: two-days
trigger: {manual: {}}
steps:
  - id: task
    staff_task:
      text: "本周新品，请转发给您的客户"
      deadline: 2d
      remind: ["10:00", "15:00", "20:00"]
`)
	loc := shanghai(t)
	start := at(t, "2026-03-02", "09:00")
	res := h.start(plan, start, func() {
		// Someone reminds lina's task by hand at 12:00 on the first day:
		// WeCom then refuses Huabu's third reminder of that day.
		h.env.RegisterDelayedCallback(func() {
			id := h.fake.TasksFor("lina")[0].MsgID
			h.remindByHand(id)
		}, 3*time.Hour)
	})
	zw := h.fake.ReminderTimes(h.msgID("zhangwei"))
	require.Equal(t, []string{"10:00", "15:00", "20:00", "10:00", "15:00", "20:00"}, clocks(zw, loc))
	for i := range zw {
		n := 0
		for _, x := range zw {
			if !x.Before(zw[i]) && x.Sub(zw[i]) < 24*time.Hour {
				n++
			}
		}
		require.LessOrEqual(t, n, 3, "more than 3 reminders in the 24 h from %s", zw[i])
	}
	li := h.fake.ReminderTimes(h.msgID("lina"))
	require.Equal(t, []string{"10:00", "12:00", "15:00", "10:00", "15:00", "20:00"}, clocks(li, loc),
		"20:00 on day one would be the fourth in 24 h: WeCom refused it, and day two's 10:00 is allowed again")
	tasks := h.tasks(res.RunID, "task")
	require.Len(t, tasks["lina"].Reminders, 5, "the refused slot is not recorded as sent")
	require.Equal(t, store.StaffNotDone, tasks["zhangwei"].Result)
	// Both staff members' leader is chenjing: one escalation message for the two.
	esc := h.fake.AppMessagesTo("chenjing")
	require.Len(t, esc, 1)
	require.Contains(t, esc[0].Content, "张伟：1 位客户未发送")
	require.Contains(t, esc[0].Content, "李娜：1 位客户未发送")
}

// TestStaffTaskAdoptsTaskAfterLostAnswer: WeCom creates zhangwei's task but
// the answer never arrives (the worker crashed, or the call timed out,
// between creating the task and recording it). The next attempt finds the
// task on WeCom and adopts it: one add_msg_template call, one task. A call
// that hung before WeCom acted is created once, after the lookup finds
// nothing.
func TestStaffTaskAdoptsTaskAfterLostAnswer(t *testing.T) {
	h := newStaffHarness(t, "")
	h.customers(customer{"c01", "zhangwei", "wm01"}, customer{"c02", "lina", "wm02"}, customer{"c03", "wangfang", "wm03"})
	h.fake.Hang = 2 * time.Second
	h.fake.FailSender("zhangwei", fakes.SenderFault{HangAfterCreate: true, Times: 1})
	h.fake.FailSender("lina", fakes.SenderFault{HangBeforeCreate: true, Times: 1})
	h.fake.AutoConfirm("zhangwei", 30*time.Minute)
	h.fake.AutoConfirm("lina", 30*time.Minute)
	h.fake.AutoConfirm("wangfang", 30*time.Minute)
	plan := h.deploy(`
id: lost-answer
trigger: {manual: {}}
steps:
  - id: task
    staff_task:
      text: "今日推荐"
      deadline: 9h
`)
	res := h.start(plan, at(t, "2026-03-02", "09:00"), nil)
	require.Equal(t, map[string]int{"zhangwei": 1, "lina": 2, "wangfang": 1}, h.fake.CreateCalls())
	tasks := h.tasks(res.RunID, "task")
	for _, s := range []string{"zhangwei", "lina", "wangfang"} {
		require.Len(t, h.fake.TasksFor(s), 1, s)
		require.Equal(t, h.msgID(s), tasks[s].Ref, s)
		require.Equal(t, store.StaffOnTime, tasks[s].Result, s)
		require.Len(t, h.fake.AppMessagesTo(s), 1, "one notice for %s", s)
	}
	require.Equal(t, int64(3), res.Stats.Sent)
}

// TestStaffBriefAcknowledged: the staff-only form. Each specialist gets the
// brief as a template card with a confirm button; clicks come back through
// the real callback handler (signed and encrypted by the fake's sender);
// those who have not confirmed by 11:00 get a reminder; at the deadline the
// leader hears who did not.
func TestStaffBriefAcknowledged(t *testing.T) {
	h := newStaffHarness(t, "")
	// The specialists are the profiles (to: staff).
	var ups []store.ProfileUpdate
	for _, id := range []string{"zhangwei", "lina", "wangfang"} {
		ups = append(ups, store.ProfileUpdate{ID: "staff-" + id, Patch: []byte(fmt.Sprintf(`{"wecom_userid": %q}`, id))})
	}
	_, err := h.store.UpsertProfiles(context.Background(), ups)
	require.NoError(t, err)

	const aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	cb, err := server.NewWeComCallback(server.WeComCallbackConfig{Token: "tok", AESKey: aesKey, CorpID: "ww-corp"}, h.store, nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cb.Now = func() time.Time { return h.env.Now() }
	srv := httptest.NewServer(cb)
	t.Cleanup(srv.Close)
	sender := &fakes.CallbackSender{URL: srv.URL, Token: "tok", AESKey: aesKey, CorpID: "ww-corp", AgentID: "1000002", Now: func() time.Time { return h.env.Now() }}
	click := func(user string) {
		var taskID string
		for _, m := range h.fake.AppMessagesTo(user) {
			if m.MsgType == "template_card" {
				taskID = m.TaskID
			}
		}
		require.NotEmpty(t, taskID, "%s got no card", user)
		code, body, err := sender.Send(context.Background(), fakes.CardClickedEvent("ww-corp", "1000002", user, taskID, "ack", h.env.Now()))
		require.NoError(t, err)
		require.Equal(t, 200, code, body)
	}

	plan := h.deploy(`
id: brief
name: 晨会简报
trigger: {manual: {}}
audience: 'user.wecom_userid != ""'
steps:
  - id: brief
    staff_task:
      to: staff
      text: "{{ .staff.name }}，早上好！今日重点：会员日第二天。"
      deadline: 3h
      remind: [2h]
`)
	loc := shanghai(t)
	res := h.start(plan, at(t, "2026-03-02", "09:00"), func() {
		h.env.RegisterDelayedCallback(func() { click("zhangwei") }, 20*time.Minute)
		h.env.RegisterDelayedCallback(func() { click("lina") }, 2*time.Hour+30*time.Minute)
		// A click from someone else on zhangwei's card is not an ack.
		h.env.RegisterDelayedCallback(func() {
			code, _, err := sender.Send(context.Background(), fakes.CardClickedEvent("ww-corp", "1000002", "wangfang", h.tasks(1, "brief")["zhangwei"].Ref, "ack", h.env.Now()))
			require.NoError(t, err)
			require.Equal(t, 200, code)
		}, 40*time.Minute)
	})

	cards := 0
	for _, m := range h.fake.AppMessages() {
		if m.MsgType == "template_card" {
			cards++
			require.Contains(t, m.Content, "早上好")
		}
	}
	require.Equal(t, 3, cards, "one card each")
	reminded := func(user string) []string {
		var out []string
		for _, m := range h.fake.AppMessagesTo(user) {
			if m.MsgType == "text" && strings.HasPrefix(m.Content, "提醒") {
				out = append(out, m.At.In(loc).Format("15:04"))
			}
		}
		return out
	}
	require.Empty(t, reminded("zhangwei"))
	require.Equal(t, []string{"11:00"}, reminded("lina"))
	require.Equal(t, []string{"11:00"}, reminded("wangfang"))
	esc := h.fake.AppMessagesTo("zhaolei")
	require.Len(t, esc, 1)
	require.Contains(t, esc[0].Content, "以下成员尚未确认：王芳")
	require.Empty(t, h.fake.AppMessagesTo("chenjing"))

	tasks := h.tasks(res.RunID, "brief")
	require.Equal(t, store.StaffOnTime, tasks["zhangwei"].Result)
	require.Equal(t, store.StaffOnTime, tasks["lina"].Result)
	require.Equal(t, store.StaffNotDone, tasks["wangfang"].Result)

	rep, err := reports.BuildStaff(context.Background(), h.store, "brief", res.RunID, reports.ByStaff)
	require.NoError(t, err)
	require.Equal(t, int64(3), rep.Total.Tasks)
	require.Equal(t, int64(2), rep.Total.OnTime)
	require.InDelta(t, 2.0/3, *rep.Total.CompletionRate, 1e-9)
}

// TestHQDailySOPExample runs the example canvas unchanged: created at 09:00,
// reminded at 14:00, escalated at 18:00.
func TestHQDailySOPExample(t *testing.T) {
	h := newStaffHarness(t, ", staff_late_window: 1h")
	src, err := examples.FS.ReadFile("canvases/hq-daily-sop.yaml")
	require.NoError(t, err)
	plan := h.deploy(string(src))
	h.customers(customer{"c01", "zhangwei", "wm01"}, customer{"c02", "lina", "wm02"}, customer{"c03", "wangfang", "wm03"})
	h.fake.AutoConfirm("zhangwei", 2*time.Hour)
	loc := shanghai(t)
	res := h.start(plan, at(t, "2026-03-02", "09:00"), nil)
	require.Empty(t, h.fake.ReminderTimes(h.msgID("zhangwei")))
	require.Equal(t, []string{"14:00"}, clocks(h.fake.ReminderTimes(h.msgID("lina")), loc))
	require.Equal(t, []string{"14:00"}, clocks(h.fake.ReminderTimes(h.msgID("wangfang")), loc))
	require.Len(t, h.fake.AppMessagesTo("chenjing"), 1)
	require.Len(t, h.fake.AppMessagesTo("zhaolei"), 1)
	require.Equal(t, "18:00", h.fake.AppMessagesTo("zhaolei")[0].At.In(loc).Format("15:04"))
	require.Equal(t, int64(1), res.Stats.Sent)
	require.Contains(t, h.fake.TasksFor("lina")[0].Text, "会员日专属权益已上线")
}

// TestStaffTaskReachedByTwoCohorts: a staff_task step that two branches
// reach at different times (one arm waits three hours first) gives each cohort's
// customers their own tasks — the later cohort's customers are not left
// assigned in no task because the first cohort's tasks already exist — and
// each cohort's tasks are tracked and finished on their own (each has its
// own result; the store's TestStaffCohortsKeepTheirOwnTasks shows that
// finishing one cohort's leaves the other's untouched).
func TestStaffTaskReachedByTwoCohorts(t *testing.T) {
	h := newStaffHarness(t, "")
	h.customers(
		customer{"c01", "zhangwei", "wm01"}, customer{"c02", "zhangwei", "wm02"},
		customer{"c03", "lina", "wm03"},
		customer{"c04", "zhangwei", "wm04"}, customer{"c05", "lina", "wm05"}, customer{"c06", "lina", "wm06"},
	)
	plan := h.deploy(`
id: two-ways
name: 两条路
trigger: {manual: {}}
steps:
  - id: route
    branch:
      - {when: 'user.wecom_external_userid in ["wm01", "wm02", "wm03"]', goto: task}
      - {else: later}
  - id: later
    wait: 3h
    next: task
  - id: task
    staff_task:
      text: "【今日推荐】会员日专属权益已上线"
      deadline: {at: "18:00"}
`)
	h.fake.AutoConfirm("zhangwei", 30*time.Minute)
	h.fake.AutoConfirm("lina", 30*time.Minute)
	res := h.start(plan, at(t, "2026-03-02", "10:30"), nil)

	var inTasks []string
	for _, s := range []string{"zhangwei", "lina"} {
		for _, task := range h.fake.TasksFor(s) {
			inTasks = append(inTasks, task.ExternalUserID...)
		}
	}
	require.ElementsMatch(t, []string{"wm01", "wm02", "wm03", "wm04", "wm05", "wm06"}, inTasks, "every customer in exactly one task")
	require.Len(t, h.fake.TasksFor("zhangwei"), 2, "one task per cohort")
	require.Len(t, h.fake.TasksFor("lina"), 2, "one task per cohort")
	c := h.counts("two-ways", res.RunID)
	require.Equal(t, int64(6), c["task"].Sent, "%+v", c["task"])
	require.Equal(t, int64(6), res.Stats.Sent)
	tasks, err := h.store.StaffTasks(context.Background(), res.RunID, "task")
	require.NoError(t, err)
	require.Len(t, tasks, 4)
	cohorts := map[string]map[int64]bool{}
	for _, task := range tasks {
		if cohorts[task.Staff] == nil {
			cohorts[task.Staff] = map[int64]bool{}
		}
		cohorts[task.Staff][task.Cohort] = true
		require.Equal(t, store.StaffOnTime, task.Result, "each cohort's task tracked to its own result: %+v", task)
	}
	require.Len(t, cohorts["zhangwei"], 2, "zhangwei has a task in each cohort")
	require.Len(t, cohorts["lina"], 2, "lina has a task in each cohort")
}
