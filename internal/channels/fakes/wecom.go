package fakes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// WeCom is a fake of the WeCom server API (qyapi.weixin.qq.com): gettoken,
// message/send, externalcontact/add_msg_template and appchat/send. Calls
// need a valid access_token from gettoken; message/send honours
// enable_duplicate_check and, like WeCom, silently drops app messages beyond
// 30 a minute per member (see Dropped).
type WeCom struct {
	base
	CorpID  string
	Secrets map[string]bool // accepted corpsecrets
	AgentID string
	// Members, when set, are the valid userids; others come back in
	// invaliduser (all invalid: errcode 81013).
	Members map[string]bool
	// Friends maps a sender to their customers (external userids); when
	// set, add_msg_template puts other customers in fail_list.
	Friends map[string]map[string]bool
	// MemberPerMinute is WeCom's per-member app-message limit (default 30).
	MemberPerMinute int
	Now             func() time.Time
	// Log, when set, hears of each thing the fake does, one line each
	// (the standalone fake prints them); it runs with the fake locked.
	Log func(line string)

	mu       sync.Mutex
	tokens   map[string]bool
	nTokens  int
	nMsg     int
	dedupe   map[string]time.Time
	perMin   map[string][]time.Time
	dropped  map[string]int
	tasks    []Task
	gettoken int
	staff    *staffState // the staff SOP endpoints' state (wecom_staff.go)
	// senderFaults: add_msg_template faults per sender (wecom_senders.go)
	senderFaults map[string]*SenderFault
}

// Task is a mass-send task created with add_msg_template.
type Task struct {
	MsgID          string
	ChatType       string
	Sender         string
	ExternalUserID []string
	Text           string
	Attachments    []json.RawMessage
	FailList       []string
	Created        time.Time
}

// NewWeCom starts a WeCom fake for one corp, secret and agent.
func NewWeCom(corpID, secret, agentID string) *WeCom {
	f := &WeCom{CorpID: corpID, Secrets: map[string]bool{secret: true}, AgentID: agentID, MemberPerMinute: 30, Now: time.Now,
		tokens: map[string]bool{}, dedupe: map[string]time.Time{}, perMin: map[string][]time.Time{}, dropped: map[string]int{}}
	f.init()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cgi-bin/gettoken", f.gettokenHandler)
	mux.HandleFunc("POST /cgi-bin/message/send", f.api(f.messageSend))
	mux.HandleFunc("POST /cgi-bin/externalcontact/add_msg_template", f.withSenderFaults(f.api(f.addMsgTemplate)))
	mux.HandleFunc("POST /cgi-bin/appchat/send", f.api(f.appchatSend))
	f.staffRoutes(mux)
	f.srv = httptest.NewServer(mux)
	return f
}

func wecomJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

func wecomErr(w http.ResponseWriter, code int, msg string) {
	wecomJSON(w, map[string]any{"errcode": code, "errmsg": msg + ", hint: [fake]"})
}

func (f *WeCom) gettokenHandler(w http.ResponseWriter, r *http.Request) {
	f.record(r, nil)
	q := r.URL.Query()
	if q.Get("corpid") != f.CorpID {
		wecomErr(w, 40013, "invalid corpid")
		return
	}
	if !f.Secrets[q.Get("corpsecret")] {
		wecomErr(w, 40001, "invalid credential")
		return
	}
	f.mu.Lock()
	f.nTokens++
	f.gettoken++
	tok := fmt.Sprintf("fake-token-%d", f.nTokens)
	f.tokens[tok] = true
	f.mu.Unlock()
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200})
}

// TokenFetches is how many tokens were issued.
func (f *WeCom) TokenFetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gettoken
}

// ExpireTokens makes every issued token invalid (42001 on next use).
func (f *WeCom) ExpireTokens() {
	f.mu.Lock()
	for t := range f.tokens {
		f.tokens[t] = false
	}
	f.mu.Unlock()
}

// ForgetTokens makes every issued token unknown (40014 on next use), as
// after a secret reset.
func (f *WeCom) ForgetTokens() {
	f.mu.Lock()
	f.tokens = map[string]bool{}
	f.mu.Unlock()
}

// api wraps a POST handler with token checks, request logging and faults.
func (f *WeCom) api(h func(w http.ResponseWriter, body []byte) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.record(r, body)
		tok := r.URL.Query().Get("access_token")
		f.mu.Lock()
		valid, known := f.tokens[tok]
		f.mu.Unlock()
		switch {
		case tok == "":
			wecomErr(w, 41001, "access_token missing")
			return
		case !known:
			wecomErr(w, 40014, "invalid access_token")
			return
		case !valid:
			wecomErr(w, 42001, "access_token expired")
			return
		}
		switch fault := f.Next(); fault {
		case RateLimit:
			wecomErr(w, 45009, "api freq out of limit")
			return
		case ServerError:
			wecomErr(w, -1, "system busy")
			return
		case HTTP5xx:
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		case TokenExpired:
			f.ExpireTokens()
			wecomErr(w, 42001, "access_token expired")
			return
		case Timeout:
			f.hang(r)
			return
		case TimeoutAfterDelivery:
			rec := httptest.NewRecorder()
			h(rec, body)
			f.hang(r)
			return
		}
		h(w, body)
	}
}

type flexString string // agentid arrives as a number or a string

func (s *flexString) UnmarshalJSON(b []byte) error {
	*s = flexString(strings.Trim(string(b), `"`))
	return nil
}

func (f *WeCom) messageSend(w http.ResponseWriter, body []byte) bool {
	var req struct {
		ToUser   string                    `json:"touser"`
		MsgType  string                    `json:"msgtype"`
		AgentID  flexString                `json:"agentid"`
		Text     *struct{ Content string } `json:"text"`
		Markdown *struct{ Content string } `json:"markdown"`
		News     *struct {
			Articles []struct{ Title string } `json:"articles"`
		} `json:"news"`
		Dup      int `json:"enable_duplicate_check"`
		Interval int `json:"duplicate_check_interval"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		wecomErr(w, 47001, "data format error")
		return false
	}
	if string(req.AgentID) != f.AgentID {
		wecomErr(w, 40056, "invalid agentid")
		return false
	}
	var content string
	switch req.MsgType {
	case "text":
		if req.Text != nil {
			content = req.Text.Content
		}
	case "markdown":
		if req.Markdown != nil {
			content = req.Markdown.Content
		}
	case "news":
		if req.News != nil && len(req.News.Articles) > 0 {
			content = req.News.Articles[0].Title
		}
	case "template_card":
		content = templateCardContent(body)
	default:
		wecomErr(w, 40008, "invalid message type")
		return false
	}
	if content == "" {
		wecomErr(w, 44004, "empty content")
		return false
	}
	users := strings.Split(req.ToUser, "|")
	if len(users) > 1000 {
		wecomErr(w, 40058, "touser exceeds 1000")
		return false
	}
	key := contentKey(req.MsgType, body)
	now := f.Now()
	var invalid []string
	f.mu.Lock()
	f.nMsg++
	msgid := fmt.Sprintf("fake-msg-%d", f.nMsg)
	reached := 0
	for _, u := range users {
		lu := strings.ToLower(u)
		if u == "" || (f.Members != nil && !f.Members[lu] && !f.Members[u]) {
			invalid = append(invalid, lu)
			continue
		}
		reached++
		interval := req.Interval
		if interval == 0 {
			interval = 1800
		}
		if req.Dup == 1 {
			dk := lu + "\x00" + key
			if t, ok := f.dedupe[dk]; ok && now.Sub(t) < time.Duration(interval)*time.Second {
				f.logf("app message to %s dropped: a repeat within duplicate_check_interval", lu)
				continue // WeCom drops the repeat and still answers ok
			}
			f.dedupe[dk] = now
		}
		// WeCom silently drops messages over the member's minute limit.
		ts := f.perMin[lu]
		for len(ts) > 0 && now.Sub(ts[0]) >= time.Minute {
			ts = ts[1:]
		}
		if f.MemberPerMinute > 0 && len(ts) >= f.MemberPerMinute {
			f.dropped[lu]++
			f.logf("app message to %s dropped silently: over %d a minute", lu, f.MemberPerMinute)
			f.perMin[lu] = ts
			continue
		}
		f.perMin[lu] = append(ts, now)
		f.add(lu)
		f.recordAppMessage(lu, req.MsgType, content, body)
	}
	f.mu.Unlock()
	if reached == 0 {
		wecomJSON(w, map[string]any{"errcode": 81013, "errmsg": "user & party & tag all invalid", "invaliduser": strings.Join(invalid, "|")})
		return false
	}
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "invaliduser": strings.Join(invalid, "|"), "msgid": msgid})
	return true
}

func contentKey(kind string, body []byte) string {
	// the duplicate check compares content, not recipients: strip touser
	var m map[string]json.RawMessage
	_ = json.Unmarshal(body, &m)
	delete(m, "touser")
	b, _ := json.Marshal(m)
	s := sha256.Sum256(append([]byte(kind), b...))
	return hex.EncodeToString(s[:8])
}

// Dropped counts app messages WeCom would have dropped silently per member.
func (f *WeCom) Dropped() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.dropped {
		out[k] = v
	}
	return out
}

func (f *WeCom) addMsgTemplate(w http.ResponseWriter, body []byte) bool {
	var req struct {
		ChatType       string                    `json:"chat_type"`
		ExternalUserID []string                  `json:"external_userid"`
		Sender         string                    `json:"sender"`
		Text           *struct{ Content string } `json:"text"`
		Attachments    []json.RawMessage         `json:"attachments"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		wecomErr(w, 47001, "data format error")
		return false
	}
	text := ""
	if req.Text != nil {
		text = req.Text.Content
	}
	if text == "" && len(req.Attachments) == 0 {
		wecomErr(w, 41041, "text and attachments are empty")
		return false
	}
	if len(req.Attachments) > 9 {
		wecomErr(w, 40058, "too many attachments")
		return false
	}
	if req.Sender == "" || (f.Members != nil && !f.Members[strings.ToLower(req.Sender)]) {
		wecomErr(w, 40003, "invalid userid")
		return false
	}
	f.mu.Lock()
	code := f.senderRefusal(req.Sender)
	f.mu.Unlock()
	if code != 0 {
		wecomErr(w, code, "refused for this sender")
		return false
	}
	if req.ChatType == "" {
		req.ChatType = "single"
	}
	if req.ChatType == "single" && len(req.ExternalUserID) > 10000 {
		wecomErr(w, 40058, "external_userid exceeds 10000")
		return false
	}
	f.mu.Lock()
	f.nMsg++
	msgid := fmt.Sprintf("fake-groupmsg-%d", f.nMsg)
	var fail []string
	switch req.ChatType {
	case "single":
		friends := f.Friends[req.Sender]
		for _, c := range req.ExternalUserID {
			if f.Friends != nil && !friends[c] {
				fail = append(fail, c)
				continue
			}
			f.add(c)
		}
	case "group":
		f.add("group:" + req.Sender)
	default:
		f.mu.Unlock()
		wecomErr(w, 40058, "invalid chat_type")
		return false
	}
	f.tasks = append(f.tasks, Task{MsgID: msgid, ChatType: req.ChatType, Sender: req.Sender, ExternalUserID: req.ExternalUserID, Text: text, Attachments: req.Attachments,
		FailList: fail, Created: f.Now()})
	f.logf("mass-send task %s for %s: %d customers (%d not their contacts): %s", msgid, req.Sender, len(req.ExternalUserID), len(fail), summary(text, 30))
	f.mu.Unlock()
	if fail == nil {
		fail = []string{}
	}
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "fail_list": fail, "msgid": msgid})
	return true
}

// Tasks lists the mass-send tasks created.
func (f *WeCom) Tasks() []Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Task(nil), f.tasks...)
}

func (f *WeCom) appchatSend(w http.ResponseWriter, body []byte) bool {
	var req struct {
		ChatID  string `json:"chatid"`
		MsgType string `json:"msgtype"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.ChatID == "" {
		wecomErr(w, 86003, "invalid chatid")
		return false
	}
	f.add("chat:" + req.ChatID)
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok"})
	return true
}
