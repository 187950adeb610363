package wecom

import (
	"github.com/huabu/huabu/internal/channels"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/silenceper/wechat/v2/util"
)

// The WeCom channels call the server API (qyapi) themselves, with
// silenceper/wechat's request and response types for the wire format
// (message.SendRequestCommon, message.SendResponse, appchat.*,
// externalcontact.AddMsgTemplateResponse, util.CommonError), but not its HTTP
// layer. In v2.1.9 that layer hardcodes https://qyapi.weixin.qq.com in every
// URL and sends through the process-global util.DefaultHTTPClient and
// util.SetURIModifier, without a context and collapsing every non-200 status
// into one string error. Rewriting the host there would be process-global
// (two deployments, or parallel tests, would fight over it), and the channel
// could neither cancel a call nor tell "not sent" from "maybe sent", which is
// what keeps a retry from sending twice. Its access-token handle also does
// not refetch on 40014/42001. So every call here goes through base_url with
// the worker's http.Client, and the token is cached and refreshed below.

// wecomConfigFields are the settings under channels.wecom, shared by
// wecom.app, wecom.customer and wecom.group.
var wecomConfigFields = []channels.ConfigField{
	{Name: "corp_id", Doc: "the corp ID (企业ID) from the WeCom admin console", Required: true},
	{Name: "agent_id", Doc: "the self-built app's AgentId (应用ID) that sends app messages", Required: true},
	{Name: "secret", Doc: "the app's Secret; its access token is used for app messages and, without customer_secret, for customer contact", Required: true, Secret: true},
	{Name: "customer_secret", Doc: "the customer-contact (客户联系) secret, when the app itself has no customer-contact permission", Secret: true},
	{Name: "base_url", Doc: "the API root; change it for a private WeCom deployment or a local fake", Default: "https://qyapi.weixin.qq.com"},
	{Name: "timeout", Doc: "how long one API call may take", Default: "10s"},
	{Name: "duplicate_check_interval", Doc: "wecom.app: seconds within which WeCom drops a repeat of the same message to the same member (enable_duplicate_check); 0 turns the check off; at most 14400", Default: "1800"},
	{Name: "member_per_minute", Doc: "wecom.app: app messages one member may get per minute (WeCom silently drops more than 30)", Default: "30"},
	{Name: "member_per_hour", Doc: "wecom.app: app messages one member may get per hour (WeCom silently drops more than 1000)", Default: "1000"},
	{Name: "max_wait", Doc: "wecom.app: the longest a send waits for a member's rate window before reporting rate_limited", Default: "10s"},
	{Name: "callback", Doc: "the callback token and aes_key; read by the HTTP server's /wecom/callback, not by the channels"},
	{Name: "staff_poll_interval", Doc: "staff_task: how often mass-send results are fetched while a task is open", Default: "15m"},
	{Name: "staff_late_window", Doc: "staff_task: how long after the deadline a task is still tracked (done then counts as late, not as not done)", Default: "6h"},
	{Name: "directory_sync_interval", Doc: "how often the worker syncs the staff directory and customer contacts from WeCom; 0 turns it off (read by the worker)", Default: "6h"},
}

// wecomSettings is the parsed channels.wecom section.
type wecomSettings struct {
	corpID, agentID, secret, customerSecret, baseURL string
	timeout, maxWait                                 time.Duration
	dupInterval, perMinute, perHour                  int
	staffPoll, staffLate                             time.Duration
}

func parseWeCom(spec channels.Spec, cfg map[string]any, deps channels.Deps) (wecomSettings, error) {
	s := channels.NewSettings(spec, cfg, deps.Logger)
	w := wecomSettings{
		corpID: s.Str("corp_id"), agentID: s.Str("agent_id"), secret: s.Str("secret"),
		customerSecret: s.Str("customer_secret"), baseURL: s.BaseURL("base_url"),
		timeout: s.Duration("timeout"), maxWait: s.Duration("max_wait"),
		dupInterval: s.Integer("duplicate_check_interval"),
		perMinute:   s.Integer("member_per_minute"), perHour: s.Integer("member_per_hour"),
	}
	if w.agentID != "" {
		_, err := strconv.Atoi(w.agentID)
		s.Check(err == nil, "agent_id: %q is not a number", w.agentID)
	}
	s.Check(w.dupInterval >= 0 && w.dupInterval <= 14400, "duplicate_check_interval: %d is not between 0 and 14400 seconds", w.dupInterval)
	s.Check(w.perMinute >= 0 && w.perHour >= 0, "member_per_minute and member_per_hour must not be negative")
	s.Check(w.timeout > 0, "timeout: must be more than 0")
	if w.customerSecret == "" {
		w.customerSecret = w.secret
	}
	w.staffPoll, w.staffLate = parseStaffSettings(s)
	return w, s.Err()
}

// wecomClient calls the API for one corp and one secret.
type wecomClient struct {
	base    string
	corpID  string
	secret  string
	http    *http.Client
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	calls   channels.CallObserver // nil: not observed
}

func newWeComClient(w wecomSettings, secret string, deps channels.Deps) *wecomClient {
	return &wecomClient{base: w.baseURL, corpID: w.corpID, secret: secret, http: deps.HTTP, timeout: w.timeout, log: deps.Logger, now: deps.Now, calls: deps.Calls}
}

// Access tokens are cached per API root, corp and secret for the whole
// process, so the three WeCom channels (and several sets in tests) share one
// token per app, as WeCom asks.
var wecomTokens = struct {
	sync.Mutex
	m map[string]*wecomToken
}{m: map[string]*wecomToken{}}

type wecomToken struct {
	mu      sync.Mutex // one refresh at a time per app
	value   string
	expires time.Time
}

func (c *wecomClient) tokenEntry() *wecomToken {
	key := c.base + "\x00" + c.corpID + "\x00" + c.secret
	wecomTokens.Lock()
	defer wecomTokens.Unlock()
	t, ok := wecomTokens.m[key]
	if !ok {
		t = &wecomToken{}
		wecomTokens.m[key] = t
	}
	return t
}

// token returns a cached access token or fetches one.
func (c *wecomClient) token(ctx context.Context) (string, error) {
	t := c.tokenEntry()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.value != "" && c.now().Before(t.expires) {
		return t.value, nil
	}
	q := url.Values{"corpid": {c.corpID}, "corpsecret": {c.secret}}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/cgi-bin/gettoken?"+q.Encode(), nil)
	if err != nil {
		return "", &channels.Error{Class: channels.Permanent, Reason: channels.ReasonMisconfigured, Message: err.Error()}
	}
	reply, err := channels.DoHTTP(c.http, req)
	if err != nil {
		// gettoken has no side effect: whatever happened, nothing was sent.
		e := err.(*channels.Error)
		return "", &channels.Error{Class: channels.RetryNow, Reason: e.Reason, Message: "gettoken: " + e.Message}
	}
	if reply.Status != http.StatusOK {
		e := channels.StatusError(reply.Status, reply.Header, c.now(), reply.Body)
		if e.Class == channels.Ambiguous {
			e.Class = channels.RetryNow
		}
		return "", e
	}
	var r struct {
		util.CommonError
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(reply.Body, &r); err != nil {
		return "", &channels.Error{Class: channels.RetryNow, Reason: channels.ReasonServerError, Message: "gettoken: unreadable answer: " + err.Error()}
	}
	if r.ErrCode != 0 || r.AccessToken == "" {
		e := wecomError(r.ErrCode, r.ErrMsg)
		if e.Reason == channels.ReasonTokenExpired { // 40014/42001 from gettoken itself cannot be fixed by refetching
			e.Class, e.Reason = channels.Permanent, channels.ReasonMisconfigured
		}
		e.Message = "gettoken: " + e.Message
		return "", e
	}
	ttl := time.Duration(r.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 7200 * time.Second
	}
	// Refresh well before WeCom expires it, so a call never races the expiry.
	margin := 5 * time.Minute
	if ttl <= 2*margin {
		margin = ttl / 2
	}
	t.value, t.expires = r.AccessToken, c.now().Add(ttl-margin)
	return t.value, nil
}

// invalidate drops tok if it is still the cached one (another call may have
// refreshed it already; dropping that would refetch for nothing).
func (c *wecomClient) invalidate(tok string) {
	t := c.tokenEntry()
	t.mu.Lock()
	if t.value == tok {
		t.value = ""
	}
	t.mu.Unlock()
}

// post calls path with a JSON body and decodes the answer into out (a
// response type embedding util.CommonError). An errcode other than 0 comes
// back as a classified *Error with Code set, after out was decoded (callers
// read invaliduser and fail_list from it). On 40014/42001 the token is
// refetched and the call made exactly once more: WeCom rejected the first
// call before acting on it, so the repeat cannot duplicate a message.
func (c *wecomClient) post(ctx context.Context, path string, body, out any) (err error) {
	if c.calls != nil {
		start := time.Now()
		defer func() { c.calls.ObserveCall("wecom", path, time.Since(start), err) }()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // WeCom shows "&" and "<" in messages literally
	if err := enc.Encode(body); err != nil {
		return &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: err.Error()}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		code, msg, err := c.postOnce(ctx, path, tok, buf.Bytes(), out)
		if err != nil {
			return err
		}
		if code == 0 {
			return nil
		}
		e := wecomError(code, msg)
		if e.Reason == channels.ReasonTokenExpired {
			c.invalidate(tok)
			if attempt == 0 {
				c.log.Info("wecom access token rejected; refetching and retrying once", "path", path, "errcode", code)
				continue
			}
		}
		return e
	}
}

func (c *wecomClient) postOnce(ctx context.Context, path, tok string, body []byte, out any) (int64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + path + "?access_token=" + url.QueryEscape(tok)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, "", &channels.Error{Class: channels.Permanent, Reason: channels.ReasonMisconfigured, Message: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	reply, err := channels.DoHTTP(c.http, req)
	if err != nil {
		return 0, "", err
	}
	if reply.Status != http.StatusOK {
		return 0, "", channels.StatusError(reply.Status, reply.Header, c.now(), reply.Body)
	}
	var ce util.CommonError
	if err := json.Unmarshal(reply.Body, &ce); err != nil {
		// 200 with a body we cannot read: WeCom (or a proxy) answered, so
		// it may have acted on the call.
		return 0, "", &channels.Error{Class: channels.Ambiguous, Reason: channels.ReasonServerError, Message: "unreadable answer: " + channels.Truncate(string(reply.Body), 200)}
	}
	if out != nil {
		if err := json.Unmarshal(reply.Body, out); err != nil {
			return 0, "", &channels.Error{Class: channels.Ambiguous, Reason: channels.ReasonServerError, Message: "unreadable answer: " + err.Error()}
		}
	}
	return ce.ErrCode, ce.ErrMsg, nil
}

// wecomError classifies a WeCom errcode (全局错误码).
func wecomError(code int64, msg string) *channels.Error {
	e := &channels.Error{Code: strconv.FormatInt(code, 10), Message: msg}
	switch code {
	case -1: // 系统繁忙
		e.Class, e.Reason = channels.RetryNow, channels.ReasonServerError
	case 40014, 42001: // invalid / expired access_token: refetch
		e.Class, e.Reason = channels.RetryNow, channels.ReasonTokenExpired
	case 45009: // 接口调用超过限制 (per-minute / per-day API or member limit)
		e.Class, e.Reason, e.RetryAfter = channels.RetryLater, channels.ReasonRateLimited, time.Minute
	case 45033: // 接口并发调用超过限制
		e.Class, e.Reason, e.RetryAfter = channels.RetryLater, channels.ReasonRateLimited, 2*time.Second
	case 45011: // API调用太频繁
		e.Class, e.Reason, e.RetryAfter = channels.RetryLater, channels.ReasonRateLimited, 10*time.Second
	case 40003, 60111, 81013, 40096, 84061:
		// invalid userid, userid not found, all recipients invalid,
		// invalid external userid, not an external contact
		e.Class, e.Reason = channels.Permanent, channels.ReasonInvalidUser
	case 40001, 40013, 40056, 40082, 41004, 42009, 48002, 60011, 60020, 301002, 81011:
		// bad secret / corpid / agentid, suite token, API not allowed,
		// no privilege, IP not trusted, no permission, app disabled
		e.Class, e.Reason = channels.Permanent, channels.ReasonMisconfigured
	case 40007, 40008, 40033, 40058, 41011, 44004, 45002, 47001, 45008:
		// bad media_id, bad msgtype, bad characters, bad parameter, missing
		// agentid/field, empty content, content too long, bad JSON, too many articles
		e.Class, e.Reason = channels.Permanent, channels.ReasonInvalidContent
	default:
		// WeCom answered with an error it did not act on; an unknown code is
		// not worth retrying blindly.
		e.Class, e.Reason = channels.Permanent, channels.ReasonRejected
	}
	return e
}

func (w wecomSettings) String() string { // never print secrets
	return fmt.Sprintf("wecom{corp_id=%s agent_id=%s base_url=%s}", w.corpID, w.agentID, w.baseURL)
}
