package wecom

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work/addresslist"
	"github.com/silenceper/wechat/v2/work/externalcontact"
	"github.com/silenceper/wechat/v2/work/message"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
)

// API is the part of the WeCom server API the staff SOP loop and the
// directory sync use besides sending: mass-send task tracking, reminders,
// welcome messages, template cards, the address book and customer lists.
// Like the channels it calls base_url through the worker's http.Client, with
// the shared token cache, and uses silenceper/wechat's wire types where the
// library has them.
type API struct {
	customer *wecomClient // customer-contact secret: externalcontact/*
	app      *wecomClient // app secret: message/send, department/*, user/*
	agentID  string
	dup      int
	settings StaffSettings
}

// StaffSettings tune the staff SOP loop; they come from channels.wecom.
type StaffSettings struct {
	// PollInterval is how often task results are fetched while a task is
	// open; the workflow sleeps on a timer in between.
	PollInterval time.Duration `json:"poll_interval"`
	// LateWindow is how long after the deadline a task is still tracked,
	// so a task done late counts as late rather than not done.
	LateWindow time.Duration `json:"late_window"`
	// CallTimeout bounds one API call (channels.wecom.timeout): after a
	// few of them an interrupted create can no longer reach WeCom.
	CallTimeout time.Duration `json:"call_timeout"`
}

// NewAPI builds the API client from the channels.wecom section.
func NewAPI(cfg map[string]any, deps channels.Deps) (*API, error) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.HTTP == nil {
		deps.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	spec, _, _ := channels.Lookup("wecom.customer", "wecom")
	w, err := parseWeCom(spec, cfg, deps)
	if err != nil {
		return nil, err
	}
	return newAPI(w, deps), nil
}

func newAPI(w wecomSettings, deps channels.Deps) *API {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &API{
		customer: newWeComClient(w, w.customerSecret, deps), app: newWeComClient(w, w.secret, deps),
		agentID: w.agentID, dup: w.dupInterval,
		settings: StaffSettings{PollInterval: w.staffPoll, LateWindow: w.staffLate, CallTimeout: w.timeout},
	}
}

// Settings are the staff loop's settings.
func (a *API) Settings() StaffSettings { return a.settings }

// CorpID is the corp the client calls for.
func (a *API) CorpID() string { return a.app.corpID }

// get calls a GET endpoint; like post, it refetches the token once on
// 40014/42001. GETs have no side effect, so any failure may be retried.
func (c *wecomClient) get(ctx context.Context, path string, q url.Values, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		code, msg, err := c.getOnce(ctx, path, q, tok, out)
		if err != nil {
			if e, ok := err.(*channels.Error); ok && e.Class == channels.Ambiguous {
				e.Class = channels.RetryNow // a read cannot have done anything twice
			}
			return err
		}
		if code == 0 {
			return nil
		}
		e := wecomError(code, msg)
		if e.Reason == channels.ReasonTokenExpired {
			c.invalidate(tok)
			if attempt == 0 {
				continue
			}
		}
		return e
	}
}

func (c *wecomClient) getOnce(ctx context.Context, path string, q url.Values, tok string, out any) (int64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	qq := url.Values{}
	for k, v := range q {
		qq[k] = v
	}
	qq.Set("access_token", tok)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?"+qq.Encode(), nil)
	if err != nil {
		return 0, "", &channels.Error{Class: channels.Permanent, Reason: channels.ReasonMisconfigured, Message: err.Error()}
	}
	reply, err := channels.DoHTTP(c.http, req)
	if err != nil {
		return 0, "", err
	}
	if reply.Status != http.StatusOK {
		return 0, "", channels.StatusError(reply.Status, reply.Header, c.now(), reply.Body)
	}
	var ce util.CommonError
	if err := json.Unmarshal(reply.Body, &ce); err != nil {
		return 0, "", &channels.Error{Class: channels.RetryNow, Reason: channels.ReasonServerError, Message: "unreadable answer: " + channels.Truncate(string(reply.Body), 200)}
	}
	if out != nil && ce.ErrCode == 0 {
		if err := json.Unmarshal(reply.Body, out); err != nil {
			return 0, "", &channels.Error{Class: channels.RetryNow, Reason: channels.ReasonServerError, Message: "unreadable answer: " + err.Error()}
		}
	}
	return ce.ErrCode, ce.ErrMsg, nil
}

// readOnly marks an error of a read-only call retryable when it was only
// ambiguous: nothing was changed, so reading again is harmless.
func readOnly(err error) error {
	if e, ok := err.(*channels.Error); ok && e.Class == channels.Ambiguous {
		c := *e
		c.Class = channels.RetryNow
		return &c
	}
	return err
}

// MassTask is a created enterprise mass-send task.
type MassTask struct {
	MsgID    string
	FailList []string // customers that are not contacts of the sender
}

// CreateMassTask calls add_msg_template for one sender. WeCom has no
// idempotency key: an Ambiguous error means the task may exist, and the
// caller must look it up (FindMassTasks) before creating it again.
func (a *API) CreateMassTask(ctx context.Context, sender string, msg *canvases.Message, externalIDs []string) (MassTask, error) {
	t := msgTemplate{ChatType: "single", Sender: sender, ExternalUserID: externalIDs}
	if e := templateContent(msg, &t); e != nil {
		return MassTask{}, e
	}
	if len(externalIDs) == 0 || len(externalIDs) > 10000 {
		return MassTask{}, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: fmt.Sprintf("%d customers; a task takes 1 to 10000", len(externalIDs))}
	}
	var resp externalcontact.AddMsgTemplateResponse
	if err := a.customer.post(ctx, "/cgi-bin/externalcontact/add_msg_template", t, &resp); err != nil {
		return MassTask{}, err
	}
	return MassTask{MsgID: resp.MsgID, FailList: resp.FailList}, nil
}

// MassTaskRecord is one entry of get_groupmsg_list_v2.
type MassTaskRecord struct {
	MsgID       string
	Creator     string
	CreateTime  time.Time
	CreateType  int // 0 enterprise, 1 personal
	Text        string
	Attachments int
}

// FindMassTasks lists the enterprise (filter_type 0) single-chat mass-send
// tasks created in [from, to], for the lookup after an ambiguous create.
// WeCom caps the window at a month.
func (a *API) FindMassTasks(ctx context.Context, from, to time.Time) ([]MassTaskRecord, error) {
	var out []MassTaskRecord
	req := externalcontact.GetGroupMsgListV2Request{ChatType: "single", StartTime: from.Unix(), EndTime: to.Unix(), FilterType: 0, Limit: 100}
	for page := 0; page < 1000; page++ {
		var resp externalcontact.GetGroupMsgListV2Response
		if err := a.customer.post(ctx, "/cgi-bin/externalcontact/get_groupmsg_list_v2", req, &resp); err != nil {
			return nil, readOnly(err)
		}
		for _, g := range resp.GroupMsgList {
			if g == nil {
				continue
			}
			out = append(out, MassTaskRecord{MsgID: g.MsgID, Creator: g.Creator, CreateTime: time.Unix(g.CreateTime, 0), CreateType: g.CreateType,
				Text: g.Text.Content, Attachments: len(g.Attachments)})
		}
		if resp.NextCursor == "" {
			break
		}
		req.Cursor = resp.NextCursor
	}
	return out, nil
}

// MassTaskStaff is one staff member's status in a task (get_groupmsg_task).
type MassTaskStaff struct {
	UserID   string
	Sent     bool // status 2: the staff member confirmed and it went out
	SendTime time.Time
}

// MassTaskStaff lists who a task is for and whether each has sent it.
func (a *API) MassTaskStaff(ctx context.Context, msgID string) ([]MassTaskStaff, error) {
	var out []MassTaskStaff
	req := externalcontact.GetGroupMsgTaskRequest{MsgID: msgID, Limit: 1000}
	for page := 0; page < 1000; page++ {
		var resp externalcontact.GetGroupMsgTaskResponse
		if err := a.customer.post(ctx, "/cgi-bin/externalcontact/get_groupmsg_task", req, &resp); err != nil {
			return nil, readOnly(err)
		}
		for _, t := range resp.TaskList {
			if t == nil {
				continue
			}
			s := MassTaskStaff{UserID: t.UserID, Sent: t.Status == 2}
			if t.SendTime > 0 {
				s.SendTime = time.Unix(int64(t.SendTime), 0)
			}
			out = append(out, s)
		}
		if resp.NextCursor == "" {
			break
		}
		req.Cursor = resp.NextCursor
	}
	return out, nil
}

// Customer results of a mass-send (get_groupmsg_send_result status).
const (
	MassUnsent    = 0
	MassSent      = 1
	MassNotFriend = 2
	MassOverQuota = 3 // the customer already received another mass-send
)

// MassTaskResult is one customer's result.
type MassTaskResult struct {
	ExternalUserID string
	Status         int
	SendTime       time.Time
}

// MassTaskResults lists a staff member's per-customer results of a task.
func (a *API) MassTaskResults(ctx context.Context, msgID, userID string) ([]MassTaskResult, error) {
	var out []MassTaskResult
	req := externalcontact.GetGroupMsgSendResultRequest{MsgID: msgID, UserID: userID, Limit: 1000}
	for page := 0; page < 100000; page++ {
		var resp externalcontact.GetGroupMsgSendResultResponse
		if err := a.customer.post(ctx, "/cgi-bin/externalcontact/get_groupmsg_send_result", req, &resp); err != nil {
			return nil, readOnly(err)
		}
		for _, s := range resp.SendList {
			if s == nil {
				continue
			}
			r := MassTaskResult{ExternalUserID: s.ExternalUserID, Status: s.Status}
			if s.SendTime > 0 {
				r.SendTime = time.Unix(int64(s.SendTime), 0)
			}
			out = append(out, r)
		}
		if resp.NextCursor == "" {
			break
		}
		req.Cursor = resp.NextCursor
	}
	return out, nil
}

// RemindMassTask calls remind_groupmsg_send. WeCom allows three reminders
// per task in 24 hours; the caller counts them (AddStaffReminder), and a
// refusal comes back as a Permanent error with Reason over_quota.
func (a *API) RemindMassTask(ctx context.Context, msgID string) error {
	err := a.customer.post(ctx, "/cgi-bin/externalcontact/remind_groupmsg_send", externalcontact.RemindGroupMsgSendRequest{MsgID: msgID}, nil)
	if e, ok := err.(*channels.Error); ok && e.Code == "45009" {
		// For this call 45009 is the daily reminder limit, not a rate:
		// waiting a minute does not help.
		c := *e
		c.Class, c.Reason, c.RetryAfter = channels.Permanent, channels.ReasonOverQuota, 0
		return &c
	}
	return err
}

// SendWelcome sends a new customer's welcome message with the welcome code of
// their add_external_contact callback (send_welcome_msg).
func (a *API) SendWelcome(ctx context.Context, code string, msg *canvases.Message) error {
	return sendWelcome(ctx, a.customer, code, msg)
}

func sendWelcome(ctx context.Context, c *wecomClient, code string, msg *canvases.Message) error {
	var t msgTemplate
	if e := templateContent(msg, &t); e != nil {
		return e
	}
	body := struct {
		WelcomeCode string                   `json:"welcome_code"`
		Text        *externalcontact.MsgText `json:"text,omitempty"`
		Attachments []wecomAttachment        `json:"attachments,omitempty"`
	}{code, t.Text, t.Attachments}
	return c.post(ctx, "/cgi-bin/externalcontact/send_welcome_msg", body, nil)
}

// TemplateCard is a button_interaction template card: a brief with a
// confirm button whose click WeCom reports to the callback as a
// template_card_event carrying TaskID and the button's Key.
type TemplateCard struct {
	TaskID      string // unique per app; letters, digits, _-@
	Title       string
	Description string
	URL         string // opens when the card is tapped; optional
	ButtonText  string
	ButtonKey   string
}

type cardAction struct {
	Type int    `json:"type"`
	URL  string `json:"url,omitempty"`
}

type cardButton struct {
	Text  string `json:"text"`
	Style int    `json:"style,omitempty"`
	Key   string `json:"key"`
}

// SendTemplateCard sends a template card app message to one member. An
// Ambiguous error may have delivered it; with duplicate_check_interval set,
// WeCom drops the repeat, so the caller may retry.
func (a *API) SendTemplateCard(ctx context.Context, userID string, card TemplateCard) error {
	if card.ButtonKey == "" {
		card.ButtonKey = "ack"
	}
	if card.ButtonText == "" {
		card.ButtonText = "确认收到"
	}
	tc := map[string]any{
		"card_type":      "button_interaction",
		"main_title":     map[string]string{"title": truncateRunes(card.Title, 36)},
		"sub_title_text": card.Description,
		"task_id":        card.TaskID,
		"button_list":    []cardButton{{Text: card.ButtonText, Style: 1, Key: card.ButtonKey}},
	}
	if card.URL != "" {
		tc["card_action"] = cardAction{Type: 1, URL: card.URL}
	} else {
		tc["card_action"] = cardAction{Type: 0}
	}
	body := struct {
		*message.SendRequestCommon
		TemplateCard map[string]any `json:"template_card"`
	}{&message.SendRequestCommon{ToUser: userID, MsgType: "template_card", AgentID: a.agentID}, tc}
	if a.dup > 0 {
		body.EnableDuplicateCheck, body.DuplicateCheckInterval = 1, a.dup
	}
	var resp message.SendResponse
	if err := a.app.post(ctx, "/cgi-bin/message/send", body, &resp); err != nil {
		return err
	}
	if resp.InvalidUser != "" {
		return &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidUser, Message: "invaliduser: not a member or not visible to the app"}
	}
	return nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Department is one department of the address book.
type Department struct {
	ID       int
	Name     string
	ParentID int
	Leaders  []string // department_leader userids
}

// Departments lists every department visible to the app (department/list).
func (a *API) Departments(ctx context.Context) ([]Department, error) {
	var resp addresslist.DepartmentListResponse
	if err := a.app.get(ctx, "/cgi-bin/department/list", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]Department, 0, len(resp.Department))
	for _, d := range resp.Department {
		if d == nil {
			continue
		}
		out = append(out, Department{ID: d.ID, Name: d.Name, ParentID: d.ParentID, Leaders: d.DepartmentLeader})
	}
	return out, nil
}

// Member is one member of the address book.
type Member struct {
	UserID         string
	Name           string
	Departments    []int
	MainDepartment int
	DirectLeaders  []string
	IsLeaderInDept []int
}

// DepartmentMembers lists a department's direct members with their
// departments and direct leaders (user/list).
func (a *API) DepartmentMembers(ctx context.Context, departmentID int) ([]Member, error) {
	var resp struct {
		util.CommonError
		UserList []struct {
			UserID         string   `json:"userid"`
			Name           string   `json:"name"`
			Department     []int    `json:"department"`
			MainDepartment int      `json:"main_department"`
			DirectLeader   []string `json:"direct_leader"`
			IsLeaderInDept []int    `json:"is_leader_in_dept"`
		} `json:"userlist"`
	}
	if err := a.app.get(ctx, "/cgi-bin/user/list", url.Values{"department_id": {strconv.Itoa(departmentID)}}, &resp); err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(resp.UserList))
	for _, u := range resp.UserList {
		out = append(out, Member{UserID: u.UserID, Name: u.Name, Departments: u.Department, MainDepartment: u.MainDepartment,
			DirectLeaders: u.DirectLeader, IsLeaderInDept: u.IsLeaderInDept})
	}
	return out, nil
}

// Follow is one (staff member, customer) contact from batch/get_by_user.
type Follow struct {
	Staff          string
	ExternalUserID string
	Name           string
	State          string
	CreateTime     time.Time
}

// ContactsOf lists the customers of up to 100 staff members with who
// follows them (externalcontact/batch/get_by_user, paged).
func (a *API) ContactsOf(ctx context.Context, staff []string) ([]Follow, error) {
	if len(staff) > 100 {
		return nil, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: "batch/get_by_user takes at most 100 userids"}
	}
	var out []Follow
	req := externalcontact.BatchGetExternalUserDetailsRequest{UserIDList: staff, Limit: 100}
	for page := 0; page < 100000; page++ {
		var resp struct {
			util.CommonError
			NextCursor          string `json:"next_cursor"`
			ExternalContactList []struct {
				ExternalContact externalcontact.ExternalContact `json:"external_contact"`
				FollowInfo      struct {
					UserID     string `json:"userid"`
					CreateTime int64  `json:"createtime"`
					State      string `json:"state"`
				} `json:"follow_info"`
			} `json:"external_contact_list"`
		}
		if err := a.customer.post(ctx, "/cgi-bin/externalcontact/batch/get_by_user", req, &resp); err != nil {
			return nil, readOnly(err)
		}
		for _, c := range resp.ExternalContactList {
			f := Follow{Staff: c.FollowInfo.UserID, ExternalUserID: c.ExternalContact.ExternalUserID, Name: c.ExternalContact.Name, State: c.FollowInfo.State}
			if c.FollowInfo.CreateTime > 0 {
				f.CreateTime = time.Unix(c.FollowInfo.CreateTime, 0)
			}
			out = append(out, f)
		}
		if resp.NextCursor == "" {
			break
		}
		req.Cursor = resp.NextCursor
	}
	return out, nil
}

// ExternalContacts lists one staff member's customers (externalcontact/list).
func (a *API) ExternalContacts(ctx context.Context, staff string) ([]string, error) {
	var resp externalcontact.ExternalUserListResponse
	err := a.customer.get(ctx, "/cgi-bin/externalcontact/list", url.Values{"userid": {staff}}, &resp)
	if e, ok := err.(*channels.Error); ok && e.Code == "84061" { // not an external contact: a member without customers
		return nil, nil
	}
	return resp.ExternalUserID, err
}

// parseStaffSettings reads the staff loop's settings of channels.wecom.
func parseStaffSettings(s *channels.Settings) (poll, late time.Duration) {
	poll, late = s.Duration("staff_poll_interval"), s.Duration("staff_late_window")
	s.Check(poll > 0, "staff_poll_interval: must be more than 0")
	s.Check(!strings.HasPrefix(s.Raw("staff_late_window"), "-"), "staff_late_window: must not be negative")
	return poll, late
}

// Configured builds the client when the deployment sends WeCom through
// WeCom (providers["wecom.customer"] is "wecom"), else returns nil: the
// outbox stands in and there is nothing to call. sections and providers
// are what channels.NewSet takes.
func Configured(sections map[string]map[string]any, providers map[string]string, deps channels.Deps) (*API, error) {
	if providers["wecom.customer"] != "wecom" {
		return nil, nil
	}
	return NewAPI(sections["wecom"], deps)
}
