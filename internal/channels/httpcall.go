package channels

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// maxResponse bounds what a provider's answer may make us read.
const maxResponse = 4 << 20

// HTTPReply is a provider's HTTP answer, fully read.
type HTTPReply struct {
	Status int
	Header http.Header
	Body   []byte
}

// DoHTTP sends req and reads the reply. A failure is returned as a
// classified *Error: whether the request had been written decides between
// RetryNow (nothing left this process) and Ambiguous (the provider may have
// acted on it), which is what keeps a retry from sending twice.
func DoHTTP(client *http.Client, req *http.Request) (*HTTPReply, error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			wrote.Store(true)
		}
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportError(redactURL(err), wrote.Load())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// The provider answered but the body broke off: it did act on it.
		return nil, transportError(err, true)
	}
	return &HTTPReply{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// transportError classifies a failure below the provider's protocol.
func transportError(err error, written bool) *Error {
	timeout := errors.Is(err, context.DeadlineExceeded)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		timeout = true
	}
	switch {
	case !written && errors.Is(err, context.Canceled):
		return &Error{Class: RetryNow, Reason: ReasonCanceled, Message: err.Error()}
	case !written && timeout:
		return &Error{Class: RetryNow, Reason: ReasonTimeout, Message: "before the request was sent: " + err.Error()}
	case !written:
		return &Error{Class: RetryNow, Reason: ReasonTransport, Message: err.Error()}
	case timeout:
		return &Error{Class: Ambiguous, Reason: ReasonTimeout, Message: err.Error()}
	default:
		return &Error{Class: Ambiguous, Reason: ReasonConnectionLost, Message: err.Error()}
	}
}

// StatusError classifies an HTTP status that the provider's own error body
// did not explain.
func StatusError(status int, header http.Header, now time.Time, body []byte) *Error {
	msg := http.StatusText(status)
	if len(body) > 0 {
		msg += ": " + Truncate(string(body), 200)
	}
	code := strconv.Itoa(status)
	switch {
	case status == http.StatusTooManyRequests:
		return &Error{Class: RetryLater, Reason: ReasonRateLimited, Code: code, Message: msg, RetryAfter: retryAfter(header, now, 30*time.Second)}
	case status == http.StatusServiceUnavailable:
		return &Error{Class: RetryLater, Reason: ReasonServerError, Code: code, Message: msg, RetryAfter: retryAfter(header, now, 5*time.Second)}
	case status >= 500:
		return &Error{Class: RetryNow, Reason: ReasonServerError, Code: code, Message: msg}
	case status == http.StatusRequestTimeout:
		return &Error{Class: RetryNow, Reason: ReasonTimeout, Code: code, Message: msg}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &Error{Class: Permanent, Reason: ReasonMisconfigured, Code: code, Message: msg}
	default:
		return &Error{Class: Permanent, Reason: ReasonRejected, Code: code, Message: msg}
	}
}

// retryAfter reads Retry-After (seconds or an HTTP date), else def.
func retryAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
		return 0
	}
	return def
}

// redactURL drops the query from a *url.Error: it carries secrets and
// personal data (corpsecret, access_token, phone numbers) that must not
// reach logs or reports.
func redactURL(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return &url.Error{Op: ue.Op, URL: "(url)", Err: ue.Err}
	}
	u.RawQuery, u.User = "", nil
	return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
}

func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
