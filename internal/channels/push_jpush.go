package channels

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

func init() {
	Register(Spec{
		Name: "push", Provider: "jpush", Default: true,
		Doc: "App push through JPush REST API v3 (POST /v3/push, Basic appKey:masterSecret): up to 1000 aliases (or registration ids, " +
			"for recipients without an alias) per push with identical content. Each push carries a cid from /v3/push/cid, recorded in the delivery ledger before the push: " +
			"a push repeated after a timeout or a crash, by any worker within 23 h, carries the same cid, and JPush answers it without pushing again. " +
			"Paced by JPush's X-Rate-Limit headers: a push that used the window's last call holds the others until X-Rate-Limit-Reset; a refused push (2002) is retried after it.",
		MaxRecipients: 1000, MaxMixed: 100, Groupable: true,
		IdempotencyKey: "cid", KeyLife: cidLife,
		Address: AttrPushAlias,
		Config: []ConfigField{
			{Name: "app_key", Doc: "the JPush AppKey", Required: true},
			{Name: "master_secret", Doc: "the JPush Master Secret", Required: true, Secret: true},
			{Name: "base_url", Doc: "the API root; change it for a local fake", Default: "https://api.jpush.cn"},
			{Name: "apns_production", Doc: "iOS: push through APNs production (true) or development (false)", Default: "false"},
			{Name: "time_to_live", Doc: "seconds JPush keeps an offline message", Default: "86400"},
			{Name: "use_cid", Doc: "fetch cids so retried pushes are not pushed twice", Default: "true"},
			{Name: "timeout", Doc: "how long one API call may take", Default: "10s"},
			{Name: "concurrency", Doc: "API calls one send makes at once", Default: "4"},
		},
	}, newJPush)
}

type jpush struct {
	spec        Spec
	base, auth  string
	production  bool
	ttl         int
	useCID      bool
	timeout     time.Duration
	concurrency int
	http        *http.Client
	cids        *cidPool
	gate        Gate // JPush's rate-limit window, when it is used up
	log         *slog.Logger
	now         func() time.Time
	sleep       func(context.Context, time.Duration) error
}

func newJPush(cfg map[string]any, deps Deps) (Channel, error) {
	spec, _, _ := Lookup("push", "jpush")
	s := NewSettings(spec, cfg, deps.Logger)
	c := &jpush{
		spec: spec, base: s.BaseURL("base_url"),
		auth:       "Basic " + base64.StdEncoding.EncodeToString([]byte(s.Str("app_key")+":"+s.Str("master_secret"))),
		production: s.boolean("apns_production"), ttl: s.Integer("time_to_live"), useCID: s.boolean("use_cid"),
		timeout: s.Duration("timeout"), concurrency: s.Integer("concurrency"),
		http: deps.HTTP, log: deps.Logger, now: deps.Now, sleep: SleepCtx,
	}
	s.Check(c.timeout > 0, "timeout: must be more than 0")
	s.Check(c.concurrency > 0, "concurrency: must be at least 1")
	s.Check(c.ttl >= 0 && c.ttl <= 10*86400, "time_to_live: %d is not between 0 and 864000 seconds", c.ttl)
	if err := s.Err(); err != nil {
		return nil, err
	}
	c.cids = &cidPool{}
	if !c.useCID {
		c.spec.IdempotencyKey, c.spec.KeyLife = "", 0
	}
	return c, nil
}

func (c *jpush) Spec() Spec { return c.spec }

type jpushAudience struct {
	Alias          []string `json:"alias,omitempty"`
	RegistrationID []string `json:"registration_id,omitempty"`
}

type jpushBody struct {
	Platform     string            `json:"platform"`
	Audience     jpushAudience     `json:"audience"`
	Notification jpushNotification `json:"notification"`
	Options      jpushOptions      `json:"options"`
	CID          string            `json:"cid,omitempty"`
}

type jpushNotification struct {
	Alert   string       `json:"alert"`
	Android jpushAndroid `json:"android"`
	IOS     jpushIOS     `json:"ios"`
}

type jpushAndroid struct {
	Alert  string            `json:"alert"`
	Title  string            `json:"title,omitempty"`
	Extras map[string]string `json:"extras,omitempty"`
}

type jpushIOS struct {
	Alert  any               `json:"alert"`
	Sound  string            `json:"sound"`
	Extras map[string]string `json:"extras,omitempty"`
}

type jpushOptions struct {
	TimeToLive     int  `json:"time_to_live"`
	APNSProduction bool `json:"apns_production"`
}

func (c *jpush) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	res := NewResults(len(b.Deliveries))
	kinds := make([]bool, len(b.Deliveries)) // true: registration id
	targets := make([]string, len(b.Deliveries))
	var alias, regs []int
	var calls [][]int
	var keys []string         // the cid of each call ("" until taken)
	keyed := map[string]int{} // recorded cid → its call
	for i, d := range b.Deliveries {
		switch {
		case d.Message == nil || d.Message.Text == "":
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonInvalidContent, Message: "push needs text"})
			continue
		// The engine's address for push is the alias, else the registration
		// id; the attributes say which it is (an id sent as an alias reaches
		// nobody, or another user's device whose alias it happens to be).
		case d.Recipient.Attrs[AttrPushAlias] != "":
			targets[i] = d.Recipient.Attrs[AttrPushAlias]
		case d.Recipient.Attrs[AttrPushRegistrationID] != "":
			targets[i], kinds[i] = d.Recipient.Attrs[AttrPushRegistrationID], true
		case d.Recipient.Address != "":
			targets[i] = d.Recipient.Address // an alias given as the address alone
		default:
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonNoAddress, Message: "no push_alias or push_registration_id"})
			continue
		}
		// A delivery with a recorded cid repeats the call it was part of:
		// JPush answers a used cid with the first push's result.
		if k, ok := keyed[d.Key]; ok && c.useCID && kinds[calls[k][0]] == kinds[i] {
			calls[k] = append(calls[k], i)
			continue
		} else if !ok && d.Key != "" && c.useCID {
			keyed[d.Key] = len(calls)
			calls, keys = append(calls, []int{i}), append(keys, d.Key)
			continue
		}
		if kinds[i] {
			regs = append(regs, i)
		} else {
			alias = append(alias, i)
		}
	}
	// An audience with both alias and registration_id is their intersection
	// in JPush, so the two kinds never share a push.
	for _, set := range [][]int{alias, regs} {
		for _, g := range GroupByContent(Pick(b.Deliveries, set), false) {
			for _, call := range Chunks(Remap(set, g), c.spec.MaxRecipients) {
				calls, keys = append(calls, call), append(keys, "")
			}
		}
	}
	if c.useCID {
		if calls, keys = c.takeCIDs(ctx, calls, keys, res); len(calls) == 0 {
			return res.Finish()
		}
		if b.RecordKeys != nil {
			perDelivery := make([]string, len(b.Deliveries))
			for k, call := range calls {
				for _, i := range call {
					perDelivery[i] = keys[k]
				}
			}
			if err := b.RecordKeys(ctx, perDelivery); err != nil {
				e := &Error{Class: RetryNow, Reason: ReasonServerError, Message: "the cids could not be recorded, so nothing was pushed: " + err.Error()}
				for _, call := range calls {
					for _, i := range call {
						res.CallFailed(i, e)
					}
				}
				return res.Finish()
			}
		}
	}
	Parallel(ctx, len(calls), c.concurrency, func(k int) { c.push(ctx, b, calls[k], targets, kinds[calls[k][0]], keys[k], res) })
	return res.Finish()
}

// takeCIDs gives every call without a cid a fresh one; calls it cannot get
// one for fail (nothing was pushed) and are left out.
func (c *jpush) takeCIDs(ctx context.Context, calls [][]int, keys []string, res *Results) ([][]int, []string) {
	keptCalls, keptKeys := calls[:0], keys[:0]
	for k, call := range calls {
		if keys[k] == "" {
			cid, err := c.cids.take(ctx, c)
			if err != nil {
				for _, i := range call {
					res.CallFailed(i, err)
				}
				continue
			}
			keys[k] = cid
		}
		keptCalls, keptKeys = append(keptCalls, call), append(keptKeys, keys[k])
	}
	return keptCalls, keptKeys
}

func (c *jpush) push(ctx context.Context, b Batch, idxs []int, targets []string, reg bool, cid string, res *Results) {
	m := b.Deliveries[idxs[0]].Message
	extras := map[string]string{}
	for k, v := range m.Data {
		extras[k] = v
	}
	if m.URL != "" {
		extras["url"] = m.URL
	}
	if len(extras) == 0 {
		extras = nil
	}
	body := jpushBody{
		Platform: "all",
		Notification: jpushNotification{
			Alert:   m.Text,
			Android: jpushAndroid{Alert: m.Text, Title: m.Title, Extras: extras},
			IOS:     jpushIOS{Alert: m.Text, Sound: "default", Extras: extras},
		},
		Options: jpushOptions{TimeToLive: c.ttl, APNSProduction: c.production},
	}
	if m.Title != "" {
		body.Notification.IOS.Alert = map[string]string{"title": m.Title, "body": m.Text}
	}
	seen := map[string]bool{}
	var list []string
	for _, i := range idxs {
		if !seen[targets[i]] {
			seen[targets[i]] = true
			list = append(list, targets[i])
		}
	}
	if reg {
		body.Audience.RegistrationID = list
	} else {
		body.Audience.Alias = list
	}
	fail := func(e *Error) {
		c.log.Warn("jpush push failed", "batch", b.Key, "targets", len(list), "class", e.Class, "reason", e.Reason, "code", e.Code)
		for _, i := range idxs {
			res.CallFailed(i, e)
		}
	}
	body.CID = cid
	if left, err := c.gate.Pass(ctx, c.now, c.sleep); err != nil || left > 0 {
		e := &Error{Class: RetryLater, Reason: ReasonRateLimited, RetryAfter: left, Message: "JPush's rate-limit window is used up until it resets"}
		if err != nil {
			e = &Error{Class: RetryNow, Reason: ReasonCanceled, Message: err.Error()}
		}
		fail(e)
		return
	}
	raw, _ := json.Marshal(body)
	reply, err := c.call(ctx, http.MethodPost, "/v3/push", raw)
	if err != nil {
		fail(err.(*Error))
		return
	}
	c.pace(reply)
	var r struct {
		SendNo string `json:"sendno"`
		MsgID  string `json:"msg_id"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(reply.Body, &r)
	if reply.Status == http.StatusOK && r.Error == nil {
		for _, i := range idxs {
			res.Sent(i, r.MsgID)
		}
		return
	}
	var e *Error
	if r.Error != nil {
		e = jpushError(r.Error.Code, r.Error.Message, reply, c.now(), body.CID != "")
	} else {
		e = StatusError(reply.Status, reply.Header, c.now(), reply.Body)
	}
	if e.Class == Permanent && e.Reason == ReasonNoDevice {
		for _, i := range idxs {
			res.Fail(i, e)
		}
		return
	}
	fail(e)
}

// pace reads JPush's rate-limit headers (on every /v3 answer): a push that
// used the window's last call holds further pushes until the reset, so they
// are not refused. A refused push (2002) holds nothing: its deliveries are
// retried after the reset it names, while the others go on.
func (c *jpush) pace(reply *HTTPReply) {
	if reply.Status != http.StatusOK || reply.Header.Get("X-Rate-Limit-Remaining") != "0" {
		return
	}
	if s, err := strconv.Atoi(reply.Header.Get("X-Rate-Limit-Reset")); err == nil && s >= 0 {
		c.gate.Hold(c.now().Add(time.Duration(s) * time.Second))
	}
}

func (c *jpush) call(ctx context.Context, method, path string, body []byte) (*HTTPReply, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Class: Permanent, Reason: ReasonMisconfigured, Message: err.Error()}
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return DoHTTP(c.http, req)
}

// jpushError classifies a JPush error code (HTTP 4xx/5xx with an error body).
func jpushError(code int, msg string, reply *HTTPReply, now time.Time, withCID bool) *Error {
	e := &Error{Code: strconv.Itoa(code), Message: msg}
	switch code {
	case 1011: // no device matches the audience
		e.Class, e.Reason = Permanent, ReasonNoDevice
	case 2002, 2008, 2009: // API / broadcast / audience frequency limits
		e.Class, e.Reason = RetryLater, ReasonRateLimited
		e.RetryAfter = time.Minute
		if s, err := strconv.Atoi(reply.Header.Get("X-Rate-Limit-Reset")); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	case 2005: // more messages than JPush allows the app
		e.Class, e.Reason, e.RetryAfter = RetryLater, ReasonOverQuota, time.Hour
	case 1000, 1030: // internal error / internal timeout
		// With a cid JPush dedupes the retry; without one it may have pushed.
		e.Class, e.Reason = RetryNow, ReasonServerError
		if !withCID && code == 1030 {
			e.Class, e.Reason = Ambiguous, ReasonTimeout
		}
	case 1004, 1008, 2003, 2004, 1020:
		e.Class, e.Reason = Permanent, ReasonMisconfigured
	case 1002, 1003, 1005, 1009, 1010, 1012:
		e.Class, e.Reason = Permanent, ReasonInvalidContent
	default:
		se := StatusError(reply.Status, reply.Header, now, nil)
		e.Class, e.Reason, e.RetryAfter = se.Class, se.Reason, se.RetryAfter
	}
	return e
}

// cidPool hands out JPush cids, fetched ten at a time (JPush gives apps
// that are not VIP at most ten per call) and used while they are valid.
// Which cid a delivery was pushed with is the ledger's to remember
// (Batch.RecordKeys), so a retry in any process reuses it.
type cidPool struct {
	fetch sync.Mutex
	mu    sync.Mutex
	free  []cidEntry
}

type cidEntry struct {
	cid    string
	issued time.Time
}

// JPush keeps a cid valid for a day from issue. A delivery may be pushed
// again with its cid for cidLife after the cid was recorded, so a cid is
// handed out only within the first hour after its issue.
const (
	jpushCIDValid = 24 * time.Hour
	cidLife       = 23 * time.Hour
)

func (p *cidPool) take(ctx context.Context, c *jpush) (string, *Error) {
	for attempt := 0; ; attempt++ {
		now := c.now()
		p.mu.Lock()
		for len(p.free) > 0 && now.Sub(p.free[0].issued) >= jpushCIDValid-cidLife {
			p.free = p.free[1:]
		}
		if len(p.free) > 0 {
			e := p.free[0]
			p.free = p.free[1:]
			p.mu.Unlock()
			return e.cid, nil
		}
		p.mu.Unlock()
		if attempt > 3 { // others keep emptying the pool faster than we fill it
			return "", &Error{Class: RetryNow, Reason: ReasonServerError, Message: "no cid left in the pool"}
		}
		// One fetch at a time: parallel sends wait for it and share it.
		p.fetch.Lock()
		p.mu.Lock()
		empty := len(p.free) == 0
		p.mu.Unlock()
		if empty {
			fresh, err := c.fetchCIDs(ctx)
			if err != nil {
				p.fetch.Unlock()
				return "", err
			}
			p.mu.Lock()
			for _, cid := range fresh {
				p.free = append(p.free, cidEntry{cid: cid, issued: now})
			}
			p.mu.Unlock()
		}
		p.fetch.Unlock()
	}
}

func (c *jpush) fetchCIDs(ctx context.Context) ([]string, *Error) {
	reply, err := c.call(ctx, http.MethodGet, "/v3/push/cid?count=10&type=push", nil)
	if err != nil {
		e := err.(*Error)
		if e.Class == Ambiguous { // fetching cids sends nothing
			e.Class = RetryNow
		}
		return nil, e
	}
	var r struct {
		CIDList []string `json:"cidlist"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(reply.Body, &r) != nil || reply.Status != http.StatusOK || r.Error != nil || len(r.CIDList) == 0 {
		if r.Error != nil {
			e := jpushError(r.Error.Code, r.Error.Message, reply, c.now(), false)
			if e.Class == Ambiguous {
				e.Class = RetryNow
			}
			return nil, e
		}
		e := StatusError(reply.Status, reply.Header, c.now(), reply.Body)
		if reply.Status == http.StatusOK {
			e = &Error{Class: RetryNow, Reason: ReasonServerError, Message: "no cids in the answer"}
		}
		return nil, e
	}
	return r.CIDList, nil
}
