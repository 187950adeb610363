package fakes

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"
)

// Call is one HTTP call a fake answered: the request, and the status and
// body it answered with (Status 0: it wrote nothing — a Timeout fault, or
// the client gave up first).
type Call struct {
	Request
	Status   int
	Response []byte
	Elapsed  time.Duration
}

// tap holds the OnCall hook of a fake started on an address.
type tap struct {
	fn atomic.Pointer[func(Call)]
}

// OnCall reports each call the fake answers to fn, after it answered
// (`huabu fake` prints them). Only fakes started with an ...At constructor
// report calls; fn runs on the request's goroutine and must be quick.
func (t *tap) OnCall(fn func(Call)) { t.fn.Store(&fn) }

func (t *tap) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fn := t.fn.Load()
		if fn == nil {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		start := time.Now()
		h.ServeHTTP(rec, r)
		(*fn)(Call{
			Request:  Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body, Proto: r.Proto},
			Status:   rec.status,
			Response: rec.body.Bytes(),
			Elapsed:  time.Since(start),
		})
	})
}

// recorder passes an answer through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len() < 1<<16 {
		r.body.Write(p)
	}
	return r.ResponseWriter.Write(p)
}

// moveTo serves the fake's handler on addr instead of the free port its
// constructor picked, reporting calls to OnCall.
func (b *base) moveTo(addr string, t *tap) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.Close()
		return err
	}
	h := b.srv.Config.Handler
	b.srv.Close()
	b.srv = httptest.NewUnstartedServer(t.wrap(h))
	b.srv.Listener.Close()
	b.srv.Listener = ln
	b.srv.Start()
	return nil
}

// AliyunSMSAt is an Aliyun SMS fake on a fixed address.
type AliyunSMSAt struct {
	*AliyunSMS
	tap
}

// NewAliyunSMSAt starts an Aliyun SMS fake on addr (host:port; port 0
// picks one) — the standalone `huabu fake aliyun`. NewAliyunSMS picks a free
// port on loopback.
func NewAliyunSMSAt(addr, accessKeyID, accessKeySecret string) (*AliyunSMSAt, error) {
	f := &AliyunSMSAt{AliyunSMS: NewAliyunSMS(accessKeyID, accessKeySecret)}
	return f, f.moveTo(addr, &f.tap)
}

// TencentSMSAt is a Tencent SMS fake on a fixed address.
type TencentSMSAt struct {
	*TencentSMS
	tap
}

// NewTencentSMSAt starts a Tencent SMS fake on addr (`huabu fake tencent`).
func NewTencentSMSAt(addr, secretID, secretKey, sdkAppID string) (*TencentSMSAt, error) {
	f := &TencentSMSAt{TencentSMS: NewTencentSMS(secretID, secretKey, sdkAppID)}
	return f, f.moveTo(addr, &f.tap)
}

// JPushAt is a JPush fake on a fixed address.
type JPushAt struct {
	*JPush
	tap
}

// NewJPushAt starts a JPush fake on addr (`huabu fake jpush`).
func NewJPushAt(addr, appKey, masterSecret string) (*JPushAt, error) {
	f := &JPushAt{JPush: NewJPush(appKey, masterSecret)}
	return f, f.moveTo(addr, &f.tap)
}

// WebhookAt is a webhook receiver on a fixed address.
type WebhookAt struct {
	*Webhook
	tap
}

// NewWebhookAt starts a webhook receiver on addr (`huabu fake webhook`).
func NewWebhookAt(addr, secret string) (*WebhookAt, error) {
	f := &WebhookAt{Webhook: NewWebhook(secret)}
	return f, f.moveTo(addr, &f.tap)
}
