package app

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
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/reports"
)

const (
	fakeCallbackToken = "cb-token"
	fakeCallbackKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// startWeComApp runs the whole stack on the example config and canvases
// with channels.wecom pointed at a WeCom fake whose contacts are the
// example customers, and its callback on; the example staff and profiles
// are imported. editCanvas may change the example canvases (their timings).
// It does what startExampleApp does with a different wecom section.
func startWeComApp(t *testing.T, editCanvas func(name string, b []byte) []byte) (*App, *fakes.WeCom) {
	t.Helper()
	return startWeComAppWith(t, editCanvas, nil, nil)
}

// startWeComAppWith is startWeComApp with extra canvases and overrides of
// the embedded Temporal's dynamic config.
func startWeComAppWith(t *testing.T, editCanvas func(name string, b []byte) []byte, extraCanvases map[string]string, temporalConfig map[string]any) (*App, *fakes.WeCom) {
	t.Helper()
	fake := fakes.NewWeCom("ww-corp", "secret", "1000002")
	t.Cleanup(fake.Close)
	raw, err := examples.FS.ReadFile("profiles.jsonl")
	require.NoError(t, err)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var p struct {
			Traits struct {
				Name, Owner string
				External    string `json:"wecom_external_userid"`
			}
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &p))
		if p.Traits.Owner != "" && p.Traits.External != "" {
			fake.AddContact(p.Traits.Owner, p.Traits.External, p.Traits.Name)
		}
	}

	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	entries, err := examples.FS.ReadDir("canvases")
	require.NoError(t, err)
	for _, e := range entries {
		b, err := examples.FS.ReadFile("canvases/" + e.Name())
		require.NoError(t, err)
		if editCanvas != nil {
			b = editCanvas(e.Name(), b)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", e.Name()), b, 0o644))
	}
	for name, body := range extraCanvases {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", name), []byte(body), 0o644))
	}
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	text := strings.Replace(string(src), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	i := strings.Index(text, "wecom:   {provider: outbox}")
	require.GreaterOrEqual(t, i, 0, "the example config's wecom line changed")
	j := i + strings.Index(text[i:], "\n")
	text = text[:i] + fmt.Sprintf(`wecom:   {corp_id: ww-corp, agent_id: 1000002, secret: secret, base_url: "%s", timeout: 2s,
            staff_poll_interval: 1s, staff_late_window: 4s, directory_sync_interval: 0s,
            callback: {token: %s, aes_key: %s}}`, fake.URL(), fakeCallbackToken, fakeCallbackKey) + text[j:]
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(text))
	require.NoError(t, err)
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	app, err := Start(context.Background(), Options{Config: cfg, DataDir: filepath.Join(dir, "data"), TemporalDynamicConfig: temporalConfig,
		Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })

	schema, err := cfg.Schema()
	require.NoError(t, err)
	profiles, err := examples.FS.Open("profiles.jsonl")
	require.NoError(t, err)
	sum, err := ingest.ImportProfiles(context.Background(), app.Store(), schema, profiles, ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, sum.Rejected)
	staff, err := examples.FS.Open("staff.jsonl")
	require.NoError(t, err)
	_, err = ingest.ImportStaff(context.Background(), app.Store(), staff)
	require.NoError(t, err)
	return app, fake
}

// TestHQDailySOPAgainstWeComFake runs the HQ → specialist daily SOP example
// on the whole stack (embedded Temporal, store, worker, HTTP API) against
// the WeCom fake, with its 09:00/14:00/18:00 timings shrunk to seconds:
// one mass-send task per owner, zhangwei and wangfang confirm at once,
// liuyang confirms after the deadline, lina never; lina and liuyang are
// reminded, their leaders get the escalation, and the report by grid says so.
func TestHQDailySOPAgainstWeComFake(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app, fake := startWeComApp(t, func(name string, b []byte) []byte {
		if name != "hq-daily-sop.yaml" {
			return b
		}
		s := strings.Replace(string(b), `deadline: {at: "18:00"}`, "deadline: 6s", 1)
		s = strings.Replace(s, `remind: ["14:00"]`, "remind: [3s]", 1)
		require.NotEqual(t, string(b), s, "the example's timings changed")
		return []byte(s)
	})
	fake.AutoConfirm("zhangwei", 0)
	fake.AutoConfirm("wangfang", 0)
	fake.AutoConfirm("liuyang", 8*time.Second) // after the 6 s deadline, inside the 4 s late window
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	started, err := app.StartRun(ctx, "hq-daily-sop", nil)
	require.NoError(t, err)

	// While it runs, the report shows who is done already.
	require.Eventually(t, func() bool {
		rep, err := app.StaffReport(ctx, "hq-daily-sop", 0, reports.ByStaff)
		return err == nil && rep.Total.OnTime == 2 && rep.Total.Open == 2
	}, 20*time.Second, 200*time.Millisecond)

	res, err := app.WaitRun(ctx, started.WorkflowID)
	require.NoError(t, err)

	owners := []string{"lina", "liuyang", "wangfang", "zhangwei"}
	for _, s := range owners {
		require.Len(t, fake.TasksFor(s), 1, "one task for %s", s)
		require.Len(t, fake.AppMessagesTo(s), 1, "one notice for %s", s)
		require.Contains(t, fake.AppMessagesTo(s)[0].Content, "请在 18:00 前完成群发", "the example's notice text")
	}
	require.Equal(t, 1, fake.Reminders(fake.TasksFor("lina")[0].MsgID))
	require.Equal(t, 1, fake.Reminders(fake.TasksFor("liuyang")[0].MsgID))
	require.Zero(t, fake.Reminders(fake.TasksFor("zhangwei")[0].MsgID))
	require.Zero(t, fake.Reminders(fake.TasksFor("wangfang")[0].MsgID))
	for leader, member := range map[string]string{"chenjing": "李娜", "zhaolei": "刘洋"} {
		msgs := fake.AppMessagesTo(leader)
		require.Len(t, msgs, 1, leader)
		require.Contains(t, msgs[0].Content, "【总部每日群发 SOP】")
		require.Contains(t, msgs[0].Content, member)
	}
	require.Positive(t, res.Stats.Sent)

	// The completion report by grid, as the admin API serves it.
	var rep reports.StaffReport
	require.Equal(t, http.StatusOK, apiGet(t, app, "/api/v1/canvases/hq-daily-sop/report?by=grid", &rep))
	require.Len(t, rep.Rows, 2)
	grids := map[string]reports.StaffRow{}
	for _, r := range rep.Rows {
		grids[r.Grid] = r
	}
	pd, xh := grids["浦东一网格"], grids["徐汇二网格"]
	require.Equal(t, int64(2), pd.Tasks)
	require.Equal(t, int64(1), pd.OnTime)
	require.Equal(t, int64(1), pd.NotDone)
	require.Equal(t, int64(1), xh.OnTime)
	require.Equal(t, int64(1), xh.Late)
	require.Equal(t, 0.5, *pd.CompletionRate)
	require.Equal(t, 1.0, *xh.CompletionRate)
	require.Equal(t, int64(4), rep.Total.Tasks)
	require.Zero(t, rep.Total.Open)
	require.Equal(t, rep.Total.Customers, rep.Total.Sent+rep.Total.NotFriend+rep.Total.OverQuota+rep.Total.Unsent)
	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	t.Logf("\n%s", text.String())
}

// TestWelcomeMessageOnContactAdded: WeCom's add_external_contact callback
// (signed and encrypted by the fake) starts the new-customer SOP example,
// whose first push reaches the customer as their welcome message
// (send_welcome_msg with the callback's code), inside WeCom's 20 s window
// — the fake refuses the code after it — and not as a mass-send task.
func TestWelcomeMessageOnContactAdded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app, fake := startWeComApp(t, nil)
	ctx := context.Background()
	// A customer from the example profiles adds zhangwei.
	fake.AddContact("zhangwei", "wmNEW01", "新客户")
	code := fake.IssueWelcomeCode("zhangwei", "wmNEW01")
	sender := &fakes.CallbackSender{URL: "http://" + app.HTTPAddr() + "/wecom/callback", Token: fakeCallbackToken, AESKey: fakeCallbackKey, CorpID: "ww-corp", AgentID: "1000002"}
	sent := time.Now()
	status, body, err := sender.Send(ctx, fakes.ContactAddedEvent("ww-corp", "zhangwei", "wmNEW01", "", code, time.Now()))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, body)

	require.Eventually(t, func() bool { return len(fake.Welcomes()) == 1 }, 15*time.Second, 50*time.Millisecond)
	took := time.Since(sent)
	require.Less(t, took, fakes.WelcomeWindow)
	w := fake.Welcomes()[0]
	require.Equal(t, "zhangwei", w.Staff)
	require.Equal(t, "wmNEW01", w.ExternalUserID)
	require.Equal(t, "您好，我是您的专属顾问张伟，以后有任何问题都可以直接找我～", w.Text)
	require.Empty(t, fake.TasksFor("zhangwei"), "the welcome is not a task the owner has to confirm")
	t.Logf("welcome message sent %s after the callback", took.Round(time.Millisecond))

	// The new profile is owned by zhangwei and tagged by the SOP.
	require.Eventually(t, func() bool {
		p, err := app.Store().ProfileByID(ctx, "wmNEW01")
		return err == nil && strings.Contains(string(p.Doc), "新客")
	}, 10*time.Second, 50*time.Millisecond)
	p, err := app.Store().ProfileByID(ctx, "wmNEW01")
	require.NoError(t, err)
	require.Contains(t, string(p.Doc), `"owner":"zhangwei"`)
	c, err := app.Store().GetContact(ctx, "zhangwei", "wmNEW01")
	require.NoError(t, err)
	require.True(t, c.WelcomeUsed)
}
