package channels_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
)

func newAliyunFake(t testing.TB) *fakes.AliyunSMS {
	f := fakes.NewAliyunSMS("LTAI-test", "aliyun-secret")
	t.Cleanup(f.Close)
	return f
}

func aliyunCfg(f *fakes.AliyunSMS, extra ...any) map[string]any {
	cfg := map[string]any{"provider": "aliyun", "access_key_id": "LTAI-test", "access_key_secret": "aliyun-secret", "sign_name": "华布", "endpoint": f.Endpoint(), "timeout": "2s"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}

func smsDeliveries(msg func(i int) *canvases.Message, phones ...string) []channels.Delivery {
	ds := make([]channels.Delivery, len(phones))
	for i, p := range phones {
		ds[i] = channels.Delivery{Recipient: channels.Recipient{UserID: fmt.Sprintf("u%d", i), Address: p}, Message: msg(i)}
	}
	return ds
}

func same(m *canvases.Message) func(int) *canvases.Message {
	return func(int) *canvases.Message { return m }
}

func TestAliyunSendSmsExactRequest(t *testing.T) {
	f := newAliyunFake(t)
	ch := newChannel(t, "sms", "aliyun", aliyunCfg(f))
	msg := &canvases.Message{Template: "SMS_1234", Params: map[string]string{"name": "王芳", "code": "A1"}}
	outs, err := ch.Send(context.Background(), batch(smsDeliveries(same(msg), "13800000001", "+86 138-0000-0002")))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent}, statuses(outs))
	require.Equal(t, "900000001^0", outs[0].ProviderRef)

	reqs := f.Requests()
	require.Len(t, reqs, 1, "identical content: one SendSms")
	r := reqs[0]
	require.Equal(t, "POST", r.Method)
	require.Equal(t, "/", r.Path)
	require.Equal(t, "SendSms", r.Header.Get("x-acs-action"))
	require.Equal(t, "2017-05-25", r.Header.Get("x-acs-version"))
	require.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "ACS3-HMAC-SHA256 Credential=LTAI-test,SignedHeaders="), r.Header.Get("Authorization"))
	require.Equal(t, url.Values{
		"PhoneNumbers":  {"13800000001,13800000002"},
		"SignName":      {"华布"},
		"TemplateCode":  {"SMS_1234"},
		"TemplateParam": {`{"code":"A1","name":"王芳"}`},
		"OutId":         {r.Query["OutId"][0]},
	}, url.Values(r.Query))
	require.Len(t, r.Query["OutId"][0], 24)
	require.Equal(t, map[string]int{"13800000001": 1, "13800000002": 1}, f.Delivered())
}

func TestAliyunSendBatchSmsExactRequest(t *testing.T) {
	f := newAliyunFake(t)
	ch := newChannel(t, "sms", "aliyun", aliyunCfg(f))
	ds := smsDeliveries(func(i int) *canvases.Message {
		m := &canvases.Message{Template: "SMS_5678", Params: map[string]string{"name": fmt.Sprintf("客户%d", i)}}
		if i == 1 {
			m.SignName = "华布商城"
		}
		return m
	}, "13800000001", "13800000002", "13800000003")
	outs, err := ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent, channels.Sent}, statuses(outs))

	reqs := f.Requests()
	require.Len(t, reqs, 1, "personalised content with one template: one SendBatchSms")
	r := reqs[0]
	require.Equal(t, "SendBatchSms", r.Header.Get("x-acs-action"))
	require.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("content-type"))
	require.Equal(t, []string{"SMS_5678"}, r.Query["TemplateCode"])
	form, err := url.ParseQuery(string(r.Body))
	require.NoError(t, err)
	require.JSONEq(t, `["13800000001","13800000002","13800000003"]`, form.Get("PhoneNumberJson"))
	require.JSONEq(t, `["华布","华布商城","华布"]`, form.Get("SignNameJson"))
	require.JSONEq(t, `[{"name":"客户0"},{"name":"客户1"},{"name":"客户2"}]`, form.Get("TemplateParamJson"))
	sent := f.Sent()
	require.Equal(t, "华布商城", sent[1].Sign)
	require.Equal(t, map[string]string{"name": "客户2"}, sent[2].Params)
}

func TestAliyunErrorClasses(t *testing.T) {
	msg := &canvases.Message{Template: "SMS_1234"}
	tests := []struct {
		name   string
		fault  fakes.Fault
		cfg    []any
		class  channels.Class
		reason string
		code   string
	}{
		{"flow control", fakes.RateLimit, nil, channels.RetryLater, channels.ReasonRateLimited, "isv.BUSINESS_LIMIT_CONTROL"},
		{"system error", fakes.ServerError, nil, channels.RetryNow, channels.ReasonServerError, "isp.SYSTEM_ERROR"},
		{"503", fakes.HTTP5xx, nil, channels.RetryNow, channels.ReasonServerError, "ServiceUnavailable"},
		{"timeout", fakes.Timeout, []any{"timeout", "300ms"}, channels.Ambiguous, channels.ReasonTimeout, ""},
		{"timeout after delivery", fakes.TimeoutAfterDelivery, []any{"timeout", "300ms"}, channels.Ambiguous, channels.ReasonTimeout, ""},
		{"bad signature", fakes.None, []any{"access_key_secret", "wrong"}, channels.Permanent, channels.ReasonMisconfigured, "SignatureDoesNotMatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAliyunFake(t)
			ch := newChannel(t, "sms", "aliyun", aliyunCfg(f, tc.cfg...))
			// per-number flow control splits the call: both halves throttled too
			f.Script(tc.fault, tc.fault, tc.fault)
			outs, err := ch.Send(context.Background(), batch(smsDeliveries(same(msg), "13800000001", "13800000002")))
			cl, reason := verdict(t, outs, err)
			require.Equal(t, tc.class, cl)
			require.Equal(t, tc.reason, reason)
			if tc.fault == fakes.RateLimit { // a per-number verdict for each, after splitting the call
				require.Equal(t, time.Hour, outs[0].RetryAfter)
				require.Equal(t, "isv.BUSINESS_LIMIT_CONTROL: 触发分钟级流控Permits:1", outs[0].Detail)
				require.Len(t, f.Requests(), 3)
				return
			}
			require.Equal(t, tc.code, channels.Classify(err).Code)
		})
	}
}

func TestAliyunUnreachable(t *testing.T) {
	f := newAliyunFake(t)
	cfg := aliyunCfg(f)
	f.Close()
	ch := newChannel(t, "sms", "aliyun", cfg)
	_, err := ch.Send(context.Background(), batch(smsDeliveries(same(&canvases.Message{Template: "SMS_1"}), "13800000001")))
	cl, reason := classOf(t, err)
	require.Equal(t, channels.RetryNow, cl, err.Error())
	require.Equal(t, channels.ReasonTransport, reason)
	require.NotContains(t, err.Error(), "13800000001", "phone numbers never reach error messages")
}

func TestAliyunPerNumberFailures(t *testing.T) {
	f := newAliyunFake(t)
	f.Refused = map[string]bool{"13800000003": true}
	f.Templates = map[string][]string{"SMS_1234": {"name"}}
	ch := newChannel(t, "sms", "aliyun", aliyunCfg(f))
	msg := &canvases.Message{Template: "SMS_1234", Params: map[string]string{"name": "x"}}
	phones := []string{"13800000001", "13800000002", "13800000003", "13800000004", "12345", ""}
	outs, err := ch.Send(context.Background(), batch(smsDeliveries(same(msg), phones...)))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent, channels.Failed, channels.Sent, channels.Failed, channels.Failed}, statuses(outs))
	require.Equal(t, channels.ReasonUnsubscribed, outs[2].Reason, "the refusing number is found by splitting the call")
	require.True(t, channels.SuppressesAddress(outs[2].Reason))
	require.Equal(t, channels.ReasonInvalidAddress, outs[4].Reason, "checked before any call")
	require.Equal(t, channels.ReasonNoAddress, outs[5].Reason)
	require.Equal(t, map[string]int{"13800000001": 1, "13800000002": 1, "13800000004": 1}, f.Delivered())

	t.Run("template and sign problems are permanent", func(t *testing.T) {
		f.Signs = map[string]bool{"华布": true}
		for _, tc := range []struct {
			msg    canvases.Message
			reason string
		}{
			{canvases.Message{Template: "SMS_9999"}, channels.ReasonInvalidTemplate},
			{canvases.Message{Template: "SMS_1234"}, channels.ReasonInvalidParams},
			{canvases.Message{Template: "SMS_1234", Params: map[string]string{"name": "x"}, SignName: "别家"}, channels.ReasonInvalidSign},
			{canvases.Message{Params: map[string]string{"name": "x"}}, channels.ReasonInvalidTemplate},
		} {
			outs, err := ch.Send(context.Background(), batch(smsDeliveries(same(&tc.msg), "13800000001")))
			cl, reason := verdict(t, outs, err)
			require.Equal(t, channels.Permanent, cl)
			require.Equal(t, tc.reason, reason)
		}
	})
}

func newTencentFake(t testing.TB) *fakes.TencentSMS {
	f := fakes.NewTencentSMS("AKID-test", "tencent-key", "1400000001")
	t.Cleanup(f.Close)
	return f
}

func tencentCfg(f *fakes.TencentSMS, extra ...any) map[string]any {
	cfg := map[string]any{"provider": "tencent", "secret_id": "AKID-test", "secret_key": "tencent-key", "sdk_app_id": "1400000001",
		"sign_name": "华布", "endpoint": f.Endpoint(), "timeout": "2s"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}

func TestTencentExactRequest(t *testing.T) {
	f := newTencentFake(t)
	ch := newChannel(t, "sms", "tencent", tencentCfg(f))
	msg := &canvases.Message{Template: "1110001", Params: map[string]string{"2": "7天", "1": "王芳", "10": "last"}}
	outs, err := ch.Send(context.Background(), batch(smsDeliveries(same(msg), "13800000001", "008613800000002")))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent}, statuses(outs))
	require.Equal(t, "fake-serial-1", outs[0].ProviderRef)

	reqs := f.Requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	require.Equal(t, "POST", r.Method)
	require.Equal(t, "/", r.Path)
	require.Equal(t, "SendSms", r.Header.Get("X-TC-Action"))
	require.Equal(t, "2021-01-11", r.Header.Get("X-TC-Version"))
	require.Equal(t, "ap-guangzhou", r.Header.Get("X-TC-Region"))
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "TC3-HMAC-SHA256 Credential=AKID-test/"), r.Header.Get("Authorization"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &body))
	require.Equal(t, []any{"+8613800000001", "+8613800000002"}, body["PhoneNumberSet"])
	require.Equal(t, "1400000001", body["SmsSdkAppId"])
	require.Equal(t, "1110001", body["TemplateId"])
	require.Equal(t, "华布", body["SignName"])
	require.Equal(t, []any{"王芳", "7天", "last"}, body["TemplateParamSet"], "params in the numeric order of their keys")
}

func TestTencentPerNumberAndErrorClasses(t *testing.T) {
	t.Run("send status per number", func(t *testing.T) {
		f := newTencentFake(t)
		f.Blacklisted = map[string]bool{"+8613800000002": true}
		f.Throttled = map[string]bool{"+8613800000003": true}
		ch := newChannel(t, "sms", "tencent", tencentCfg(f))
		msg := &canvases.Message{Template: "1110001"}
		outs, err := ch.Send(context.Background(), batch(smsDeliveries(same(msg), "13800000001", "13800000002", "13800000003", "+85291234567")))
		require.NoError(t, err)
		require.Equal(t, []channels.Status{channels.Sent, channels.Failed, channels.Failed, channels.Sent}, statuses(outs))
		require.Equal(t, channels.Permanent, outs[1].Class)
		require.Equal(t, channels.ReasonUnsubscribed, outs[1].Reason)
		require.Equal(t, channels.RetryLater, outs[2].Class)
		require.Equal(t, channels.ReasonRateLimited, outs[2].Reason)
		require.Equal(t, 10*time.Minute, outs[2].RetryAfter)
		require.Len(t, f.Requests(), 2, "mainland and international numbers go in separate calls")

		f.Script(fakes.RateLimit) // every number of the call throttled
		outs, err = ch.Send(context.Background(), batch(smsDeliveries(same(msg), "13800000005", "13800000006")))
		require.NoError(t, err)
		for _, o := range outs {
			require.Equal(t, channels.RetryLater, o.Class)
			require.Equal(t, channels.ReasonRateLimited, o.Reason)
		}
	})
	tests := []struct {
		name   string
		fault  fakes.Fault
		cfg    []any
		class  channels.Class
		reason string
	}{
		{"internal error", fakes.ServerError, nil, channels.RetryNow, channels.ReasonServerError},
		{"502", fakes.HTTP5xx, nil, channels.RetryNow, channels.ReasonServerError},
		{"timeout", fakes.Timeout, []any{"timeout", "1s"}, channels.Ambiguous, channels.ReasonTimeout},
		{"bad key", fakes.None, []any{"secret_key", "wrong"}, channels.Permanent, channels.ReasonMisconfigured},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newTencentFake(t)
			ch := newChannel(t, "sms", "tencent", tencentCfg(f, tc.cfg...))
			f.Script(tc.fault)
			_, err := ch.Send(context.Background(), batch(smsDeliveries(same(&canvases.Message{Template: "1110001"}), "13800000001", "13800000002")))
			cl, reason := classOf(t, err)
			require.Equal(t, tc.class, cl, err.Error())
			require.Equal(t, tc.reason, reason)
		})
	}
}

func TestParsePhone(t *testing.T) {
	tests := []struct {
		in       string
		national string
		mainland bool
		ok       bool
	}{
		{"13800000001", "13800000001", true, true},
		{"+8613800000001", "13800000001", true, true},
		{"008613800000001", "13800000001", true, true},
		{"86 138 0000 0001", "13800000001", true, true},
		{"+852 9123 4567", "85291234567", false, true},
		{"12800000001", "", false, false},
		{"12345", "", false, false},
		{"abc", "", false, false},
	}
	for _, tc := range tests {
		n, m, ok := channels.ParsePhone(tc.in)
		require.Equal(t, tc.ok, ok, tc.in)
		if ok {
			require.Equal(t, tc.national, n, tc.in)
			require.Equal(t, tc.mainland, m, tc.in)
		}
	}
	require.Equal(t, "138****0001", channels.Mask("13800000001"))
	require.Equal(t, "w***@example.com", channels.Mask("wang@example.com"))
}

func TestSMSSpecsBatching(t *testing.T) {
	var got []string
	for _, s := range channels.Specs() {
		if s.Name == "sms" {
			got = append(got, fmt.Sprintf("%s uniform=%d mixed=%d", s.Provider, s.BatchLimit(true), s.BatchLimit(false)))
		}
	}
	sort.Strings(got)
	require.Equal(t, []string{"aliyun uniform=1000 mixed=100", "tencent uniform=200 mixed=50"}, got)
}
