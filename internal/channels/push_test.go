package channels_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
)

func newJPushFake(t testing.TB) *fakes.JPush {
	f := fakes.NewJPush("4f7aeb1f2b3c4d5e6f708192", "jpush-master")
	t.Cleanup(f.Close)
	return f
}

func jpushCfg(f *fakes.JPush, extra ...any) map[string]any {
	cfg := map[string]any{"provider": "jpush", "app_key": "4f7aeb1f2b3c4d5e6f708192", "master_secret": "jpush-master", "base_url": f.URL(), "timeout": "2s"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}

func TestJPushExactRequest(t *testing.T) {
	f := newJPushFake(t)
	ch := newChannel(t, "push", "jpush", jpushCfg(f))
	msg := &canvases.Message{Title: "会员日", Text: "专属权益已上线", URL: "app://member", Data: map[string]string{"campaign": "md"}}
	ds := []channels.Delivery{
		{Recipient: channels.Recipient{UserID: "u1", Address: "alias-1"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "u2", Attrs: map[string]string{channels.AttrPushRegistrationID: "reg-2"}}, Message: msg},
		{Recipient: channels.Recipient{UserID: "u3", Address: "alias-3"}, Message: msg},
		{Recipient: channels.Recipient{UserID: "u4"}, Message: msg},
	}
	outs, err := ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent, channels.Sent, channels.Failed}, statuses(outs))
	require.Equal(t, channels.ReasonNoAddress, outs[3].Reason)

	reqs := f.Requests()
	require.Len(t, reqs, 3, "cid pool, then one push for aliases and one for registration ids")
	require.Equal(t, "GET", reqs[0].Method)
	require.Equal(t, "/v3/push/cid", reqs[0].Path)
	require.Equal(t, map[string][]string{"count": {"10"}, "type": {"push"}}, reqs[0].Query)
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("4f7aeb1f2b3c4d5e6f708192:jpush-master"))
	pushes := f.Pushes()
	require.Len(t, pushes, 2)
	for _, r := range reqs {
		require.Equal(t, wantAuth, r.Header.Get("Authorization"))
	}
	aliasReq := reqs[1]
	if !strings.Contains(string(aliasReq.Body), `"alias"`) {
		aliasReq = reqs[2]
	}
	require.Equal(t, "POST", aliasReq.Method)
	require.Equal(t, "/v3/push", aliasReq.Path)
	require.Equal(t, "application/json", aliasReq.Header.Get("Content-Type"))
	cid := pushes[0].CID
	if !strings.Contains(string(pushes[0].Body), `"alias"`) {
		cid = pushes[1].CID
	}
	require.True(t, strings.HasPrefix(cid, "4f7aeb1f2b3c4d5e6f708192-"))
	require.JSONEq(t, fmt.Sprintf(`{"platform":"all","audience":{"alias":["alias-1","alias-3"]},
		"notification":{"alert":"专属权益已上线",
		  "android":{"alert":"专属权益已上线","title":"会员日","extras":{"campaign":"md","url":"app://member"}},
		  "ios":{"alert":{"title":"会员日","body":"专属权益已上线"},"sound":"default","extras":{"campaign":"md","url":"app://member"}}},
		"options":{"time_to_live":86400,"apns_production":false},"cid":%q}`, cid), string(aliasReq.Body))
}

// TestJPushCidMakesRetriesExactlyOnce: the channel records a cid for each
// delivery before it pushes (Batch.RecordKeys, which the engine writes on
// the ledger rows), and a resend that carries them (Delivery.Key) — here
// from another channel instance, as after a crash or on another worker —
// repeats the push with the same cid, which JPush answers without pushing.
func TestJPushCidMakesRetriesExactlyOnce(t *testing.T) {
	f := newJPushFake(t)
	ch := newChannel(t, "push", "jpush", jpushCfg(f, "timeout", "300ms"))
	ds := deliveries("alias-1", "alias-2")
	var recorded []string
	first := batch(ds)
	first.RecordKeys = func(_ context.Context, keys []string) error {
		require.Zero(t, f.Total(), "keys are recorded before the push")
		recorded = keys
		return nil
	}
	f.Script(fakes.TimeoutAfterDelivery)
	_, err := ch.Send(context.Background(), first)
	cl, _ := classOf(t, err)
	require.Equal(t, channels.Ambiguous, cl)
	require.Equal(t, 2, f.Total(), "JPush pushed before the answer was lost")
	require.Len(t, recorded, 2)
	require.NotEmpty(t, recorded[0])
	require.Equal(t, recorded[0], recorded[1], "one push, one cid")

	restarted := newChannel(t, "push", "jpush", jpushCfg(f, "timeout", "300ms")) // another process
	resend := append([]channels.Delivery(nil), ds...)
	for i := range resend {
		resend[i].Key = recorded[i]
	}
	again := batch(resend)
	again.RecordKeys = func(_ context.Context, keys []string) error {
		require.Equal(t, recorded, keys, "the recorded cids are kept")
		return nil
	}
	outs, err := restarted.Send(context.Background(), again)
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent}, statuses(outs))
	require.Equal(t, map[string]int{"alias-1": 1, "alias-2": 1}, f.Delivered(), "the same cid: JPush answers the first result and pushes nothing")

	// Without the recorded cid the resend would be a new push: the reason
	// the cid lives in the ledger, not in the process.
	_, err = restarted.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, 2, f.Count("alias-1"))

	// Nothing is pushed when the cids cannot be recorded.
	failing := batch(deliveries("alias-3"))
	failing.RecordKeys = func(context.Context, []string) error { return errors.New("database is locked") }
	_, err = ch.Send(context.Background(), failing)
	cl, _ = classOf(t, err)
	require.Equal(t, channels.RetryNow, cl)
	require.Zero(t, f.Count("alias-3"))

	// 20% faults on 10,000 aliases: every alias exactly once
	f2 := newJPushFake(t)
	f2.KeepRequests = false
	f2.Random(11, 0.2, fakes.RateLimit, fakes.ServerError, fakes.HTTP5xx, fakes.Timeout, fakes.TimeoutAfterDelivery)
	ch2 := newChannel(t, "push", "jpush", jpushCfg(f2, "timeout", "200ms"))
	var aliases []string
	for i := 0; i < 10000; i++ {
		aliases = append(aliases, fmt.Sprintf("alias-%05d", i))
	}
	final := drive(t, ch2, deliveries(aliases...), 200, true, 20, nil)
	require.Len(t, f2.Delivered(), 10000)
	require.Empty(t, f2.Ledger.Duplicates())
	for _, a := range aliases {
		require.Equal(t, channels.Sent, final[a].Status)
	}
}

func TestJPushErrorClasses(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(f *fakes.JPush)
		cfg    []any
		class  channels.Class
		reason string
		after  time.Duration
	}{
		{"rate limit", func(f *fakes.JPush) { f.Script(fakes.RateLimit) }, nil, channels.RetryLater, channels.ReasonRateLimited, time.Second},
		{"server error", func(f *fakes.JPush) { f.Script(fakes.ServerError) }, nil, channels.RetryNow, channels.ReasonServerError, 0},
		{"502", func(f *fakes.JPush) { f.Script(fakes.HTTP5xx) }, nil, channels.RetryNow, channels.ReasonServerError, 0},
		{"timeout", func(f *fakes.JPush) { f.Script(fakes.Timeout) }, []any{"timeout", "300ms"}, channels.Ambiguous, channels.ReasonTimeout, 0},
		{"no device", func(f *fakes.JPush) { f.Aliases = map[string]bool{} }, nil, channels.Permanent, channels.ReasonNoDevice, 0},
		{"bad secret", nil, []any{"master_secret", "wrong"}, channels.Permanent, channels.ReasonMisconfigured, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newJPushFake(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			ch := newChannel(t, "push", "jpush", jpushCfg(f, tc.cfg...))
			outs, err := ch.Send(context.Background(), batch(deliveries("alias-1", "alias-2")))
			cl, reason := verdict(t, outs, err)
			require.Equal(t, tc.class, cl)
			require.Equal(t, tc.reason, reason)
			if tc.after > 0 {
				require.Equal(t, tc.after, channels.Classify(err).RetryAfter)
			}
		})
	}
}

const deviceA = "0000000000000000000000000000000000000000000000000000000000000a01"
const deviceB = "0000000000000000000000000000000000000000000000000000000000000b02"

func newAPNsFake(t testing.TB) (*fakes.APNs, map[string]any) {
	f := fakes.NewAPNs("KEY1234567", "TEAM123456", "com.example.app")
	t.Cleanup(f.Close)
	ca, err := f.WriteCA(t.TempDir())
	require.NoError(t, err)
	return f, map[string]any{"provider": "apns", "key": string(f.KeyPEM()), "key_id": "KEY1234567", "team_id": "TEAM123456",
		"topic": "com.example.app", "host": f.URL(), "ca_file": ca, "timeout": "2s"}
}

func TestAPNsExactRequest(t *testing.T) {
	f, cfg := newAPNsFake(t)
	ch := newChannel(t, "push", "apns", cfg)
	msg := &canvases.Message{Title: "会员日", Text: "专属权益已上线", URL: "app://member"}
	ds := []channels.Delivery{{Recipient: channels.Recipient{UserID: "u1", Address: deviceA}, Message: msg}}
	outs, err := ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, channels.Sent, outs[0].Status)

	reqs := f.Requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	require.Equal(t, "HTTP/2.0", r.Proto)
	require.Equal(t, "POST", r.Method)
	require.Equal(t, "/3/device/"+deviceA, r.Path)
	require.Equal(t, "com.example.app", r.Header.Get("apns-topic"))
	require.Equal(t, "alert", r.Header.Get("apns-push-type"))
	require.Equal(t, outs[0].ProviderRef, r.Header.Get("apns-id"))
	require.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "bearer ey"))
	require.JSONEq(t, `{"aps":{"alert":{"title":"会员日","body":"专属权益已上线"},"sound":"default"},"url":"app://member"}`, string(r.Body))

	// the apns-id is stable for a delivery, so a retry carries the same one
	_, err = ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, r.Header.Get("apns-id"), f.Requests()[1].Header.Get("apns-id"))
}

func TestAPNsErrorClasses(t *testing.T) {
	tests := []struct {
		name     string
		fault    fakes.Fault
		token    string
		cfg      []any
		class    channels.Class
		reason   string
		suppress bool
	}{
		{"unregistered", fakes.None, deviceB, nil, channels.Permanent, channels.ReasonUnregistered, true},
		{"bad token", fakes.None, "abc", nil, channels.Permanent, channels.ReasonInvalidAddress, true},
		{"too many requests", fakes.RateLimit, deviceA, nil, channels.RetryLater, channels.ReasonRateLimited, false},
		{"internal error", fakes.ServerError, deviceA, nil, channels.RetryNow, channels.ReasonServerError, false},
		{"expired provider token", fakes.TokenExpired, deviceA, nil, channels.RetryNow, channels.ReasonTokenExpired, false},
		{"timeout", fakes.Timeout, deviceA, []any{"timeout", "300ms"}, channels.Ambiguous, channels.ReasonTimeout, false},
		{"wrong topic", fakes.None, deviceA, []any{"topic", "com.other"}, channels.Permanent, channels.ReasonInvalidAddress, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, cfg := newAPNsFake(t)
			f.Unregistered = map[string]bool{deviceB: true}
			for i := 0; i+1 < len(tc.cfg); i += 2 {
				cfg[tc.cfg[i].(string)] = tc.cfg[i+1]
			}
			ch := newChannel(t, "push", "apns", cfg)
			f.Script(tc.fault)
			ds := []channels.Delivery{{Recipient: channels.Recipient{UserID: "u1", Address: tc.token}, Message: &canvases.Message{Text: "hi"}}}
			outs, err := ch.Send(context.Background(), batch(ds))
			cl, reason := verdict(t, outs, err)
			require.Equal(t, tc.class, cl)
			require.Equal(t, tc.reason, reason)
			require.Equal(t, tc.suppress, channels.SuppressesAddress(reason))
		})
	}
}

// TestJPushCidLife: JPush keeps a cid valid for a day from issue, and the
// fake refuses an older one; the channel hands out only cids issued within
// the last hour, so a cid recorded with a delivery is valid for the 23 h in
// which the engine may push it again (Spec.KeyLife).
func TestJPushCidLife(t *testing.T) {
	f := newJPushFake(t)
	clock := newFakeClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	f.Now = clock.Now
	deps := testDeps()
	deps.Now = clock.Now
	ch := newChannel(t, "push", "jpush", jpushCfg(f), deps)
	require.Equal(t, 23*time.Hour, ch.Spec().KeyLife)
	require.Equal(t, "cid", ch.Spec().IdempotencyKey)
	send := func(alias, key string) (string, []channels.Outcome, error) {
		ds := deliveries(alias)
		ds[0].Key = key
		b := batch(ds)
		var got string
		b.RecordKeys = func(_ context.Context, keys []string) error { got = keys[0]; return nil }
		outs, err := ch.Send(context.Background(), b)
		return got, outs, err
	}
	first, _, err := send("alias-1", "")
	require.NoError(t, err)
	cidFetches := func() int {
		n := 0
		for _, r := range f.Requests() {
			if r.Path == "/v3/push/cid" {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, cidFetches())
	clock.Advance(2 * time.Hour)
	second, _, err := send("alias-2", "")
	require.NoError(t, err)
	require.NotEqual(t, first, second)
	require.Equal(t, 2, cidFetches(), "the nine cids left from the first fetch are over an hour old")

	clock.Advance(22*time.Hour + time.Minute) // the first cid is a day old
	_, _, err = send("alias-1", first)
	cl, reason := classOf(t, err)
	require.Equal(t, channels.Permanent, cl, "JPush refuses a cid past its day")
	require.Equal(t, channels.ReasonInvalidContent, reason)
	require.Equal(t, 1, f.Count("alias-1"))
}

// TestPushTargetsAsTheEngineAddressesThem: the engine addresses a push to
// a user's alias, else their registration id, and passes both attributes.
// JPush must send a registration id as a registration id (sent as an alias
// it reached nobody), and APNs must use the registration id as the device
// token even when the user also has an alias.
func TestPushTargetsAsTheEngineAddressesThem(t *testing.T) {
	msg := &canvases.Message{Title: "会员日", Text: "专属权益已上线"}
	attrs := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	t.Run("jpush", func(t *testing.T) {
		f := newJPushFake(t)
		f.Aliases = map[string]bool{"alias-1": true}
		f.RegistrationIDs = map[string]bool{"reg-2": true}
		ch := newChannel(t, "push", "jpush", jpushCfg(f))
		ds := []channels.Delivery{
			{Recipient: channels.Recipient{UserID: "u1", Address: "alias-1", Attrs: attrs(channels.AttrPushAlias, "alias-1", channels.AttrPushRegistrationID, "reg-1")}, Message: msg},
			{Recipient: channels.Recipient{UserID: "u2", Address: "reg-2", Attrs: attrs(channels.AttrPushRegistrationID, "reg-2", channels.AttrPhone, "13800000002")}, Message: msg},
		}
		outs, err := ch.Send(context.Background(), batch(ds))
		require.NoError(t, err)
		require.Equal(t, []channels.Status{channels.Sent, channels.Sent}, statuses(outs))
		var audiences []string
		for _, p := range f.Pushes() {
			kind := "alias"
			if strings.Contains(string(p.Body), `"registration_id"`) {
				kind = "registration_id"
			}
			audiences = append(audiences, kind+":"+strings.Join(p.Targets, ","))
		}
		require.ElementsMatch(t, []string{"alias:alias-1", "registration_id:reg-2"}, audiences)
	})

	t.Run("apns", func(t *testing.T) {
		f, cfg := newAPNsFake(t)
		ch := newChannel(t, "push", "apns", cfg)
		ds := []channels.Delivery{
			{Recipient: channels.Recipient{UserID: "u1", Address: "alias-1", Attrs: attrs(channels.AttrPushAlias, "alias-1", channels.AttrPushRegistrationID, deviceA)}, Message: msg},
			{Recipient: channels.Recipient{UserID: "u2", Address: "alias-2", Attrs: attrs(channels.AttrPushAlias, "alias-2")}, Message: msg},
		}
		outs, err := ch.Send(context.Background(), batch(ds))
		require.NoError(t, err)
		require.Equal(t, []channels.Status{channels.Sent, channels.Failed}, statuses(outs))
		require.Equal(t, channels.ReasonNoAddress, outs[1].Reason, "an alias is no device token")
		reqs := f.Requests()
		require.Len(t, reqs, 1)
		require.Equal(t, "/3/device/"+deviceA, reqs[0].Path)
	})
}
