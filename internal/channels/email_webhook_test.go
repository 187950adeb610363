package channels_test

import (
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
)

func newSMTPFake(t testing.TB) *fakes.SMTP {
	f, err := fakes.NewSMTP()
	require.NoError(t, err)
	t.Cleanup(f.Close)
	return f
}

func emailCfg(f *fakes.SMTP, extra ...any) map[string]any {
	cfg := map[string]any{"smtp": f.Addr(), "from": "华布 <noreply@huabu.example>", "tls": "none", "timeout": "2s"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}

func emailDeliveries(msg *canvases.Message, addrs ...string) []channels.Delivery {
	ds := deliveries(addrs...)
	for i := range ds {
		ds[i].Message = msg
	}
	return ds
}

func TestSMTPExactMessage(t *testing.T) {
	f := newSMTPFake(t)
	f.User, f.Password = "mailer", "pw"
	ch := newChannel(t, "email", "smtp", emailCfg(f, "username", "mailer", "password", "pw"))
	msg := &canvases.Message{Subject: "会员日 专属权益", Text: "你好，王芳", HTML: "<p>你好，<b>王芳</b></p>"}
	outs, err := ch.Send(context.Background(), batch(emailDeliveries(msg, "wang@example.com", "li@example.com")))
	require.NoError(t, err)
	require.Equal(t, []channels.Status{channels.Sent, channels.Sent}, statuses(outs))

	mails := f.Mails()
	require.Len(t, mails, 2, "one message per recipient")
	require.Equal(t, "noreply@huabu.example", mails[0].From)
	require.Equal(t, []string{"wang@example.com"}, mails[0].To)
	m, err := mail.ReadMessage(strings.NewReader(string(mails[0].Data)))
	require.NoError(t, err)
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "会员日 专属权益", subject)
	from, err := m.Header.AddressList("From")
	require.NoError(t, err)
	require.Equal(t, "华布", from[0].Name)
	require.Equal(t, "<wang@example.com>", m.Header.Get("To"))
	require.Equal(t, "1.0", m.Header.Get("MIME-Version"))
	require.True(t, strings.HasSuffix(m.Header.Get("Message-ID"), "@huabu.example>"))
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Type")+"|"+string(b))
	}
	require.Equal(t, []string{"text/plain; charset=utf-8|你好，王芳", "text/html; charset=utf-8|<p>你好，<b>王芳</b></p>"}, parts)
}

func TestSMTPErrorClasses(t *testing.T) {
	msg := &canvases.Message{Subject: "s", Text: "t"}
	t.Run("a rejected recipient fails alone", func(t *testing.T) {
		f := newSMTPFake(t)
		f.Reject = map[string]int{"gone@example.com": 550, "full@example.com": 452}
		ch := newChannel(t, "email", "smtp", emailCfg(f))
		outs, err := ch.Send(context.Background(), batch(emailDeliveries(msg, "a@example.com", "gone@example.com", "full@example.com", "not-an-address", "b@example.com")))
		require.NoError(t, err)
		require.Equal(t, []channels.Status{channels.Sent, channels.Failed, channels.Failed, channels.Failed, channels.Sent}, statuses(outs))
		require.Equal(t, channels.Permanent, outs[1].Class)
		require.Equal(t, channels.ReasonInvalidAddress, outs[1].Reason)
		require.Equal(t, channels.RetryLater, outs[2].Class)
		require.Equal(t, channels.ReasonOverQuota, outs[2].Reason)
		require.Equal(t, channels.ReasonInvalidAddress, outs[3].Reason)
		require.Equal(t, map[string]int{"a@example.com": 1, "b@example.com": 1}, f.Delivered())
	})
	tests := []struct {
		name   string
		fault  fakes.Fault
		class  channels.Class
		reason string
	}{
		{"451 try later", fakes.RateLimit, channels.RetryLater, channels.ReasonRateLimited},
		{"554 after data", fakes.ServerError, channels.Permanent, channels.ReasonContentRejected},
		{"421 closing", fakes.HTTP5xx, channels.RetryLater, channels.ReasonServerError},
		{"no answer to the final dot", fakes.Timeout, channels.Ambiguous, channels.ReasonTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newSMTPFake(t)
			ch := newChannel(t, "email", "smtp", emailCfg(f, "timeout", "300ms"))
			f.Script(tc.fault)
			outs, err := ch.Send(context.Background(), batch(emailDeliveries(msg, "a@example.com", "b@example.com")))
			require.NoError(t, err)
			require.Equal(t, tc.class, outs[0].Class)
			require.Equal(t, tc.reason, outs[0].Reason)
			if tc.fault == fakes.HTTP5xx || tc.fault == fakes.Timeout {
				// the session is gone: the next message was not tried
				require.Equal(t, channels.Failed, outs[1].Status)
				require.Equal(t, channels.RetryNow, outs[1].Class)
			} else {
				require.Equal(t, channels.Sent, outs[1].Status)
			}
		})
	}
	t.Run("server down", func(t *testing.T) {
		f := newSMTPFake(t)
		cfg := emailCfg(f)
		f.Close()
		ch := newChannel(t, "email", "smtp", cfg)
		_, err := ch.Send(context.Background(), batch(emailDeliveries(msg, "a@example.com")))
		cl, _ := classOf(t, err)
		require.Equal(t, channels.RetryNow, cl)
	})
	t.Run("bad password", func(t *testing.T) {
		f := newSMTPFake(t)
		f.User, f.Password = "mailer", "pw"
		ch := newChannel(t, "email", "smtp", emailCfg(f, "username", "mailer", "password", "nope"))
		_, err := ch.Send(context.Background(), batch(emailDeliveries(msg, "a@example.com")))
		cl, reason := classOf(t, err)
		require.Equal(t, channels.Permanent, cl)
		require.Equal(t, channels.ReasonMisconfigured, reason)
	})
}

func newWebhookFake(t testing.TB) *fakes.Webhook {
	f := fakes.NewWebhook("whsec")
	t.Cleanup(f.Close)
	return f
}

func TestWebhookExactRequest(t *testing.T) {
	f := newWebhookFake(t)
	ch := newChannel(t, "webhook", "webhook", map[string]any{"url": f.URL() + "/hooks/huabu", "secret": "whsec"})
	ds := []channels.Delivery{{
		Recipient: channels.Recipient{UserID: "u1", Address: "13800000001", Attrs: map[string]string{channels.AttrEmail: "w@example.com"}},
		Message:   &canvases.Message{Text: "hi", Data: map[string]string{"coupon": "C10"}},
	}}
	outs, err := ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, channels.Sent, outs[0].Status)

	reqs := f.Requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/hooks/huabu", r.Path)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, outs[0].ProviderRef, r.Header.Get("Idempotency-Key"))
	ts := r.Header.Get(channels.WebhookTimestampHeader)
	require.Equal(t, channels.WebhookSignature([]byte("whsec"), ts, r.Body), r.Header.Get(channels.WebhookSignatureHeader))
	require.True(t, channels.VerifyWebhook([]byte("whsec"), ts, r.Header.Get(channels.WebhookSignatureHeader), r.Body, time.Now(), 5*time.Minute))
	require.False(t, channels.VerifyWebhook([]byte("other"), ts, r.Header.Get(channels.WebhookSignatureHeader), r.Body, time.Now(), 5*time.Minute))

	var ev map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &ev))
	sentAt := ev["sent_at"]
	delete(ev, "sent_at")
	require.NotEmpty(t, sentAt)
	require.JSONEq(t, `{"id":"`+outs[0].ProviderRef+`","canvas_id":"winback","run_id":"run1","step_id":"step1","batch_key":"run1/step1/0",
		"recipient":{"user_id":"u1","address":"13800000001","attrs":{"email":"w@example.com"}},
		"message":{"text":"hi","data":{"coupon":"C10"}}}`, jsonOf(t, ev))
	require.Equal(t, map[string]int{"u1": 1}, f.Delivered())

	// The Idempotency-Key is stable across retries of the same message,
	// and differs on a loop's next visit, which is a message of its own.
	again, err := ch.Send(context.Background(), batch(ds))
	require.NoError(t, err)
	require.Equal(t, outs[0].ProviderRef, again[0].ProviderRef)
	next := batch(ds)
	next.Visit = 1
	visit, err := ch.Send(context.Background(), next)
	require.NoError(t, err)
	require.NotEqual(t, outs[0].ProviderRef, visit[0].ProviderRef)
}

func TestWebhookErrorClasses(t *testing.T) {
	tests := []struct {
		name   string
		fault  fakes.Fault
		status int
		class  channels.Class
		reason string
		after  time.Duration
	}{
		{"429 honours Retry-After", fakes.RateLimit, 0, channels.RetryLater, channels.ReasonRateLimited, time.Second},
		{"500", fakes.ServerError, 0, channels.RetryNow, channels.ReasonServerError, 0},
		{"502", fakes.HTTP5xx, 0, channels.RetryNow, channels.ReasonServerError, 0},
		{"400", fakes.None, 400, channels.Permanent, channels.ReasonRejected, 0},
		{"410", fakes.None, 410, channels.Permanent, channels.ReasonRejected, 0},
		{"timeout", fakes.Timeout, 0, channels.Ambiguous, channels.ReasonTimeout, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newWebhookFake(t)
			f.Status = tc.status
			ch := newChannel(t, "webhook", "webhook", map[string]any{"url": f.URL(), "secret": "whsec", "timeout": "300ms"})
			f.Script(tc.fault)
			_, err := ch.Send(context.Background(), batch(deliveries("u1")))
			cl, reason := classOf(t, err)
			require.Equal(t, tc.class, cl)
			require.Equal(t, tc.reason, reason)
			require.Equal(t, tc.after, channels.Classify(err).RetryAfter)
		})
	}
	t.Run("wrong secret: receiver answers 401", func(t *testing.T) {
		f := newWebhookFake(t)
		ch := newChannel(t, "webhook", "webhook", map[string]any{"url": f.URL(), "secret": "nope"})
		_, err := ch.Send(context.Background(), batch(deliveries("u1")))
		cl, reason := classOf(t, err)
		require.Equal(t, channels.Permanent, cl)
		require.Equal(t, channels.ReasonMisconfigured, reason)
	})
}
