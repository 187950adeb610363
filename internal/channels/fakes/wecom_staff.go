package fakes

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The staff SOP side of the WeCom fake: the address book (department/list,
// user/list), customer lists (externalcontact/list, batch/get_by_user),
// mass-send tracking (get_groupmsg_list_v2, get_groupmsg_task,
// get_groupmsg_send_result), remind_groupmsg_send with WeCom's three
// reminders per task in 24 hours, send_welcome_msg with its 20 s window and
// single use, and template cards. Tests play the staff members: Confirm
// sends a member's pending tasks as if they had tapped 发送 in the client.

// Department is a department of the fake's address book.
type Department struct {
	ID       int
	Name     string
	ParentID int
	Leaders  []string
}

// Member is a member of the fake's address book.
type Member struct {
	UserID         string
	Name           string
	Departments    []int
	DirectLeaders  []string
	MainDepartment int
}

// AppMessage is one app message a member received (message/send).
type AppMessage struct {
	To      string
	MsgType string
	Content string // text, markdown, the news title, or a template card's description
	TaskID  string // template cards
	At      time.Time
}

// Welcome is one welcome message sent with send_welcome_msg.
type Welcome struct {
	Code, Staff, ExternalUserID, Text string
}

// WelcomeWindow is how long a welcome code may be used (WeCom: 20 s).
const WelcomeWindow = 20 * time.Second

type welcomeCode struct {
	staff, external string
	issued          time.Time
	used            bool
}

type staffState struct {
	departments  []Department
	members      []Member
	contactNames map[string]string
	confirmed    map[string]time.Time // msgid → when its sender sent it
	notFriend    map[string]bool      // sender \x00 external: removed after the task was created
	received     map[string]bool      // external: already got another mass-send (status 3)
	autoConfirm  map[string]time.Duration
	reminders    map[string][]time.Time
	codes        map[string]*welcomeCode
	welcomes     []Welcome
	app          []AppMessage
	nCodes       int
	// onCard runs for each template card a member receives, before the
	// send is answered, with the fake locked: it must not call the fake.
	// Tests acknowledge through it; the standalone fake by callback.
	onCard func(userID, taskID string)
}

func (f *WeCom) staffRoutes(mux *http.ServeMux) {
	f.staff = &staffState{contactNames: map[string]string{}, confirmed: map[string]time.Time{}, notFriend: map[string]bool{},
		received: map[string]bool{}, autoConfirm: map[string]time.Duration{}, reminders: map[string][]time.Time{}, codes: map[string]*welcomeCode{}}
	mux.HandleFunc("GET /cgi-bin/department/list", f.apiQuery(f.departmentList))
	mux.HandleFunc("GET /cgi-bin/user/list", f.apiQuery(f.userList))
	mux.HandleFunc("GET /cgi-bin/externalcontact/list", f.apiQuery(f.externalList))
	mux.HandleFunc("POST /cgi-bin/externalcontact/batch/get_by_user", f.api(f.batchGetByUser))
	mux.HandleFunc("POST /cgi-bin/externalcontact/get_groupmsg_list_v2", f.api(f.groupMsgList))
	mux.HandleFunc("POST /cgi-bin/externalcontact/get_groupmsg_task", f.api(f.groupMsgTask))
	mux.HandleFunc("POST /cgi-bin/externalcontact/get_groupmsg_send_result", f.api(f.groupMsgSendResult))
	mux.HandleFunc("POST /cgi-bin/externalcontact/remind_groupmsg_send", f.api(f.remindGroupMsg))
	mux.HandleFunc("POST /cgi-bin/externalcontact/send_welcome_msg", f.api(f.sendWelcomeMsg))
}

// NewWeComAt starts the fake on a fixed address (the standalone demo fake);
// NewWeCom picks a free port.
func NewWeComAt(addr, corpID, secret, agentID string) (*WeCom, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := NewWeCom(corpID, secret, agentID)
	// Move the handler onto the requested listener.
	h := f.srv.Config.Handler
	f.srv.Close()
	f.srv = httptest.NewUnstartedServer(h)
	f.srv.Listener.Close()
	f.srv.Listener = ln
	f.srv.Start()
	return f, nil
}

// apiQuery is api for GET endpoints: the same token checks, request log
// and faults, with the query handed on as the body.
func (f *WeCom) apiQuery(h func(w http.ResponseWriter, q url.Values) bool) http.HandlerFunc {
	inner := f.api(func(w http.ResponseWriter, body []byte) bool {
		q, _ := url.ParseQuery(string(body))
		return h(w, q)
	})
	return func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(strings.NewReader(r.URL.RawQuery))
		inner(w, r2)
	}
}

// AddDepartment adds a department to the address book.
func (f *WeCom) AddDepartment(d Department) {
	f.mu.Lock()
	f.staff.departments = append(f.staff.departments, d)
	f.mu.Unlock()
}

// AddMember adds a member to the address book (and to Members when that is
// set, so they may receive app messages).
func (f *WeCom) AddMember(m Member) {
	f.mu.Lock()
	if m.MainDepartment == 0 && len(m.Departments) > 0 {
		m.MainDepartment = m.Departments[0]
	}
	f.staff.members = append(f.staff.members, m)
	if f.Members != nil {
		f.Members[strings.ToLower(m.UserID)] = true
	}
	f.mu.Unlock()
}

// AddContact makes external a customer (contact) of staff, with a name.
func (f *WeCom) AddContact(staff, external, name string) {
	f.mu.Lock()
	if f.Friends == nil {
		f.Friends = map[string]map[string]bool{}
	}
	if f.Friends[staff] == nil {
		f.Friends[staff] = map[string]bool{}
	}
	f.Friends[staff][external] = true
	if name != "" {
		f.staff.contactNames[external] = name
	}
	delete(f.staff.notFriend, staff+"\x00"+external)
	f.mu.Unlock()
}

// RemoveContact ends the contact: tasks not yet sent report the customer
// as not a friend (status 2) when their sender sends them.
func (f *WeCom) RemoveContact(staff, external string) {
	f.mu.Lock()
	if f.Friends[staff] != nil {
		delete(f.Friends[staff], external)
	}
	f.staff.notFriend[staff+"\x00"+external] = true
	f.mu.Unlock()
}

// AlreadyReceived makes the customer's next mass-sends fail with status 3:
// they already received another enterprise mass-send (the quota).
func (f *WeCom) AlreadyReceived(external string) {
	f.mu.Lock()
	f.staff.received[external] = true
	f.mu.Unlock()
}

// Confirm plays the staff member tapping 发送 on every task of theirs not yet
// sent; it returns how many tasks that sent.
func (f *WeCom) Confirm(sender string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tasks {
		if t.Sender == sender && t.ChatType == "single" {
			if _, done := f.staff.confirmed[t.MsgID]; !done {
				f.staff.confirmed[t.MsgID] = f.Now()
				f.logf("%s sent mass-send task %s (confirmed in the client)", sender, t.MsgID)
				n++
			}
		}
	}
	return n
}

// AutoConfirm makes the staff member send each task this long after it is
// created (0: at once), as seen at the next query.
func (f *WeCom) AutoConfirm(sender string, after time.Duration) {
	f.mu.Lock()
	f.staff.autoConfirm[sender] = after
	f.mu.Unlock()
}

// OnTemplateCard registers fn to run for each template card a member gets,
// synchronously and with the fake locked (fn must not call the fake; start a
// goroutine for slow work).
func (f *WeCom) OnTemplateCard(fn func(userID, taskID string)) {
	f.mu.Lock()
	f.staff.onCard = fn
	f.mu.Unlock()
}

// applyAutoConfirm confirms due tasks of auto-confirming senders; f.mu held.
func (f *WeCom) applyAutoConfirm() {
	now := f.Now()
	for _, t := range f.tasks {
		after, ok := f.staff.autoConfirm[t.Sender]
		if !ok {
			continue
		}
		if _, done := f.staff.confirmed[t.MsgID]; !done && !now.Before(t.Created.Add(after)) {
			f.staff.confirmed[t.MsgID] = t.Created.Add(after)
			f.logf("%s sent mass-send task %s (confirmed in the client)", t.Sender, t.MsgID)
		}
	}
}

// Reminders returns how many reminders a task got, in all.
func (f *WeCom) Reminders(msgID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.staff.reminders[msgID])
}

// RemindersFor counts the reminders of all of a sender's tasks.
func (f *WeCom) RemindersFor(sender string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tasks {
		if t.Sender == sender {
			n += len(f.staff.reminders[t.MsgID])
		}
	}
	return n
}

// IssueWelcomeCode hands out a welcome code for a new contact, as WeCom does
// in add_external_contact; it is usable once within WelcomeWindow.
func (f *WeCom) IssueWelcomeCode(staff, external string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.staff.nCodes++
	code := fmt.Sprintf("fake-welcome-%d", f.staff.nCodes)
	f.staff.codes[code] = &welcomeCode{staff: staff, external: external, issued: f.Now()}
	return code
}

// Welcomes lists the welcome messages sent.
func (f *WeCom) Welcomes() []Welcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Welcome(nil), f.staff.welcomes...)
}

// AppMessages lists the app messages members received, in order.
func (f *WeCom) AppMessages() []AppMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AppMessage(nil), f.staff.app...)
}

// AppMessagesTo lists one member's app messages.
func (f *WeCom) AppMessagesTo(userID string) []AppMessage {
	var out []AppMessage
	for _, m := range f.AppMessages() {
		if m.To == strings.ToLower(userID) {
			out = append(out, m)
		}
	}
	return out
}

// recordAppMessage keeps a delivered app message; f.mu held.
func (f *WeCom) recordAppMessage(to, msgType, content string, body []byte) {
	if f.staff == nil {
		return
	}
	m := AppMessage{To: to, MsgType: msgType, Content: content, At: f.Now()}
	if msgType == "template_card" {
		var req struct {
			TemplateCard struct {
				TaskID string `json:"task_id"`
			} `json:"template_card"`
		}
		_ = json.Unmarshal(body, &req)
		m.TaskID = req.TemplateCard.TaskID
		if fn := f.staff.onCard; fn != nil {
			fn(to, m.TaskID)
		}
	}
	f.staff.app = append(f.staff.app, m)
	f.logf("app message (%s) to %s: %s", msgType, to, summary(content, 60))
}

func templateCardContent(body []byte) string {
	var req struct {
		TemplateCard struct {
			CardType  string `json:"card_type"`
			TaskID    string `json:"task_id"`
			MainTitle struct {
				Title string `json:"title"`
			} `json:"main_title"`
			SubTitle string `json:"sub_title_text"`
			Buttons  []struct {
				Key string `json:"key"`
			} `json:"button_list"`
		} `json:"template_card"`
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	tc := req.TemplateCard
	if tc.CardType == "button_interaction" && (tc.TaskID == "" || len(tc.Buttons) == 0) {
		return "" // WeCom rejects a button card without task_id or buttons
	}
	if tc.SubTitle != "" {
		return tc.SubTitle
	}
	return tc.MainTitle.Title
}

func (f *WeCom) departmentList(w http.ResponseWriter, _ url.Values) bool {
	f.mu.Lock()
	var list []map[string]any
	for _, d := range f.staff.departments {
		leaders := d.Leaders
		if leaders == nil {
			leaders = []string{}
		}
		list = append(list, map[string]any{"id": d.ID, "name": d.Name, "parentid": d.ParentID, "order": 1, "department_leader": leaders})
	}
	f.mu.Unlock()
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "department": list})
	return true
}

func (f *WeCom) userList(w http.ResponseWriter, q url.Values) bool {
	dept, err := strconv.Atoi(q.Get("department_id"))
	if err != nil {
		wecomErr(w, 60003, "department not found")
		return false
	}
	f.mu.Lock()
	var list []map[string]any
	for _, m := range f.staff.members {
		in := false
		for _, d := range m.Departments {
			in = in || d == dept
		}
		if !in {
			continue
		}
		leaders := m.DirectLeaders
		if leaders == nil {
			leaders = []string{}
		}
		list = append(list, map[string]any{"userid": m.UserID, "name": m.Name, "department": m.Departments,
			"main_department": m.MainDepartment, "direct_leader": leaders, "status": 1})
	}
	f.mu.Unlock()
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "userlist": list})
	return true
}

func (f *WeCom) externalList(w http.ResponseWriter, q url.Values) bool {
	f.mu.Lock()
	var ids []string
	for c := range f.Friends[q.Get("userid")] {
		ids = append(ids, c)
	}
	f.mu.Unlock()
	if len(ids) == 0 {
		wecomErr(w, 84061, "not external contact")
		return false
	}
	sort.Strings(ids)
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "external_userid": ids})
	return true
}

// cursor pages are offsets rendered as strings, as opaque as WeCom's.
func page(cursor string, limit, max, total int) (from, to int, next string) {
	from, _ = strconv.Atoi(cursor)
	if limit <= 0 || limit > max {
		limit = max
	}
	to = min(from+limit, total)
	if to < total {
		next = strconv.Itoa(to)
	}
	return min(from, total), to, next
}

func (f *WeCom) batchGetByUser(w http.ResponseWriter, body []byte) bool {
	var req struct {
		UserIDList []string `json:"userid_list"`
		Cursor     string   `json:"cursor"`
		Limit      int      `json:"limit"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.UserIDList) == 0 || len(req.UserIDList) > 100 {
		wecomErr(w, 40058, "invalid userid_list")
		return false
	}
	type follow struct{ staff, external string }
	var all []follow
	f.mu.Lock()
	for _, s := range req.UserIDList {
		var ext []string
		for c := range f.Friends[s] {
			ext = append(ext, c)
		}
		sort.Strings(ext)
		for _, c := range ext {
			all = append(all, follow{s, c})
		}
	}
	from, to, next := page(req.Cursor, req.Limit, 100, len(all))
	var list []map[string]any
	for _, fl := range all[from:to] {
		list = append(list, map[string]any{
			"external_contact": map[string]any{"external_userid": fl.external, "name": f.staff.contactNames[fl.external], "type": 1},
			"follow_info":      map[string]any{"userid": fl.staff, "createtime": 1700000000, "state": ""},
		})
	}
	f.mu.Unlock()
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "external_contact_list": list, "next_cursor": next})
	return true
}

func (f *WeCom) groupMsgList(w http.ResponseWriter, body []byte) bool {
	var req struct {
		ChatType   string `json:"chat_type"`
		StartTime  int64  `json:"start_time"`
		EndTime    int64  `json:"end_time"`
		Creator    string `json:"creator"`
		FilterType *int   `json:"filter_type"`
		Limit      int    `json:"limit"`
		Cursor     string `json:"cursor"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		wecomErr(w, 47001, "data format error")
		return false
	}
	if req.EndTime < req.StartTime || req.EndTime-req.StartTime > 31*86400 {
		wecomErr(w, 40058, "invalid time range: at most one month")
		return false
	}
	if req.ChatType == "" {
		req.ChatType = "single"
	}
	f.mu.Lock()
	var match []Task
	for _, t := range f.tasks {
		// Tasks made through the API are enterprise tasks (create_type 0)
		// with no member as creator.
		if t.ChatType != req.ChatType || t.Created.Unix() < req.StartTime || t.Created.Unix() > req.EndTime {
			continue
		}
		if req.FilterType != nil && *req.FilterType == 1 || req.Creator != "" {
			continue
		}
		match = append(match, t)
	}
	f.mu.Unlock()
	from, to, next := page(req.Cursor, req.Limit, 100, len(match))
	list := []map[string]any{}
	for _, t := range match[from:to] {
		list = append(list, map[string]any{"msgid": t.MsgID, "creator": "", "create_time": t.Created.Unix(), "create_type": 0,
			"text": map[string]string{"content": t.Text}, "attachments": t.Attachments})
	}
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "group_msg_list": list, "next_cursor": next})
	return true
}

// task finds a task by msgid; f.mu held.
func (f *WeCom) task(msgID string) (Task, bool) {
	for _, t := range f.tasks {
		if t.MsgID == msgID {
			return t, true
		}
	}
	return Task{}, false
}

func (f *WeCom) groupMsgTask(w http.ResponseWriter, body []byte) bool {
	var req struct {
		MsgID  string `json:"msgid"`
		Limit  int    `json:"limit"`
		Cursor string `json:"cursor"`
	}
	_ = json.Unmarshal(body, &req)
	f.mu.Lock()
	f.applyAutoConfirm()
	t, ok := f.task(req.MsgID)
	at, sent := f.staff.confirmed[req.MsgID]
	f.mu.Unlock()
	if !ok {
		wecomErr(w, 40058, "invalid msgid")
		return false
	}
	entry := map[string]any{"userid": t.Sender, "status": 0}
	if sent {
		entry["status"], entry["send_time"] = 2, at.Unix()
	}
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "task_list": []any{entry}, "next_cursor": ""})
	return true
}

func (f *WeCom) groupMsgSendResult(w http.ResponseWriter, body []byte) bool {
	var req struct {
		MsgID  string `json:"msgid"`
		UserID string `json:"userid"`
		Limit  int    `json:"limit"`
		Cursor string `json:"cursor"`
	}
	_ = json.Unmarshal(body, &req)
	f.mu.Lock()
	f.applyAutoConfirm()
	t, ok := f.task(req.MsgID)
	at, sent := f.staff.confirmed[req.MsgID]
	var list []map[string]any
	if ok && t.Sender == req.UserID {
		failed := map[string]bool{}
		for _, c := range t.FailList {
			failed[c] = true
		}
		for _, c := range t.ExternalUserID {
			if failed[c] {
				continue // rejected at creation: not part of the task
			}
			status := 0
			switch {
			case !sent:
			case f.staff.notFriend[t.Sender+"\x00"+c]:
				status = 2
			case f.staff.received[c]:
				status = 3
			default:
				status = 1
			}
			e := map[string]any{"external_userid": c, "userid": t.Sender, "status": status}
			if status == 1 {
				e["send_time"] = at.Unix()
			}
			list = append(list, e)
		}
	}
	f.mu.Unlock()
	if !ok {
		wecomErr(w, 40058, "invalid msgid")
		return false
	}
	from, to, next := page(req.Cursor, req.Limit, 1000, len(list))
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "send_list": append([]map[string]any{}, list[from:to]...), "next_cursor": next})
	return true
}

// RemindLimit is WeCom's limit of reminders per task in 24 hours.
const RemindLimit = 3

func (f *WeCom) remindGroupMsg(w http.ResponseWriter, body []byte) bool {
	var req struct {
		MsgID string `json:"msgid"`
	}
	_ = json.Unmarshal(body, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	task, ok := f.task(req.MsgID)
	if !ok {
		wecomErr(w, 40058, "invalid msgid")
		return false
	}
	now := f.Now()
	recent := 0
	for _, t := range f.staff.reminders[req.MsgID] {
		if now.Sub(t) < 24*time.Hour {
			recent++
		}
	}
	if recent >= RemindLimit {
		f.logf("reminder to %s for mass-send task %s refused: %d in 24 hours already", task.Sender, req.MsgID, recent)
		// WeCom answers its generic frequency-limit code here.
		wecomErr(w, 45009, "api freq out of limit: at most 3 reminders per task in 24 hours")
		return false
	}
	f.staff.reminders[req.MsgID] = append(f.staff.reminders[req.MsgID], now)
	f.logf("reminder to %s for mass-send task %s (%d in all)", task.Sender, req.MsgID, len(f.staff.reminders[req.MsgID]))
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok"})
	return true
}

func (f *WeCom) sendWelcomeMsg(w http.ResponseWriter, body []byte) bool {
	var req struct {
		WelcomeCode string                    `json:"welcome_code"`
		Text        *struct{ Content string } `json:"text"`
		Attachments []json.RawMessage         `json:"attachments"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		wecomErr(w, 47001, "data format error")
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.staff.codes[req.WelcomeCode]
	switch {
	case !ok:
		wecomErr(w, 40058, "invalid welcome_code")
		return false
	case c.used:
		wecomErr(w, 41051, "externaluser has started chatting")
		return false
	case f.Now().Sub(c.issued) > WelcomeWindow:
		wecomErr(w, 40058, "welcome_code expired")
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
	c.used = true
	f.staff.welcomes = append(f.staff.welcomes, Welcome{Code: req.WelcomeCode, Staff: c.staff, ExternalUserID: c.external, Text: text})
	f.add("welcome:" + c.external)
	f.logf("welcome message from %s to %s, %s after the contact was added: %s", c.staff, c.external, f.Now().Sub(c.issued).Round(time.Millisecond), summary(text, 40))
	wecomJSON(w, map[string]any{"errcode": 0, "errmsg": "ok"})
	return true
}
