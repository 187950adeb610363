package console

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// fakeBackend stands in for app.App: the console is what is tested
// here; the real App is driven in browser_test.go.
type fakeBackend struct {
	comp     *canvases.Compiler
	deployed []string
	mu       sync.Mutex
	plan     *canvases.Plan
	state    string
	calls    []string
	actors   []string
}

const testCanvas = `id: winback
name: 沉睡客户唤醒
trigger: {schedule: {cron: "0 10 * * MON", timezone: Asia/Shanghai}}
steps:
  - id: coupon
    push: {channel: outbox, text: "hello"}
  - id: wait-3d
    wait: 3d
  - id: check
    branch:
      - {when: 'user.traits.orders_30d > 0', goto: thanks}
      - {else: nudge}
  - id: nudge
    push: {channel: outbox, text: "again"}
    next: done
  - id: thanks
    tag: {add: [converted]}
  - id: done
    exit: {}
`

func newFake(t *testing.T) *fakeBackend {
	comp, err := canvases.NewCompiler(canvases.Options{Schema: canvases.Schema{Traits: map[string]canvases.FieldType{"orders_30d": canvases.TypeNumber}}})
	require.NoError(t, err)
	p, probs := comp.Compile("winback.yaml", []byte(testCanvas))
	require.False(t, probs.HasErrors(), "%v", probs)
	return &fakeBackend{plan: p, state: "active", comp: comp}
}

func (f *fakeBackend) Canvases(ctx context.Context) ([]server.CanvasInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []server.CanvasInfo{
		{ID: "winback", Name: "沉睡客户唤醒", Plan: f.plan.ShortHash(), Trigger: "schedule", Schedule: "0 10 * * MON (Asia/Shanghai)", Active: true, DeployedAt: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), Author: "lina", State: f.state},
		{ID: "old-promo", Name: "旧活动", Plan: "abc", Trigger: "manual", Active: false},
		{ID: "draft-one", Plan: "def", Trigger: "manual", Active: true, Approval: "awaiting approval"},
	}, nil
}

func (f *fakeBackend) Report(ctx context.Context, canvasID string, runID int64) (*reports.Report, error) {
	if canvasID != "winback" {
		return &reports.Report{CanvasID: canvasID}, nil
	}
	step := func(id, kind string, c store.StepCounts) *reports.StepReport {
		c.StepID = id
		return &reports.StepReport{StepCounts: &c, Kind: kind}
	}
	return &reports.Report{CanvasID: "winback", Entered: 1000, Converted: 40, Steps: []*reports.StepReport{
		step("coupon", "push", store.StepCounts{Entered: 1000, Sent: 950, Failed: map[string]int64{"invalid_user": 20}, Suppressed: map[string]int64{"quiet_hours": 25, "unsubscribed": 5}, Converted: 30}),
		step("wait-3d", "wait", store.StepCounts{Entered: 1000}),
		step("check", "branch", store.StepCounts{Entered: 700}),
		step("nudge", "push", store.StepCounts{Entered: 600, Sent: 590, Unknown: 10}),
		step("thanks", "tag", store.StepCounts{Entered: 100, Converted: 10}),
		step("done", "exit", store.StepCounts{Entered: 700}),
	}}, nil
}

func (f *fakeBackend) Runs(ctx context.Context, canvasID string, limit int) ([]server.RunInfo, error) {
	if canvasID != "winback" {
		return nil, nil
	}
	return []server.RunInfo{{ID: 7, WorkflowID: "huabu-winback-7", Canvas: "winback", Plan: f.plan.ShortHash(), Trigger: "schedule", State: "running", Entered: 1000, StartedAt: time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)}}, nil
}

func (f *fakeBackend) RunStatus(ctx context.Context, id string) (server.RunStatus, error) {
	if id != "7" && id != "huabu-winback-7" {
		return server.RunStatus{}, server.ErrNotFound
	}
	rep, _ := f.Report(ctx, "winback", 7)
	st := server.RunStatus{WorkflowID: "huabu-winback-7", Status: "Running", RunID: 7, Canvas: "winback", Active: 1}
	for _, s := range rep.Steps {
		w := int64(0)
		if s.StepID == "check" {
			w = 300
		}
		st.Steps = append(st.Steps, server.StepProgress{StepReport: s, Waiting: w})
	}
	return st, nil
}

func (f *fakeBackend) control(ctx context.Context, action, state string) (server.Controlled, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, action)
	f.actors = append(f.actors, auth.ActorFrom(ctx).Name)
	was := f.state
	f.state = state
	return server.Controlled{Canvas: "winback", State: state, Was: was}, nil
}

func (f *fakeBackend) Pause(ctx context.Context, id string) (server.Controlled, error) {
	return f.control(ctx, "pause", "paused")
}
func (f *fakeBackend) Resume(ctx context.Context, id string) (server.Controlled, error) {
	return f.control(ctx, "resume", "active")
}
func (f *fakeBackend) Stop(ctx context.Context, id string) (server.Controlled, error) {
	return f.control(ctx, "stop", "stopped")
}

func (f *fakeBackend) CanvasPlan(ctx context.Context, canvasID, plan string) (*canvases.Plan, error) {
	if canvasID != "winback" {
		return nil, server.ErrNotFound
	}
	return f.plan, nil
}

func (f *fakeBackend) FindUser(ctx context.Context, q string) (string, error) {
	if q == "u1" || q == "13800130001" || q == "wmEXT0001" {
		return "u1", nil
	}
	return "", server.ErrNotFound
}

func (f *fakeBackend) User(ctx context.Context, id string) (User, error) {
	if id != "u1" {
		return User{}, server.ErrNotFound
	}
	at := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	return User{ID: "u1", Doc: map[string]any{"name": "徐静", "phone": "13800130001", "tags": []any{"母婴"}, "traits": map[string]any{"orders_30d": 2.0}, "rfm": map[string]any{"r": 5.0}},
		Events: []store.EventRow{{Type: "track", Name: "purchase", Properties: []byte(`{"amount":88}`), Timestamp: at.Add(-time.Hour)}},
		Journey: []store.JourneyRun{{CanvasID: "winback", RunID: 7, State: "running", EnteredAt: at,
			Steps: []store.JourneyStep{{StepID: "wait-3d"}, {StepID: "coupon"}},
			Deliveries: []store.JourneyDelivery{
				{StepID: "coupon", Channel: "sms", State: "suppressed", Reason: "quiet_hours", At: at.Add(time.Second)},
				{StepID: "nudge", Channel: "outbox", State: "sent", ProviderRef: "msg-42", Text: "您好 徐静", At: at.Add(3 * time.Second)}},
			Exit: &store.JourneyExit{StepID: "wait-3d", Reason: "purchase", At: at.Add(4 * time.Second)}}}}, nil
}

func (f *fakeBackend) StaffReport(ctx context.Context, canvasID string, runID int64, by string) (*reports.StaffReport, error) {
	if canvasID != "winback" {
		return nil, reports.ErrNoCanvas
	}
	half := 0.5
	rep := &reports.StaffReport{CanvasID: canvasID, By: by, RunID: runID, Total: reports.StaffRow{Tasks: 4, OnTime: 2, NotDone: 2, CompletionRate: &half}}
	if by == reports.ByGrid {
		rep.Rows = []reports.StaffRow{{Grid: "东湖网格", Staffs: 2, Tasks: 4, OnTime: 2, NotDone: 2, CompletionRate: &half}}
	} else {
		rep.Rows = []reports.StaffRow{{Staff: "lina", Name: "李娜", Grid: "东湖网格", Tasks: 2, OnTime: 2}, {Staff: "zhao", Grid: "东湖网格", Tasks: 2, NotDone: 2}}
	}
	return rep, nil
}

func (f *fakeBackend) StepRecipients(ctx context.Context, canvasID string, runID int64, stepID, after string) (RecipientPage, error) {
	if canvasID != "winback" || (runID != 0 && runID != 7) {
		return RecipientPage{}, server.ErrNotFound
	}
	at := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	switch after {
	case "":
		var rs []store.StepRecipient
		for i := 1; i <= 20; i++ {
			rs = append(rs, store.StepRecipient{UID: int64(i), UserID: fmt.Sprintf("u%d", i), Outcome: store.DeliverySent, Channel: "sms", At: at})
		}
		rs[1].Outcome, rs[1].Reason, rs[1].Converted = store.DeliverySuppressed, "quiet_hours", true
		return RecipientPage{RunID: 7, Recipients: rs, Next: "L0.20"}, nil
	case "L0.20":
		return RecipientPage{RunID: 7, Recipients: []store.StepRecipient{{UID: 21, UserID: "u21", Outcome: store.DeliveryFailed, Reason: "invalid_number", Exit: "exit_event", At: at}}}, nil
	}
	return RecipientPage{}, fmt.Errorf("%w: after: bad cursor %q", server.ErrInvalid, after)
}

// The fake's version history: v1 waited 3 days, v2 (current) waits 5.
func (f *fakeBackend) versions() []store.CanvasVersion {
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	v2 := strings.Replace(testCanvas, "wait: 3d", "wait: 5d", 1)
	return []store.CanvasVersion{
		{ID: 2, CanvasID: "winback", PlanHash: f.plan.Hash, Path: "winback.yaml", Source: v2, Author: "lina", DeployedAt: at.Add(24 * time.Hour)},
		{ID: 1, CanvasID: "winback", PlanHash: strings.Repeat("0", 64), Path: "winback.yaml", Source: testCanvas, Author: "otto", DeployedAt: at},
	}
}

func (f *fakeBackend) CanvasVersions(ctx context.Context, canvasID string) ([]store.CanvasVersion, error) {
	if canvasID != "winback" {
		return nil, nil
	}
	list := f.versions()
	for i := range list {
		list[i].Source = ""
	}
	return list, nil
}

func (f *fakeBackend) CanvasVersion(ctx context.Context, canvasID string, id int64) (store.CanvasVersion, error) {
	for _, v := range f.versions() {
		if canvasID == "winback" && v.ID == id {
			return v, nil
		}
	}
	return store.CanvasVersion{}, server.ErrNotFound
}

func (f *fakeBackend) StaffTasks(ctx context.Context, canvasID string, runID int64, after string) (StaffTaskPage, error) {
	at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC) // 90 minutes before the rig's now
	line := func(staff, user, live string) store.StaffTaskLine {
		return store.StaffTaskLine{RunID: 7, StepID: "sop", Staff: staff, Grid: "东湖网格", Kind: "customers", Live: live, UID: 1, UserID: user, ExternalID: "wm" + user,
			CreatedAt: at, Deadline: at.Add(time.Hour)}
	}
	follow := store.StaffFollowUps{Reminders: 3, Escalations: 1}
	switch after {
	case "":
		zhao := line("zhao", "u2", "not_done")
		zhao.Reminders, zhao.EscalatedAt = []time.Time{at.Add(30 * time.Minute)}, at.Add(80*time.Minute)
		return StaffTaskPage{Lines: []store.StaffTaskLine{line("lina", "u1", "open"), zhao}, Next: "p2", FollowUps: follow}, nil
	case "p2":
		return StaffTaskPage{Lines: []store.StaffTaskLine{line("zhao", "u3", "not_done")}, FollowUps: follow}, nil
	}
	return StaffTaskPage{}, fmt.Errorf("%w: after: bad cursor", server.ErrInvalid)
}

func (f *fakeBackend) Check(ctx context.Context, file string, src []byte) (*canvases.Plan, canvases.Problems) {
	return f.comp.Compile(file, src)
}

func (f *fakeBackend) DeploySources(ctx context.Context, files map[string][]byte) (server.DeployOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out server.DeployOutcome
	for name, src := range files {
		p, _ := f.comp.Compile(name, src)
		f.deployed = append(f.deployed, p.ID+"@"+auth.ActorFrom(ctx).Name)
		out.Canvases = append(out.Canvases, server.DeployedCanvas{ID: p.ID, Plan: p.ShortHash(), Changed: true, Approval: "awaiting approval"})
	}
	return out, nil
}

func (f *fakeBackend) EstimateSource(ctx context.Context, file string, src []byte, opts estimate.Options) (*estimate.Result, canvases.Problems, error) {
	var sample []estimate.SampleUser
	for i := 1; i <= 12; i++ {
		sample = append(sample, estimate.SampleUser{ID: fmt.Sprintf("u%d", i)})
	}
	return &estimate.Result{Entering: estimate.Count{N: 1234, Margin: 56}, Matched: estimate.Count{N: 1300}, Evaluated: 5000, Profiles: 20000, Sample: sample}, nil, nil
}

const (
	viewerToken   = "viewer-token-0123456789"
	operatorToken = "operator-token-0123456789"
)

type rig struct {
	t    *testing.T
	fake *fakeBackend
	srv  *httptest.Server
}

// newRig serves the console (with tokens, unless open) on a test server.
func newRig(t *testing.T, open bool) *rig {
	t.Helper()
	var tokens []auth.Token
	if !open {
		tokens = []auth.Token{{Name: "vera", Role: auth.Viewer, Secret: viewerToken}, {Name: "otto", Role: auth.Operator, Secret: operatorToken}}
	}
	authn, err := auth.New(tokens)
	require.NoError(t, err)
	fake := newFake(t)
	now := time.Date(2026, 11, 30, 2, 30, 0, 0, time.UTC)
	c, err := New(Options{Backend: fake, Auth: authn, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Zone: time.FixedZone("CST", 8*3600), Now: func() time.Time { return now }})
	require.NoError(t, err)
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &rig{t: t, fake: fake, srv: srv}
}

// client does not follow redirects, so tests see them.
func (r *rig) client() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (r *rig) do(req *http.Request) (*http.Response, string) {
	r.t.Helper()
	resp, err := r.client().Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(r.t, err)
	return resp, string(b)
}

func (r *rig) get(path string, mod func(*http.Request)) (*http.Response, string) {
	req, err := http.NewRequest("GET", r.srv.URL+path, nil)
	require.NoError(r.t, err)
	if mod != nil {
		mod(req)
	}
	return r.do(req)
}

func (r *rig) post(path string, form url.Values, mod func(*http.Request)) (*http.Response, string) {
	req, err := http.NewRequest("POST", r.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(r.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if mod != nil {
		mod(req)
	}
	return r.do(req)
}

// login posts a token to the form and returns the session cookie.
func (r *rig) login(token string) *http.Cookie {
	r.t.Helper()
	resp, _ := r.post("/login", url.Values{"token": {token}, "next": {"/canvases/winback"}}, nil)
	require.Equal(r.t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(r.t, "/canvases/winback", resp.Header.Get("Location"))
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	r.t.Fatal("no session cookie")
	return nil
}

func withCookie(c *http.Cookie) func(*http.Request) {
	return func(req *http.Request) { req.AddCookie(c) }
}

func bearer(token string) func(*http.Request) {
	return func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+token) }
}

var formTokenRE = regexp.MustCompile(`name="form_token" value="([^"]+)"`)

func TestStrangersGoToTheLoginForm(t *testing.T) {
	r := newRig(t, false)
	for _, path := range []string{"/", "/canvases", "/canvases/winback", "/runs/7"} {
		resp, _ := r.get(path, nil)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, path)
		require.Equal(t, "/login?next="+url.QueryEscape(path), resp.Header.Get("Location"), path)
	}
	// A bearer token that is not valid is a 401, as on the API.
	resp, body := r.get("/canvases/winback", bearer("not-a-token-at-all-xx"))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body, auth.ErrBadToken.Error())
	// A forged or altered session cookie is no session.
	good := r.login(viewerToken)
	for _, forged := range []string{"x", good.Value + "x", strings.Replace(good.Value, ".", ".1", 1)} {
		resp, _ = r.get("/canvases/winback", withCookie(&http.Cookie{Name: SessionCookie, Value: forged}))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, forged)
	}
	// The login page itself is open, and a POST without a session is refused.
	resp, body = r.get("/login", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `name="token"`)
	resp, _ = r.post("/canvases/winback/pause", url.Values{}, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Empty(t, r.fake.calls)
}

func TestLoginSetsAStrictHttpOnlySession(t *testing.T) {
	r := newRig(t, false)
	resp, body := r.post("/login", url.Values{"token": {"wrong-token-0123456789"}}, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body, `id="login-error"`)
	require.Empty(t, resp.Cookies())

	c := r.login(viewerToken)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.False(t, c.Secure, "plain HTTP: a Secure cookie would never come back")
	require.NotContains(t, c.Value, viewerToken)

	resp, body = r.get("/canvases/winback", withCookie(c))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "vera · viewer")

	// Behind a TLS proxy the cookie is Secure.
	resp, _ = r.post("/login", url.Values{"token": {viewerToken}}, func(req *http.Request) { req.Header.Set("X-Forwarded-Proto", "https") })
	require.True(t, resp.Cookies()[0].Secure)
	// A redirect after login stays on this site.
	resp, _ = r.post("/login", url.Values{"token": {viewerToken}, "next": {"//evil.example/"}}, nil)
	require.Equal(t, "/", resp.Header.Get("Location"))

	// Logging out clears the cookie.
	page, _ := r.get("/canvases", withCookie(c))
	require.Equal(t, http.StatusOK, page.StatusCode)
	resp, _ = r.post("/logout", url.Values{}, withCookie(c))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, -1, resp.Cookies()[0].MaxAge)
}

func TestControlsNeedTheControlPermissionAndTheFormToken(t *testing.T) {
	r := newRig(t, false)
	viewer, operator := r.login(viewerToken), r.login(operatorToken)

	// A viewer sees no buttons, and pressing one anyway is 403.
	_, body := r.get("/runs/7", withCookie(viewer))
	require.NotContains(t, body, `id="pause"`)
	vtok := formTokenRE.FindStringSubmatch(body)
	require.Nil(t, vtok, "the viewer's page has no control form")
	resp, body := r.post("/canvases/winback/pause", url.Values{"form_token": {"x"}}, withCookie(viewer))
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "control permission")
	resp, _ = r.post("/canvases/winback/pause", url.Values{}, bearer(viewerToken))
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// The operator sees pause and stop.
	_, body = r.get("/runs/7", withCookie(operator))
	require.Contains(t, body, `id="pause"`)
	require.Contains(t, body, `id="stop"`)
	m := formTokenRE.FindStringSubmatch(body)
	require.NotNil(t, m)
	token := m[1]

	// Without the form token, with another session's token, or from another site: refused (CSRF).
	resp, _ = r.post("/canvases/winback/pause", url.Values{}, withCookie(operator))
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	other := r.login(operatorToken)
	_, otherBody := r.get("/runs/7", withCookie(other))
	otherToken := formTokenRE.FindStringSubmatch(otherBody)[1]
	if other.Value != operator.Value {
		resp, _ = r.post("/canvases/winback/pause", url.Values{"form_token": {otherToken}}, withCookie(operator))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	}
	resp, _ = r.post("/canvases/winback/pause", url.Values{"form_token": {token}}, func(req *http.Request) {
		req.AddCookie(operator)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
	})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, r.fake.calls)

	// With it: paused, by the operator, and back to the run page.
	resp, _ = r.post("/canvases/winback/pause", url.Values{"form_token": {token}, "next": {"/runs/7"}}, func(req *http.Request) {
		req.AddCookie(operator)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/runs/7", resp.Header.Get("Location"))
	require.Equal(t, []string{"pause"}, r.fake.calls)
	require.Equal(t, []string{"otto"}, r.fake.actors)

	// Paused: the page offers resume.
	_, body = r.get("/runs/7", withCookie(operator))
	require.Contains(t, body, `id="resume"`)
	require.NotContains(t, body, `id="pause"`)
	require.Contains(t, body, `data-state="paused"`)

	// Scripts use the bearer token, as on the API; no form token needed.
	resp, _ = r.post("/canvases/winback/resume", url.Values{}, bearer(operatorToken))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, []string{"pause", "resume"}, r.fake.calls)
}

func TestWithoutTokensOnlyLoopbackClients(t *testing.T) {
	r := newRig(t, true)
	// httptest serves on 127.0.0.1: let in, no login.
	resp, body := r.get("/canvases/winback", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `id="pause"`, "local is admin")
	// A proxy in front makes everyone look local: refused, as on the API.
	resp, body = r.get("/canvases/winback", func(req *http.Request) { req.Header.Set("X-Forwarded-For", "203.0.113.9") })
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "loopback")
	// A page of another site cannot make the local browser press a button.
	resp, _ = r.post("/canvases/winback/stop", url.Values{}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, r.fake.calls)
	_, body = r.get("/canvases/winback", nil)
	token := formTokenRE.FindStringSubmatch(body)
	resp, _ = r.post("/canvases/winback/stop", url.Values{"form_token": {token[1]}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, []string{"stop"}, r.fake.calls)
	require.Equal(t, []string{auth.LocalName}, r.fake.actors)
}

var nodeRE = regexp.MustCompile(`<g class="node kind-(\w+)" data-step="([^"]+)" data-entered="(\d+)" data-sent="(\d+)" data-failed="(\d+)" data-suppressed="(\d+)" data-unknown="(\d+)" data-waiting="(\d+)" data-converted="(\d+)">`)

func TestCanvasPageDrawsEveryStepWithItsCounts(t *testing.T) {
	r := newRig(t, false)
	resp, body := r.get("/canvases/winback", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	got := map[string]string{}
	for _, m := range nodeRE.FindAllStringSubmatch(body, -1) {
		got[m[2]] = strings.Join(m[3:], " ")
	}
	require.Equal(t, map[string]string{
		"coupon":  "1000 950 20 30 0 0 30",
		"wait-3d": "1000 0 0 0 0 0 0",
		"check":   "700 0 0 0 0 300 0", // 300 asleep before it in the running run
		"nudge":   "600 590 0 0 10 0 0",
		"thanks":  "100 0 0 0 0 0 10",
		"done":    "700 0 0 0 0 0 0",
	}, got)
	// The same edges `huabu graph` draws: one path per edge of the plan.
	plan, _ := r.fake.CanvasPlan(context.Background(), "winback", "")
	require.Equal(t, len(plan.Graph().Edges), strings.Count(body, `<path class="edge`))
	require.Contains(t, body, `user.traits.orders_30d &gt; 0`, "branch edges are labelled")
	// Reasons per step, and the runs list with its funnel.
	require.Contains(t, body, `data-reason="quiet_hours"`)
	require.Contains(t, body, `data-reason="invalid_user"`)
	require.Contains(t, body, `<tr data-run="7" data-state="running">`)
	require.Contains(t, body, "→")
	// Viewers get no buttons.
	require.NotContains(t, body, `id="pause"`)

	resp, _ = r.get("/canvases/nope", bearer(viewerToken))
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = r.get("/canvases/winback?run=x", bearer(viewerToken))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestCanvasesPageStatusesFiltersAndNextFires(t *testing.T) {
	r := newRig(t, false)
	resp, body := r.get("/canvases", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<tr data-canvas="winback" data-status="live">`)
	require.Contains(t, body, `<tr data-canvas="old-promo" data-status="retired">`)
	require.Contains(t, body, `<tr data-canvas="draft-one" data-status="draft awaiting approval">`)
	// Mondays 10:00 Shanghai, after 2026-11-30 02:30 UTC (10:30 in Shanghai, a Monday), shown in the config's zone.
	require.Contains(t, body, "<time>2026-12-07 10:00:00 CST</time>")
	require.Contains(t, body, "<time>2026-12-14 10:00:00 CST</time>")
	require.Contains(t, body, "<time>2026-12-21 10:00:00 CST</time>")
	require.Contains(t, body, "lina", "who deployed")
	require.Contains(t, body, "进入 1000 → 发送 1540 → 转化 40", "the last run's funnel, in Chinese by default")

	_, body = r.get("/canvases?status=retired", bearer(viewerToken))
	require.Contains(t, body, `data-canvas="old-promo"`)
	require.NotContains(t, body, `data-canvas="winback"`)
	_, body = r.get("/canvases?q=%E6%B2%89%E7%9D%A1", bearer(viewerToken)) // 沉睡, in the name
	require.Contains(t, body, `data-canvas="winback"`)
	require.NotContains(t, body, `data-canvas="draft-one"`)

	// English by the browser's language, or the switch.
	_, body = r.get("/canvases", func(req *http.Request) {
		bearer(viewerToken)(req)
		req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	})
	require.Contains(t, body, "entered 1000 → sent 1540 → converted 40")
	resp, body = r.get("/canvases?lang=en", bearer(viewerToken))
	require.Contains(t, body, `<html lang="en">`)
	require.Equal(t, "huabu_lang", resp.Cookies()[0].Name)
}

func TestRunPageRefreshesWhileRunning(t *testing.T) {
	r := newRig(t, false)
	resp, body := r.get("/runs/7", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<section id="progress" data-status="Running" data-refresh="3000">`)
	require.Contains(t, body, `<tr data-step="check" data-entered="700" data-sent="0" data-waiting="300">`)
	resp, _ = r.get("/runs/99", bearer(viewerToken))
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	// Assets are embedded and served.
	resp, body = r.get("/assets/console.js", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "DOMParser")
}

func TestUserPageFindsByPhoneAndShowsTheJourney(t *testing.T) {
	r := newRig(t, false)
	for _, q := range []string{"u1", "13800130001", "wmEXT0001"} {
		resp, _ := r.get("/users?q="+q, bearer(viewerToken))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, q)
		require.Equal(t, "/users/u1", resp.Header.Get("Location"))
	}
	resp, body := r.get("/users?q=nobody", bearer(viewerToken))
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body, `id="no-user"`)
	resp, _ = r.get("/users/u1", nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "behind the login too")

	resp, body = r.get("/users/u1", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<h1 id="user" data-user="u1">`)
	require.Contains(t, body, "徐静")
	require.Contains(t, body, `<span class="tag">母婴</span>`)
	require.Contains(t, body, `<tr data-event="purchase">`)
	// The path in plan order, and what happened in time order: entered, suppressed (why), sent (text, message id), exited.
	require.Contains(t, body, `<span data-path-step="coupon">coupon</span> → <span data-path-step="wait-3d">wait-3d</span>`)
	kinds := regexp.MustCompile(`data-kind="(\w+)" data-step="([^"]*)"`).FindAllStringSubmatch(body, -1)
	var got []string
	for _, k := range kinds {
		got = append(got, k[1]+":"+k[2])
	}
	require.Equal(t, []string{"entered:", "suppressed:coupon", "sent:nudge", "exited:wait-3d"}, got)
	require.Contains(t, body, `data-reason="quiet_hours"`)
	require.Contains(t, body, "msg-42")
	require.Contains(t, body, "您好 徐静")
	resp, _ = r.get("/users/nobody", bearer(viewerToken))
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestStaffPageByGridAndByStaff(t *testing.T) {
	r := newRig(t, false)
	// A canvas with a staff_task step is offered.
	comp, err := canvases.NewCompiler(canvases.Options{})
	require.NoError(t, err)
	p, probs := comp.Compile("sop.yaml", []byte("id: winback\ntrigger: {manual: {}}\nsteps:\n  - id: brief\n    staff_task: {text: hi, deadline: 9h}\n"))
	require.False(t, probs.HasErrors(), "%v", probs)
	r.fake.plan = p

	resp, body := r.get("/staff", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<table class="list" id="staff-report" data-canvas="winback" data-by="grid">`)
	require.Contains(t, body, `data-grid="东湖网格" data-staff="" data-tasks="4" data-not-done="2" data-open="0" class="laggard"`)
	require.Contains(t, body, "<td>50%</td>")

	_, body = r.get("/staff?canvas=winback&by=staff", bearer(viewerToken))
	require.Contains(t, body, `data-staff="lina"`)
	require.Contains(t, body, `data-staff="zhao" data-tasks="2" data-not-done="2" data-open="0" class="laggard"`)
	// Open and overdue tasks one by one: staff member, customer (linked),
	// task, due, age, reminders and escalation; paged.
	require.Contains(t, body, `data-reminders="3" data-escalations="1"`)
	require.Contains(t, body, `<tr data-staff="lina" data-user="u1" data-live="open" >`)
	require.Contains(t, body, `<tr data-staff="zhao" data-user="u2" data-live="not_done" class="laggard">`)
	require.Contains(t, body, `<a href="/users/u2">u2</a>`)
	require.Contains(t, body, "<td>1h30m</td>", "the task's age")
	require.Contains(t, body, "<td>2026-11-30 10:20:00 CST</td>", "escalated at, in the zone")
	next := regexp.MustCompile(`id="next-page" href="([^"]+)"`).FindStringSubmatch(body)
	require.NotNil(t, next)
	_, body = r.get("/staff"+html.UnescapeString(next[1]), bearer(viewerToken))
	require.Contains(t, body, `data-user="u3"`)
	require.NotContains(t, body, `data-user="u1"`)
	require.NotContains(t, body, `id="next-page"`)
	resp, _ = r.get("/staff?canvas=winback&after=zz", bearer(viewerToken))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = r.get("/staff?by=team", bearer(viewerToken))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = r.get("/staff?canvas=nope", bearer(viewerToken))
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestEditorMarksProblemsAtTheirLineAndDeploysForRolesThatMay(t *testing.T) {
	r := newRig(t, false)
	viewer, operator := r.login(viewerToken), r.login(operatorToken)
	_, body := r.get("/editor", withCookie(viewer))
	require.NotContains(t, body, `id="deploy"`, "a viewer may check, not deploy")
	vtok := formTokenRE.FindStringSubmatch(body)[1]
	broken := "id: broken\ntrigger: {manual: {}}\nsteps:\n  - id: hello\n    push: {channel: pigeon, text: hi}\n"
	resp, body := r.post("/editor", url.Values{"form_token": {vtok}, "source": {broken}, "file": {"broken.yaml"}}, withCookie(viewer))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `data-line="5" data-col="21" data-severity="error"`)
	require.Contains(t, body, "pigeon")
	require.Contains(t, body, `data-errors="1"`)
	// Without the form token: refused.
	resp, _ = r.post("/editor", url.Values{"source": {broken}}, withCookie(viewer))
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	// A viewer cannot deploy.
	good := "id: hello\ntrigger: {manual: {}}\nsteps:\n  - id: hi\n    push: {channel: outbox, text: hi}\n"
	resp, _ = r.post("/editor", url.Values{"form_token": {vtok}, "source": {good}, "action": {"deploy"}}, withCookie(viewer))
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, r.fake.deployed)

	_, body = r.get("/editor", withCookie(operator))
	require.Contains(t, body, `id="deploy"`)
	otok := formTokenRE.FindStringSubmatch(body)[1]
	// A canvas with errors is not deployed.
	resp, body = r.post("/editor", url.Values{"form_token": {otok}, "source": {broken}, "action": {"deploy"}}, withCookie(operator))
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	require.Empty(t, r.fake.deployed)
	// A good one is, as the operator, and its flow is drawn.
	resp, body = r.post("/editor", url.Values{"form_token": {otok}, "source": {good}, "action": {"deploy"}}, withCookie(operator))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []string{"hello@otto"}, r.fake.deployed)
	require.Contains(t, body, `id="no-problems"`)
	require.Contains(t, body, `data-canvas="hello"`)
	require.Contains(t, body, `data-step="hi"`)

	// The audience estimate: how many would enter now, ten of the sample.
	resp, body = r.post("/editor", url.Values{"form_token": {vtok}, "source": {good}, "action": {"estimate"}}, withCookie(viewer))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<div id="estimate" data-entering="1234" data-margin="56">`)
	require.Equal(t, 10, strings.Count(body, "data-sample="))
}

// TestStepPageSamplesRecipientsPaged: the step row's link lists who reached
// the step in the newest run — over a real store — 20 at a time, each
// linking to their user page, with their outcome there.
func TestStepPageSamplesRecipientsPaged(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	defer st.Close()
	fake := newFake(t)
	_, err = st.SavePlan(ctx, "winback", fake.plan.Hash, fake.plan.JSON(), "winback.yaml")
	require.NoError(t, err)
	var ids []string
	var patches []store.ProfileUpdate
	for i := 1; i <= 25; i++ {
		ids = append(ids, fmt.Sprintf("u%02d", i))
		patches = append(patches, store.ProfileUpdate{ID: ids[i-1], Patch: []byte(`{}`)})
	}
	_, err = st.UpsertProfiles(ctx, patches)
	require.NoError(t, err)
	byID, err := st.UIDs(ctx, ids)
	require.NoError(t, err)
	var uids []int64
	for _, id := range ids {
		uids = append(uids, byID[id])
	}
	run, err := st.BeginRun(ctx, "huabu-winback-1", "winback", fake.plan.Hash, "schedule")
	require.NoError(t, err)
	key := store.LedgerKey{RunID: run.ID, StepID: "coupon"}
	_, err = st.ClaimDeliveries(ctx, key, "sms", "a", uids, nil)
	require.NoError(t, err)
	var settled []store.Settlement
	for i, u := range uids {
		s := store.Settlement{UID: u, State: store.DeliverySent}
		if i == 0 {
			s = store.Settlement{UID: u, State: store.DeliverySuppressed, Reason: "quiet_hours"}
		}
		settled = append(settled, s)
	}
	require.NoError(t, st.SettleDeliveries(ctx, key, "a", settled))
	require.NoError(t, st.RecordConversions(ctx, run.ID, uids[:1], time.Now()))

	c, err := New(Options{Backend: storeBackend{fakeBackend: fake, st: st}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	mux := http.NewServeMux()
	c.Register(mux)
	get := func(path string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	userRE := regexp.MustCompile(`<tr data-user="([^"]+)" data-outcome="([^"]+)">\s*<td><a href="/users/([^"]+)">`)
	nextRE := regexp.MustCompile(`id="next-page" href="([^"]+)"`)

	code, body := get("/canvases/winback")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `href="/canvases/winback/steps/coupon"`, "the step row links to its sample")

	var seen []string
	path := "/canvases/winback/steps/coupon"
	for page := 0; path != ""; page++ {
		code, body = get(path)
		require.Equal(t, http.StatusOK, code, body)
		rows := userRE.FindAllStringSubmatch(body, -1)
		require.Len(t, rows, []int{20, 5}[page], "page %d", page)
		for _, m := range rows {
			require.Equal(t, m[1], m[3], "each recipient links to /users/{id}")
			seen = append(seen, m[1])
		}
		if page == 0 {
			require.Equal(t, store.DeliverySuppressed, rows[0][2])
			require.Contains(t, body, "quiet_hours")
			require.Contains(t, body, "✓", "the converted user is marked")
		}
		path = ""
		if m := nextRE.FindStringSubmatch(body); m != nil {
			path = "/canvases/winback/steps/coupon" + html.UnescapeString(m[1])
		}
	}
	require.Equal(t, ids, seen, "every recipient once, in user order")

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/canvases/winback/steps/nope", http.StatusNotFound},
		{"/canvases/winback/steps/coupon?after=garbage", http.StatusBadRequest},
		{"/canvases/winback/steps/coupon?run=x", http.StatusBadRequest},
		{"/canvases/winback/steps/wait-3d", http.StatusOK},
	} {
		code, body := get(tc.path)
		require.Equal(t, tc.code, code, "%s: %s", tc.path, body)
	}
}

// TestVersionHistoryShowsYAMLAndDiffs: the canvas page lists deployments
// (who, when, which is current); each shows its YAML; any two are diffed.
func TestVersionHistoryShowsYAMLAndDiffs(t *testing.T) {
	r := newRig(t, false)
	resp, body := r.get("/canvases/winback", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Regexp(t, `<tr data-version="2" data-plan="[0-9a-f]{64}">\s*<td><a href="/canvases/winback/versions/2">v2</a></td><td><code>[0-9a-f]{12}</code> <span class="sub" data-current>`, body)
	require.Contains(t, body, `<tr data-version="1"`)
	require.Contains(t, body, "lina")
	require.Regexp(t, `<option value="1" selected>`, body, "the diff form compares the previous version with the newest")

	resp, body = r.get("/canvases/winback/versions/1", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<span class="line"><span class="no">8</span>    wait: 3d</span>`, "the YAML, numbered")
	require.Contains(t, body, "沉睡客户唤醒")

	resp, body = r.get("/canvases/winback/versions/2", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `href="/canvases/winback/diff?a=1&amp;b=2"`, "a version links to its changes")

	resp, body = r.get("/canvases/winback/diff?a=1&b=2", bearer(viewerToken))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `data-added="1" data-removed="1"`)
	require.Contains(t, body, `data-op="-"><span class="no">8</span><span class="no"></span>-     wait: 3d</span>`)
	require.Contains(t, body, `data-op="&#43;"><span class="no"></span><span class="no">8</span>&#43;     wait: 5d</span>`)

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/canvases/winback/versions/9", http.StatusNotFound},
		{"/canvases/winback/versions/x", http.StatusBadRequest},
		{"/canvases/winback/diff?a=1", http.StatusBadRequest},
		{"/canvases/winback/diff?a=1&b=9", http.StatusNotFound},
		{"/canvases/nope/versions/1", http.StatusNotFound},
	} {
		resp, _ := r.get(tc.path, bearer(viewerToken))
		require.Equal(t, tc.code, resp.StatusCode, tc.path)
	}
	resp, _ = r.get("/canvases/winback/versions/1", nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "strangers go to the login form")
}
