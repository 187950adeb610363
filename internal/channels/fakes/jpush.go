package fakes

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// JPush is a fake of JPush REST API v3: POST /v3/push and GET /v3/push/cid
// with HTTP Basic appKey:masterSecret. Cids work as JPush documents them: a
// push must carry a cid the app was issued (at most ten per request for an
// app that is not VIP), valid for a day; a push with a cid that already
// pushed successfully returns that push's answer and pushes nothing, whatever
// its audience or content; a push that failed leaves its cid unused.
type JPush struct {
	base
	AppKey, MasterSecret string
	// Aliases and RegistrationIDs, when set, are the bound devices; a push
	// reaching none of them fails with 1011.
	Aliases, RegistrationIDs map[string]bool
	// Unbound aliases and registration ids have no device, whether or not
	// Aliases and RegistrationIDs are set.
	Unbound map[string]bool
	// Limit, when set, is how many /v3/push calls the app may make per
	// Window (JPush: 600 a minute by default); further calls in the window
	// are refused with 2002. Every answer carries X-Rate-Limit-Limit,
	// -Remaining and -Reset (seconds until the window resets), as JPush's do.
	Limit  int
	Window time.Duration
	// Now is the fake's clock, for cid validity (default time.Now).
	Now func() time.Time

	mu          sync.Mutex
	n           int
	cids        map[string]string // cid → msg_id of its first push ("" = unused)
	issued      map[string]time.Time
	pushes      []Push
	windowStart time.Time
	used        int
	refused     int
	firstPush   time.Time     // when the first push was accepted
	pushed      chan struct{} // closed then
}

// Push is one push the fake accepted.
type Push struct {
	MsgID   string
	CID     string
	Targets []string
	Body    json.RawMessage
}

// NewJPush starts a JPush fake for one app.
func NewJPush(appKey, masterSecret string) *JPush {
	f := &JPush{AppKey: appKey, MasterSecret: masterSecret, cids: map[string]string{}, issued: map[string]time.Time{}, pushed: make(chan struct{})}
	f.init()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v3/push/cid", f.auth(f.cid))
	mux.HandleFunc("POST /v3/push", f.auth(f.push))
	f.srv = httptest.NewServer(mux)
	return f
}

func jpushError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (f *JPush) auth(h func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(f.AppKey+":"+f.MasterSecret))
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.record(r, body)
		if r.Header.Get("Authorization") != want {
			jpushError(w, http.StatusUnauthorized, 1004, "Authen failed")
			return
		}
		h(w, r, body)
	}
}

func (f *JPush) cid(w http.ResponseWriter, r *http.Request, _ []byte) {
	n, _ := strconv.Atoi(r.URL.Query().Get("count"))
	if n < 1 {
		n = 1
	}
	if n > 10 {
		n = 10 // non-VIP apps get at most 10
	}
	f.mu.Lock()
	list := make([]string, n)
	for i := range list {
		f.n++
		list[i] = fmt.Sprintf("%s-%08x-0000-4000-8000-%012x", f.AppKey, f.n, f.n)
		f.cids[list[i]] = ""
		f.issued[list[i]] = f.now()
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"cidlist": list})
}

func (f *JPush) push(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Platform any `json:"platform"`
		Audience struct {
			Alias          []string `json:"alias"`
			RegistrationID []string `json:"registration_id"`
		} `json:"audience"`
		Notification *struct {
			Alert string `json:"alert"`
		} `json:"notification"`
		CID string `json:"cid"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		jpushError(w, 400, 1003, "Invalid json")
		return
	}
	if req.Platform == nil || req.Notification == nil || req.Notification.Alert == "" {
		jpushError(w, 400, 1002, "Missing parameter")
		return
	}
	targets, known := req.Audience.Alias, f.Aliases
	if len(req.Audience.Alias) > 0 && len(req.Audience.RegistrationID) > 0 {
		jpushError(w, 400, 1003, "fake: alias and registration_id intersect; send them apart")
		return
	}
	if len(req.Audience.RegistrationID) > 0 {
		targets, known = req.Audience.RegistrationID, f.RegistrationIDs
	}
	if len(targets) == 0 || len(targets) > 1000 {
		jpushError(w, 400, 1003, "audience must have 1 to 1000 targets")
		return
	}
	f.mu.Lock()
	if req.CID != "" {
		first, issued := f.cids[req.CID]
		if !issued || !strings.HasPrefix(req.CID, f.AppKey+"-") || f.now().Sub(f.issued[req.CID]) >= 24*time.Hour {
			f.mu.Unlock()
			jpushError(w, 400, 1003, "cid is invalid or expired")
			return
		}
		if first != "" { // a retry: answer as the first time, push nothing
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_ = json.NewEncoder(w).Encode(map[string]string{"sendno": "0", "msg_id": first})
			return
		}
	}
	over := f.count(w.Header())
	f.mu.Unlock()
	if over {
		jpushError(w, http.StatusTooManyRequests, 2002, "Request times of the app_key exceed the limit of current time window")
		return
	}
	switch f.Next() {
	case RateLimit:
		w.Header().Set("X-Rate-Limit-Limit", "600")
		w.Header().Set("X-Rate-Limit-Remaining", "0")
		w.Header().Set("X-Rate-Limit-Reset", "1")
		jpushError(w, http.StatusTooManyRequests, 2002, "Request times of the app_key exceed the limit of current time window")
		return
	case ServerError:
		jpushError(w, http.StatusInternalServerError, 1000, "Server internal error")
		return
	case HTTP5xx:
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	case Timeout:
		f.hang(r)
		return
	case TimeoutAfterDelivery:
		f.deliver(req.CID, targets, known, body)
		f.hang(r)
		return
	}
	msgID, reached := f.deliver(req.CID, targets, known, body)
	if !reached {
		jpushError(w, 400, 1011, "cannot find user by this audience")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"sendno": "0", "msg_id": msgID})
}

// count charges a push to the rate-limit window and sets the rate-limit
// headers (f.mu held); it reports whether the window was used up already.
func (f *JPush) count(h http.Header) bool {
	if f.Limit <= 0 {
		return false
	}
	window := f.Window
	if window <= 0 {
		window = time.Minute
	}
	now := time.Now()
	if now.Sub(f.windowStart) >= window {
		f.windowStart, f.used = now, 0
	}
	reset := int(math.Ceil(f.windowStart.Add(window).Sub(now).Seconds()))
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(f.Limit))
	h.Set("X-Rate-Limit-Reset", strconv.Itoa(reset))
	if f.used >= f.Limit {
		f.refused++
		h.Set("X-Rate-Limit-Remaining", "0")
		return true
	}
	f.used++
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(f.Limit-f.used))
	return false
}

func (f *JPush) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Refused is how many pushes the rate limit (Limit) refused.
func (f *JPush) Refused() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

func (f *JPush) deliver(cid string, targets []string, known map[string]bool, body []byte) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var reached []string
	for _, t := range targets {
		if (known == nil || known[t]) && !f.Unbound[t] {
			reached = append(reached, t)
		}
	}
	if len(reached) == 0 {
		return "", false
	}
	f.n++
	if f.n == 1 {
		f.firstPush = time.Now() // wall clock, not f.Now: compared with other processes' times
		close(f.pushed)
	}
	msgID := strconv.Itoa(54043195528453436 + f.n)
	if cid != "" {
		f.cids[cid] = msgID
	}
	for _, t := range reached {
		f.add(t)
	}
	f.pushes = append(f.pushes, Push{MsgID: msgID, CID: cid, Targets: reached, Body: append(json.RawMessage(nil), body...)})
	return msgID, true
}

// FirstPushed is closed when the first push is accepted; FirstPush then
// says when (time.Now in this process). The broadcast bench reports time to
// first message from it.
func (f *JPush) FirstPushed() <-chan struct{} { return f.pushed }

// FirstPush is when the first push was accepted (zero before).
func (f *JPush) FirstPush() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstPush
}

// Pushes lists the pushes accepted.
func (f *JPush) Pushes() []Push {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Push(nil), f.pushes...)
}

func init() {
	RegisterStandalone(Standalone{
		Name: "jpush", Title: "JPush", Addr: "127.0.0.1:9004", Unit: "aliases or registration ids",
		Doc:       "JPush REST v3 push and cid",
		FailKinds: []string{"no_device"},
		FailDoc:   "aliases or registration ids: no_device (1011: no device bound)",
		Start: func(o StandaloneOptions) (*Running, error) {
			f, err := NewJPushAt(o.Addr, o.Key, o.Secret)
			if err != nil {
				return nil, err
			}
			f.Unbound = map[string]bool{}
			for r := range o.Fails {
				f.Unbound[r] = true
			}
			return &Running{URL: f.URL(), Close: f.Close, OnCall: f.OnCall, Faults: &f.Faults, Ledger: &f.Ledger, Summarize: jpushCallLine,
				Config: fmt.Sprintf(`push: {provider: jpush, app_key: %s, master_secret: %s, base_url: "%s"}`, o.Key, o.Secret, f.URL())}, nil
		},
	})
}

func jpushCallLine(call Call) (string, []string) {
	if call.Method == "GET" {
		head := fmt.Sprintf("jpush GET %s?count=%s →", call.Path, strings.Join(call.Query["count"], ""))
		if s, ok := noAnswer(call); ok {
			return head + " " + s, nil
		}
		return fmt.Sprintf("%s %d", head, call.Status), nil
	}
	var req struct {
		Audience struct {
			Alias          []string `json:"alias"`
			RegistrationID []string `json:"registration_id"`
		} `json:"audience"`
		Notification struct {
			Alert string `json:"alert"`
		} `json:"notification"`
	}
	_ = json.Unmarshal(call.Body, &req)
	target := "alias " + recipientList(req.Audience.Alias)
	if len(req.Audience.RegistrationID) > 0 {
		target = "registration_id " + recipientList(req.Audience.RegistrationID)
	}
	alert := []rune(req.Notification.Alert)
	if len(alert) > 24 {
		alert = append(alert[:24], '…')
	}
	head := fmt.Sprintf("jpush %s %s %s %q →", call.Method, call.Path, target, string(alert))
	if s, ok := noAnswer(call); ok {
		return head + " " + s, []string{"no answer"}
	}
	var r struct {
		MsgID string `json:"msg_id"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(call.Response, &r)
	switch {
	case r.Error != nil:
		return fmt.Sprintf("%s %d error %d %s", head, call.Status, r.Error.Code, r.Error.Message), []string{strconv.Itoa(r.Error.Code)}
	case call.Status == 200:
		return fmt.Sprintf("%s 200 msg_id %s", head, r.MsgID), []string{"200"}
	}
	return fmt.Sprintf("%s %d %s", head, call.Status, strings.TrimSpace(string(call.Response))), []string{strconv.Itoa(call.Status)}
}
