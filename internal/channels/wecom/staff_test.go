package wecom_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/store"
)

// clock is a settable time shared by the fake and the channel.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newAPI(t *testing.T, f *fakes.WeCom) *wecom.API {
	api, err := wecom.NewAPI(wecomCfg(f), testDeps())
	require.NoError(t, err)
	return api
}

func TestWeComMassTaskTracking(t *testing.T) {
	f := newWeComFake(t)
	f.Friends = map[string]map[string]bool{"zhangwei": {"wm1": true, "wm2": true, "wm3": true, "wm4": true}}
	api := newAPI(t, f)
	ctx := context.Background()
	before := time.Now().Add(-time.Minute)
	mt, err := api.CreateMassTask(ctx, "zhangwei", &canvases.Message{Text: "今日推荐"}, []string{"wm1", "wm2", "wm3", "wm4", "wm9"})
	require.NoError(t, err)
	require.Equal(t, []string{"wm9"}, mt.FailList)

	found, err := api.FindMassTasks(ctx, before, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.Equal(t, mt.MsgID, found[0].MsgID)
	require.Equal(t, "今日推荐", found[0].Text)

	staff, err := api.MassTaskStaff(ctx, mt.MsgID)
	require.NoError(t, err)
	require.Equal(t, []wecom.MassTaskStaff{{UserID: "zhangwei"}}, staff, "not sent until the member confirms")

	f.RemoveContact("zhangwei", "wm2")
	f.AlreadyReceived("wm3")
	require.Equal(t, 1, f.Confirm("zhangwei"))
	staff, err = api.MassTaskStaff(ctx, mt.MsgID)
	require.NoError(t, err)
	require.True(t, staff[0].Sent)
	results, err := api.MassTaskResults(ctx, mt.MsgID, "zhangwei")
	require.NoError(t, err)
	got := map[string]int{}
	for _, r := range results {
		got[r.ExternalUserID] = r.Status
	}
	require.Equal(t, map[string]int{"wm1": wecom.MassSent, "wm2": wecom.MassNotFriend, "wm3": wecom.MassOverQuota, "wm4": wecom.MassSent}, got)
}

// TestWeComRemindLimit: the fake refuses a fourth reminder within 24 hours
// with WeCom's 45009, which the client reports as over_quota (permanent),
// and allows it again a day later.
func TestWeComRemindLimit(t *testing.T) {
	f := newWeComFake(t)
	clk := &clock{t: time.Now()}
	f.Now = clk.Now
	api := newAPI(t, f)
	ctx := context.Background()
	mt, err := api.CreateMassTask(ctx, "lina", &canvases.Message{Text: "x"}, []string{"wm1"})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, api.RemindMassTask(ctx, mt.MsgID))
		clk.Add(time.Hour)
	}
	err = api.RemindMassTask(ctx, mt.MsgID)
	ce := channels.Classify(err)
	require.Equal(t, channels.Permanent, ce.Class)
	require.Equal(t, channels.ReasonOverQuota, ce.Reason)
	require.Equal(t, "45009", ce.Code)
	require.Equal(t, 3, f.Reminders(mt.MsgID))
	clk.Add(22 * time.Hour) // 24 h after the first reminder
	require.NoError(t, api.RemindMassTask(ctx, mt.MsgID))
}

func TestWeComDirectory(t *testing.T) {
	f := newWeComFake(t)
	f.AddDepartment(fakes.Department{ID: 1, Name: "总部"})
	f.AddDepartment(fakes.Department{ID: 2, Name: "浦东一网格", ParentID: 1, Leaders: []string{"chenjing"}})
	f.AddMember(fakes.Member{UserID: "chenjing", Name: "陈静", Departments: []int{2}})
	f.AddMember(fakes.Member{UserID: "zhangwei", Name: "张伟", Departments: []int{2}, DirectLeaders: []string{"chenjing"}})
	f.AddContact("zhangwei", "wm1", "徐静")
	api := newAPI(t, f)
	ctx := context.Background()
	depts, err := api.Departments(ctx)
	require.NoError(t, err)
	require.Len(t, depts, 2)
	require.Equal(t, []string{"chenjing"}, depts[1].Leaders)
	members, err := api.DepartmentMembers(ctx, 2)
	require.NoError(t, err)
	require.Len(t, members, 2)
	ids, err := api.ExternalContacts(ctx, "zhangwei")
	require.NoError(t, err)
	require.Equal(t, []string{"wm1"}, ids)
	ids, err = api.ExternalContacts(ctx, "chenjing")
	require.NoError(t, err)
	require.Empty(t, ids, "84061: a member without customers")
	follows, err := api.ContactsOf(ctx, []string{"zhangwei", "chenjing"})
	require.NoError(t, err)
	require.Len(t, follows, 1)
	require.Equal(t, "徐静", follows[0].Name)
}

// TestWeComCustomerWelcomeAndRemovedContacts: within the welcome code's
// window the first push is the welcome message, not a task; after the
// window (or once used) it is a task; a customer who removed their owner
// fails as not_friend without a call.
func TestWeComCustomerWelcomeAndRemovedContacts(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	defer st.Close()
	f := newWeComFake(t)
	clk := &clock{t: time.Now()}
	f.Now = clk.Now
	deps := testDeps()
	deps.Now, deps.Contacts = clk.Now, st
	ch := newChannel(t, "wecom.customer", "wecom", wecomCfg(f), deps)

	send := func(addrs ...string) []channels.Outcome {
		ds := deliveries(addrs...)
		for i := range ds {
			ds[i].Recipient.Sender = "zhangwei"
			ds[i].Message = &canvases.Message{Text: "您好，我是您的专属顾问"}
		}
		out, err := ch.Send(ctx, channels.Batch{Key: "k", Deliveries: ds})
		require.NoError(t, err)
		return out
	}

	// A new contact: the callback stored its code moments ago.
	code := f.IssueWelcomeCode("zhangwei", "wmNEW")
	require.NoError(t, st.ContactAdded(ctx, "zhangwei", "wmNEW", "", code, clk.Now().Add(18*time.Second)))
	out := send("wmNEW", "wmOLD")
	require.Equal(t, channels.Sent, out[0].Status)
	require.Equal(t, "welcome_msg", out[0].ProviderRef)
	require.Equal(t, channels.Sent, out[1].Status)
	require.Len(t, f.Welcomes(), 1)
	require.Equal(t, "wmNEW", f.Welcomes()[0].ExternalUserID)
	tasks := f.Tasks()
	require.Len(t, tasks, 1)
	require.Equal(t, []string{"wmOLD"}, tasks[0].ExternalUserID, "only the old customer needs a task")

	// The code is single use: the next push is a task.
	out = send("wmNEW")
	require.Equal(t, channels.Sent, out[0].Status)
	require.Len(t, f.Welcomes(), 1)
	require.Len(t, f.Tasks(), 2)

	// Outside the window the code is not used; the push falls back to a task.
	code = f.IssueWelcomeCode("zhangwei", "wmLATE")
	require.NoError(t, st.ContactAdded(ctx, "zhangwei", "wmLATE", "", code, clk.Now().Add(18*time.Second)))
	clk.Add(25 * time.Second)
	out = send("wmLATE")
	require.Equal(t, channels.Sent, out[0].Status)
	require.Len(t, f.Welcomes(), 1)
	require.Len(t, f.Tasks(), 3)

	// If Huabu's window is wrong, WeCom's refusal still falls back to a task.
	code = f.IssueWelcomeCode("zhangwei", "wmSKEW")
	clk.Add(21 * time.Second)
	require.NoError(t, st.ContactAdded(ctx, "zhangwei", "wmSKEW", "", code, clk.Now().Add(18*time.Second)))
	out = send("wmSKEW")
	require.Equal(t, channels.Sent, out[0].Status)
	require.Len(t, f.Welcomes(), 1)
	require.Len(t, f.Tasks(), 4)

	// Removed contacts are not addressed.
	require.NoError(t, st.ContactRemoved(ctx, "zhangwei", "wmGONE", store.ContactRemovedByCustomer))
	out = send("wmGONE", "wmOLD")
	require.Equal(t, channels.Failed, out[0].Status)
	require.Equal(t, channels.ReasonNotFriend, out[0].Reason)
	require.Equal(t, channels.Sent, out[1].Status)
	last := f.Tasks()[len(f.Tasks())-1]
	require.Equal(t, []string{"wmOLD"}, last.ExternalUserID)
}
