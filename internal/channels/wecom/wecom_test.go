package wecom_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/channels/wecom"
)

func TestWeComAppExactRequest(t *testing.T) {
	tests := []struct {
		name string
		msg  canvases.Message
		body string
	}{
		{"text", canvases.Message{Text: "今日推荐 & <新品>"},
			`{"touser":"zhangsan|LiSi","toparty":"","totag":"","msgtype":"text","agentid":"1000002","safe":0,"enable_id_trans":0,
			  "enable_duplicate_check":1,"duplicate_check_interval":1800,"text":{"content":"今日推荐 & <新品>"}}`},
		{"markdown", canvases.Message{Markdown: "**会员日**", Text: "ignored"},
			`{"touser":"zhangsan|LiSi","toparty":"","totag":"","msgtype":"markdown","agentid":"1000002","safe":0,"enable_id_trans":0,
			  "enable_duplicate_check":1,"duplicate_check_interval":1800,"markdown":{"content":"**会员日**"}}`},
		{"news", canvases.Message{Title: "会员日", Description: "专属权益", URL: "https://e.example/d", Image: "https://e.example/p.png"},
			`{"touser":"zhangsan|LiSi","toparty":"","totag":"","msgtype":"news","agentid":"1000002","safe":0,"enable_id_trans":0,
			  "enable_duplicate_check":1,"duplicate_check_interval":1800,
			  "news":{"articles":[{"title":"会员日","description":"专属权益","url":"https://e.example/d","picurl":"https://e.example/p.png"}]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newWeComFake(t)
			ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f))
			ds := deliveries("zhangsan", "LiSi")
			for i := range ds {
				ds[i].Message = &tc.msg
			}
			outs, err := ch.Send(context.Background(), batch(ds))
			require.NoError(t, err)
			require.Equal(t, []channels.Status{channels.Sent, channels.Sent}, statuses(outs))
			require.Equal(t, "fake-msg-1", outs[0].ProviderRef)

			reqs := f.Requests()
			require.Len(t, reqs, 2)
			require.Equal(t, http.MethodGet, reqs[0].Method)
			require.Equal(t, "/cgi-bin/gettoken", reqs[0].Path)
			require.Equal(t, map[string][]string{"corpid": {"ww-corp"}, "corpsecret": {"app-secret"}}, reqs[0].Query)
			require.Equal(t, http.MethodPost, reqs[1].Method)
			require.Equal(t, "/cgi-bin/message/send", reqs[1].Path)
			require.Equal(t, map[string][]string{"access_token": {"fake-token-1"}}, reqs[1].Query)
			require.Equal(t, "application/json; charset=utf-8", reqs[1].Header.Get("Content-Type"))
			require.JSONEq(t, tc.body, string(reqs[1].Body))
		})
	}
}

func TestWeComAppInvalidUsers(t *testing.T) {
	f := newWeComFake(t)
	f.Members = map[string]bool{"zhangsan": true, "lisi": true}
	ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f))

	outs, err := ch.Send(context.Background(), batch(deliveries("zhangsan", "Ghost", "lisi", "")))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Failed, channels.Sent, channels.Failed}, statuses(outs))
	require.Equal(t, channels.Permanent, outs[1].Class)
	require.Equal(t, channels.ReasonInvalidUser, outs[1].Reason)
	require.Equal(t, channels.ReasonNoAddress, outs[3].Reason)

	// errcode 81013: every recipient invalid, each a permanent verdict
	outs, err = ch.Send(context.Background(), batch(deliveries("ghost1", "ghost2")))
	if err != nil {
		cl, reason := classOf(t, err)
		require.Equal(t, channels.Permanent, cl)
		require.Equal(t, channels.ReasonInvalidUser, reason)
	} else {
		for _, o := range outs {
			require.Equal(t, channels.ReasonInvalidUser, o.Reason)
			require.Equal(t, channels.Permanent, o.Class)
		}
	}
	require.Equal(t, map[string]int{"zhangsan": 1, "lisi": 1}, f.Delivered())
}

func TestWeComTokenRefresh(t *testing.T) {
	t.Run("42001 refetches and retries exactly once", func(t *testing.T) {
		f := newWeComFake(t)
		ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f))
		_, err := ch.Send(context.Background(), batch(deliveries("warmup"))) // caches token 1
		require.NoError(t, err)

		f.Script(fakes.TokenExpired)
		outs, err := ch.Send(context.Background(), batch(deliveries("a", "b")))
		require.NoError(t, err)
		require.Equal(t, []channels.Status{channels.Sent, channels.Sent}, statuses(outs))
		require.Equal(t, 2, f.TokenFetches())
		require.Equal(t, map[string]int{"warmup": 1, "a": 1, "b": 1}, f.Delivered())

		var paths []string
		for _, r := range f.Requests() {
			paths = append(paths, r.Path+"?"+strings.Join(r.Query["access_token"], ""))
		}
		require.Equal(t, []string{
			"/cgi-bin/gettoken?", "/cgi-bin/message/send?fake-token-1",
			"/cgi-bin/message/send?fake-token-1", "/cgi-bin/gettoken?", "/cgi-bin/message/send?fake-token-2",
		}, paths)
	})
	t.Run("still expired after the refetch: retry_now, nothing sent twice", func(t *testing.T) {
		f := newWeComFake(t)
		ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f))
		f.Script(fakes.TokenExpired, fakes.TokenExpired)
		_, err := ch.Send(context.Background(), batch(deliveries("a", "b")))
		cl, reason := classOf(t, err)
		require.Equal(t, channels.RetryNow, cl)
		require.Equal(t, channels.ReasonTokenExpired, reason)
		require.Equal(t, 0, f.Total())
		sends := 0
		for _, r := range f.Requests() {
			if r.Path == "/cgi-bin/message/send" {
				sends++
			}
		}
		require.Equal(t, 2, sends, "one call and exactly one retry")
	})
	t.Run("invalid token 40014 from a stale cache", func(t *testing.T) {
		f := newWeComFake(t)
		ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f))
		_, err := ch.Send(context.Background(), batch(deliveries("a")))
		require.NoError(t, err)
		f.ForgetTokens() // 40014 for the cached token

		_, err = ch.Send(context.Background(), batch(deliveries("b")))
		require.NoError(t, err)
		require.Equal(t, map[string]int{"a": 1, "b": 1}, f.Delivered())
	})
}

func TestWeComErrorClasses(t *testing.T) {
	tests := []struct {
		fault  fakes.Fault
		class  channels.Class
		reason string
	}{
		{fakes.RateLimit, channels.RetryLater, channels.ReasonRateLimited},
		{fakes.ServerError, channels.RetryNow, channels.ReasonServerError},
		{fakes.HTTP5xx, channels.RetryNow, channels.ReasonServerError},
		{fakes.Timeout, channels.Ambiguous, channels.ReasonTimeout},
		{fakes.TimeoutAfterDelivery, channels.Ambiguous, channels.ReasonTimeout},
	}
	for _, tc := range tests {
		for _, name := range []string{"wecom.app", "wecom.customer", "wecom.group"} {
			t.Run(name+"/"+tc.fault.String(), func(t *testing.T) {
				f := newWeComFake(t)
				ch := newChannel(t, name, "wecom", wecomCfg(f, "timeout", "300ms"))
				ds := deliveries("a", "b")
				if name == "wecom.group" { // one call per staff member
					ds = ds[:1]
				}
				for i := range ds {
					ds[i].Recipient.Sender = "zhangsan"
				}
				f.Script(tc.fault)
				_, err := ch.Send(context.Background(), batch(ds))
				cl, reason := classOf(t, err)
				require.Equal(t, tc.class, cl)
				require.Equal(t, tc.reason, reason)
				if tc.fault == fakes.RateLimit {
					// WeCom's per-minute API limit: until the next minute.
					require.LessOrEqual(t, channels.Classify(err).RetryAfter, time.Minute+time.Second)
					require.Positive(t, channels.Classify(err).RetryAfter)
					require.Equal(t, "45009", channels.Classify(err).Code)
				}
			})
		}
	}
	t.Run("bad secret is misconfigured", func(t *testing.T) {
		f := newWeComFake(t)
		ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f, "secret", "wrong"))
		_, err := ch.Send(context.Background(), batch(deliveries("a")))
		cl, reason := classOf(t, err)
		require.Equal(t, channels.Permanent, cl)
		require.Equal(t, channels.ReasonMisconfigured, reason)
	})
	t.Run("connection refused before sending is retry_now", func(t *testing.T) {
		f := newWeComFake(t)
		cfg := wecomCfg(f)
		f.Close()
		ch := newChannel(t, "wecom.app", "wecom", cfg)
		_, err := ch.Send(context.Background(), batch(deliveries("a")))
		cl, _ := classOf(t, err)
		require.Equal(t, channels.RetryNow, cl)
		require.Contains(t, err.Error(), "/cgi-bin/gettoken")
		require.NotContains(t, err.Error(), "app-secret", "secrets never reach error messages")
	})
}

func TestWeComAppPacesMembers(t *testing.T) {
	f := newWeComFake(t)
	clock := newFakeClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	f.Now = clock.Now
	deps := testDeps()
	deps.Now = clock.Now
	ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f, "member_per_minute", 2, "max_wait", "2m", "duplicate_check_interval", 0), deps)
	var waited []time.Duration
	wecom.SetSleep(ch, func(_ context.Context, d time.Duration) error {
		waited = append(waited, d)
		clock.Advance(d)
		return nil
	})
	for i := 0; i < 3; i++ {
		ds := deliveries("zhangsan")
		ds[0].Message = &canvases.Message{Text: fmt.Sprintf("message %d", i)}
		outs, err := ch.Send(context.Background(), batch(ds))
		require.NoError(t, err)
		require.Equal(t, channels.Sent, outs[0].Status)
		clock.Advance(time.Second)
	}
	require.Equal(t, []time.Duration{58 * time.Second}, waited, "the third message waits for the member's minute window")
	require.Empty(t, f.Dropped(), "nothing over WeCom's limit, so nothing silently dropped")
	require.Equal(t, 3, f.Count("zhangsan"))

	t.Run("beyond max_wait: retry_later with the wait", func(t *testing.T) {
		ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f, "member_per_minute", 1, "max_wait", "0s", "duplicate_check_interval", 0), deps)
		outs, err := ch.Send(context.Background(), batch(deliveries("wangwu")))
		require.NoError(t, err)
		require.Equal(t, channels.Sent, outs[0].Status)
		ds := deliveries("wangwu")
		ds[0].Message = &canvases.Message{Text: "again"}
		outs, err = ch.Send(context.Background(), batch(ds))
		require.NoError(t, err)
		require.Equal(t, channels.Failed, outs[0].Status)
		require.Equal(t, channels.RetryLater, outs[0].Class)
		require.Equal(t, channels.ReasonRateLimited, outs[0].Reason)
		require.Equal(t, time.Minute, outs[0].RetryAfter)
		require.Equal(t, 1, f.Count("wangwu"))
	})
}

// A 20% fault rate on 10,000 staff members still reaches each exactly
// once: failures not sent are retried, and ambiguous ones are resent under
// WeCom's duplicate check, which drops the repeats that did arrive.
func TestWeComAppFaultsExactlyOnce(t *testing.T) {
	f := newWeComFake(t)
	f.KeepRequests = false
	f.Random(7, 0.2, fakes.RateLimit, fakes.ServerError, fakes.HTTP5xx, fakes.Timeout, fakes.TimeoutAfterDelivery, fakes.TokenExpired)
	// WeCom's per-minute limit (45009) holds calls until the next minute:
	// a fake clock makes the minutes pass at once.
	clock := newFakeClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	f.Now = clock.Now
	deps := testDeps()
	deps.Now = clock.Now
	ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f, "timeout", "200ms"), deps)
	wecom.SetSleep(ch, func(_ context.Context, d time.Duration) error { clock.Advance(d); return nil })
	var addrs []string
	for i := 0; i < 10000; i++ {
		addrs = append(addrs, fmt.Sprintf("staff%05d", i))
	}
	final := drive(t, ch, deliveries(addrs...), 100, true, 20, clock.Advance)
	delivered := f.Delivered()
	require.Len(t, delivered, 10000)
	require.Empty(t, f.Ledger.Duplicates())
	for _, a := range addrs {
		require.Equal(t, channels.Sent, final[a].Status, a)
	}
	require.NotEmpty(t, f.Injected())
	t.Logf("faults injected: %v", f.Injected())
}

func TestWeComCustomer(t *testing.T) {
	f := newWeComFake(t)
	f.Friends = map[string]map[string]bool{"zhangsan": {"wmA": true, "wmB": true}, "lisi": {"wmC": true}}
	ch := newChannel(t, "wecom.customer", "wecom", wecomCfg(f))
	msg := &canvases.Message{Text: "回归礼包已到账", Attachments: []canvases.Attachment{
		{Type: "link", Title: "领取", URL: "https://e.example/c", Image: "https://e.example/c.png", Description: "7天有效"},
		{Type: "miniprogram", Title: "小程序", AppID: "wx123", Page: "/pages/c", MediaID: "MEDIA1"},
		{Type: "image", MediaID: "MEDIA2"},
	}}
	ds := []channels.Delivery{
		{Recipient: channels.Recipient{UserID: "u1", Address: "wmA", Sender: "zhangsan"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "u2", Address: "wmX", Sender: "zhangsan"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "u3", Address: "wmB", Sender: "zhangsan"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "u4", Address: "wmC", Sender: "lisi"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "u5", Address: "wmD"}, Message: msg},
	}
	outs, err := ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Failed, channels.Sent, channels.Sent, channels.Failed}, statuses(outs))
	require.Equal(t, channels.ReasonNotFriend, outs[1].Reason)
	require.Equal(t, channels.Permanent, outs[1].Class)
	require.Equal(t, channels.ReasonNoOwner, outs[4].Reason)

	tasks := f.Tasks()
	require.Len(t, tasks, 2, "one task per sender")
	bySender := map[string]fakes.Task{}
	for _, tk := range tasks {
		bySender[tk.Sender] = tk
	}
	require.Equal(t, []string{"wmA", "wmX", "wmB"}, bySender["zhangsan"].ExternalUserID)
	require.Equal(t, bySender["zhangsan"].MsgID, outs[0].ProviderRef)
	require.Equal(t, bySender["lisi"].MsgID, outs[3].ProviderRef)

	var body string
	for _, r := range f.Requests() {
		if r.Path == "/cgi-bin/externalcontact/add_msg_template" && strings.Contains(string(r.Body), `"zhangsan"`) {
			body = string(r.Body)
		}
	}
	require.JSONEq(t, `{"chat_type":"single","external_userid":["wmA","wmX","wmB"],"sender":"zhangsan","text":{"content":"回归礼包已到账"},
		"attachments":[
		 {"msgtype":"link","link":{"title":"领取","picurl":"https://e.example/c.png","desc":"7天有效","url":"https://e.example/c"}},
		 {"msgtype":"miniprogram","miniprogram":{"title":"小程序","pic_media_id":"MEDIA1","appid":"wx123","page":"/pages/c"}},
		 {"msgtype":"image","image":{"media_id":"MEDIA2"}}]}`, body)

	t.Run("bad attachment fails before any call", func(t *testing.T) {
		bad := &canvases.Message{Attachments: []canvases.Attachment{{Type: "video"}}}
		_, err := ch.Send(context.Background(), batch([]channels.Delivery{{Recipient: channels.Recipient{Address: "wmA", Sender: "zhangsan"}, Message: bad}}))
		cl, reason := classOf(t, err)
		require.Equal(t, channels.Permanent, cl)
		require.Equal(t, channels.ReasonInvalidContent, reason)
	})
	t.Run("unknown sender", func(t *testing.T) {
		f.Members = map[string]bool{"zhangsan": true}
		_, err := ch.Send(context.Background(), batch([]channels.Delivery{{Recipient: channels.Recipient{Address: "wmA", Sender: "ghost"}, Message: msg}}))
		cl, reason := classOf(t, err)
		require.Equal(t, channels.Permanent, cl)
		require.Equal(t, channels.ReasonInvalidUser, reason)
	})
}

func TestWeComGroup(t *testing.T) {
	f := newWeComFake(t)
	ch := newChannel(t, "wecom.group", "wecom", wecomCfg(f))
	msg := &canvases.Message{Text: "群公告：周末会员日"}
	chat := &canvases.Message{Text: "运营日报", ChatID: "CHAT1"}
	ds := []channels.Delivery{
		{Recipient: channels.Recipient{UserID: "s1", Address: "zhangsan"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "s2", Address: "lisi"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "s1", Address: "zhangsan"}, Message: chat},
		{Recipient: channels.Recipient{UserID: "s2", Address: "lisi"}, Message: chat},
	}
	outs, err := ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent, channels.Sent, channels.Sent}, statuses(outs))
	require.Equal(t, map[string]int{"group:zhangsan": 1, "group:lisi": 1, "chat:CHAT1": 1}, f.Delivered(), "one app-chat message for the batch")

	var group, appchat []string
	for _, r := range f.Requests() {
		switch r.Path {
		case "/cgi-bin/externalcontact/add_msg_template":
			group = append(group, string(r.Body))
		case "/cgi-bin/appchat/send":
			appchat = append(appchat, string(r.Body))
		}
	}
	require.Len(t, group, 2)
	require.Contains(t, group, `{"chat_type":"group","sender":"zhangsan","text":{"content":"群公告：周末会员日"}}`+"\n")
	require.Len(t, appchat, 1)
	require.JSONEq(t, `{"chatid":"CHAT1","msgtype":"text","safe":0,"text":{"content":"运营日报"}}`, appchat[0])
}

func TestWeComConfigErrors(t *testing.T) {
	_, factory, _ := channels.Lookup("wecom.app", "wecom")
	_, err := factory(map[string]any{"agent_id": "abc", "duplicate_check_interval": 99999, "base_url": "ftp://x"}, testDeps())
	require.Error(t, err)
	for _, want := range []string{"corp_id is required", "secret is required", `agent_id: "abc" is not a number`,
		"duplicate_check_interval: 99999 is not between 0 and 14400", `base_url: "ftp://x" is not an http(s) URL`} {
		require.Contains(t, err.Error(), want)
	}
}
