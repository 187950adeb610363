package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/store"
)

// Backend is what the API drives; app.App implements it.
type Backend interface {
	Ready() bool
	Canvases(ctx context.Context) ([]CanvasInfo, error)
	Report(ctx context.Context, canvasID string, runID int64) (*reports.Report, error)
	StartRun(ctx context.Context, canvasID string, userIDs []string) (RunStarted, error)
	RunStatus(ctx context.Context, workflowID string) (RunStatus, error)
	DeploySources(ctx context.Context, files map[string][]byte) (DeployOutcome, error)
	Approve(ctx context.Context, canvasID, plan string) (Approved, error)
	Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
	Previewer
	Suppress(ctx context.Context, req SuppressRequest) (SuppressOutcome, error)
	Unsuppress(ctx context.Context, req SuppressRequest) (SuppressOutcome, error)
	Suppressions(ctx context.Context, f SuppressionFilter) ([]store.Suppression, error)
	Forget(ctx context.Context, userIDs []string) (store.ForgetResult, error)
	Controller
	Reader
	StaffReporter
}

// CanvasInfo describes a deployed canvas.
type CanvasInfo struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Plan       string     `json:"plan"`
	Trigger    string     `json:"trigger"`
	Schedule   string     `json:"schedule,omitempty"`
	NextRun    *time.Time `json:"next_run,omitempty"`
	Event      string     `json:"event,omitempty"`
	Active     bool       `json:"active"`
	DeployedAt time.Time  `json:"deployed_at"`
	Source     string     `json:"source,omitempty"`
	Author     string     `json:"author,omitempty"`   // who deployed this version
	Approval   string     `json:"approval,omitempty"` // approved | awaiting approval; "" when not required
	Approver   string     `json:"approver,omitempty"`
	State      string     `json:"state,omitempty"` // active | paused | stopped
}

// RunStarted answers POST /api/v1/canvases/{id}/runs.
type RunStarted struct {
	WorkflowID string `json:"workflow_id"`
	Plan       string `json:"plan"`
}

// RunStatus answers GET /api/v1/runs/{id}, by run id or workflow id.
type RunStatus struct {
	WorkflowID string `json:"workflow_id"`
	Status     string `json:"status"` // Running, Completed, Failed, ...
	RunID      int64  `json:"run_id,omitempty"`
	Canvas     string `json:"canvas,omitempty"`
	Stats      any    `json:"stats,omitempty"`
	// For running runs: cohorts at work, and sleeping ones with wake times.
	Active  int `json:"active"`
	Waiting any `json:"waiting,omitempty"`
	// Steps is every step of the run's plan with its counts so far, staff
	// tasks for staff_task steps, and how many users wait to reach it.
	Steps      []StepProgress `json:"steps"`
	StartedAt  *time.Time     `json:"started_at,omitempty"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
}

// DeployOutcome answers POST /api/v1/deploy.
type DeployOutcome struct {
	Canvases []DeployedCanvas  `json:"canvases"`
	Problems canvases.Problems `json:"problems,omitempty"`
}

// DeployedCanvas is one canvas of a deploy.
type DeployedCanvas struct {
	ID       string `json:"id"`
	Plan     string `json:"plan"`
	Changed  bool   `json:"changed"`
	Schedule string `json:"schedule,omitempty"`
	Approval string `json:"approval,omitempty"` // approved | awaiting approval; "" when not required
}

// Approved answers POST /api/v1/canvases/{id}/approve.
type Approved struct {
	Canvas     string    `json:"canvas"`
	Plan       string    `json:"plan"`
	Author     string    `json:"author,omitempty"`
	Approver   string    `json:"approver"`
	ApprovedAt time.Time `json:"approved_at"`
	// Current: the approved version is the one deployed now.
	Current bool `json:"current"`
}

// Errors a Backend returns for the caller's mistakes.
var (
	ErrInvalid   = errors.New("invalid input")
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("not now")   // 409: the canvas's state forbids it (awaiting approval, stopped ...)
	ErrForbidden = errors.New("forbidden") // 403: this actor may not, whatever the role (approving one's own version)
)

// Handler serves the API.
type Handler struct {
	b     Backend
	log   *slog.Logger
	authn *auth.Authenticator
	mux   *http.ServeMux
	reg   *prometheus.Registry
	req   *prometheus.CounterVec
	// perms maps each admin route pattern to what it needs.
	perms map[string]auth.Permission
}

// New builds the API handler. Admin routes (/api/...) answer only callers
// authn lets in; a nil authn has no tokens, so only loopback clients.
func New(b Backend, log *slog.Logger, authn *auth.Authenticator) *Handler {
	if authn == nil {
		authn, _ = auth.New(nil)
	}
	h := &Handler{b: b, log: log, authn: authn, mux: http.NewServeMux(), reg: prometheus.NewRegistry(), perms: map[string]auth.Permission{}}
	h.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h.req = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "huabu_http_requests_total", Help: "HTTP requests by route and status."}, []string{"route", "code"})
	h.reg.MustRegister(h.req)
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))
	h.HandleAdmin("GET /api/v1/canvases", auth.Read, http.HandlerFunc(h.listCanvases))
	h.HandleAdmin("GET /api/v1/canvases/{id}/report", auth.Read, http.HandlerFunc(h.report))
	h.HandleAdmin("POST /api/v1/canvases/{id}/runs", auth.Run, http.HandlerFunc(h.startRun))
	h.HandleAdmin("GET /api/v1/runs/{workflow}", auth.Read, http.HandlerFunc(h.runStatus))
	h.HandleAdmin("GET /api/v1/runs", auth.Read, http.HandlerFunc(h.runs))
	h.HandleAdmin("GET /api/v1/outbox", auth.Read, http.HandlerFunc(h.outbox))
	h.HandleAdmin("GET /api/v1/status", auth.Read, http.HandlerFunc(h.status))
	h.HandleAdmin("POST /api/v1/deploy", auth.Deploy, http.HandlerFunc(h.deploy))
	h.HandleAdmin("POST /api/v1/canvases/{id}/approve", auth.Approve, http.HandlerFunc(h.approve))
	h.HandleAdmin("GET /api/v1/audit", auth.Read, http.HandlerFunc(h.auditLog))
	h.previewRoutes()
	h.testRoutes()
	h.registerOptOut()
	h.registerControl()
	return h
}

// Registry lets other parts register metrics.
func (h *Handler) Registry() *prometheus.Registry { return h.reg }

// Handle adds a public route (ingestion and the WeCom callback register
// here). Patterns under /api/ must use HandleAdmin.
func (h *Handler) Handle(pattern string, handler http.Handler) {
	if isAdminPath(patternPath(pattern)) {
		panic("server: admin route " + pattern + " registered without a permission; use HandleAdmin")
	}
	h.mux.Handle(pattern, handler)
}

// HandleAdmin adds an admin route that needs perm.
func (h *Handler) HandleAdmin(pattern string, perm auth.Permission, handler http.Handler) {
	h.perms[pattern] = perm
	h.mux.Handle(pattern, handler)
}

// AdminRoutes lists every admin route and the permission it needs.
func (h *Handler) AdminRoutes() map[string]auth.Permission {
	out := make(map[string]auth.Permission, len(h.perms))
	for k, v := range h.perms {
		out[k] = v
	}
	return out
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, code: 200}
	_, route := h.mux.Handler(r)
	h.serve(rec, r, route)
	if route == "" {
		route = "unmatched"
	}
	h.req.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
}

// serve authorizes admin paths before routing them, so an unknown admin
// path answers 401 to a stranger, not 404.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, pattern string) {
	if isAdminPath(r.URL.Path) {
		actor, err := h.authn.Authenticate(r)
		if err != nil {
			h.refuse(w, r, actor, err)
			return
		}
		if perm, ok := h.perms[pattern]; ok && !actor.Role.Can(perm) {
			h.log.Warn("admin API: forbidden", "token", actor.Name, "role", actor.Role, "needs", perm, "method", r.Method, "path", r.URL.Path, "remote", actor.Remote)
			writeError(w, http.StatusForbidden, "Authorization", fmt.Sprintf("token %q (role %s) may not do this: it needs the %s permission", actor.Name, actor.Role, perm))
			return
		}
		r = r.WithContext(auth.WithActor(r.Context(), actor))
	}
	h.mux.ServeHTTP(w, r)
}

// refuse answers a caller that is not let in: 401 without a valid token,
// 403 for a stranger in loopback-only mode. The token itself is never logged.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, actor auth.Actor, err error) {
	h.log.Warn("admin API: refused", "reason", err.Error(), "method", r.Method, "path", r.URL.Path, "remote", actor.Remote)
	if errors.Is(err, auth.ErrNotLoopback) {
		writeError(w, http.StatusForbidden, "", err.Error())
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="huabu"`)
	writeError(w, http.StatusUnauthorized, "Authorization", err.Error())
}

// isAdminPath: the admin API and, later, the console's pages live here.
func isAdminPath(path string) bool { return path == "/api" || strings.HasPrefix(path, "/api/") }

// IsPublicPath reports whether a path is served to the internet when the
// admin API has its own listener: ingestion, the WeCom callback, SMS
// replies, health.
func IsPublicPath(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/wecom/callback" || path == "/sms/replies" || path == "/healthz"
}

// patternPath is the path of a ServeMux pattern ("GET /a/{b}" → "/a/{b}").
func patternPath(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		return p
	}
	return pattern
}

// Public serves only the public paths (IsPublicPath); everything else is
// 404, as if it did not exist.
func (h *Handler) Public() http.Handler { return h.only(IsPublicPath) }

// Admin serves everything but ingestion and the WeCom callback.
func (h *Handler) Admin() http.Handler {
	return h.only(func(p string) bool { return p == "/healthz" || !IsPublicPath(p) })
}

func (h *Handler) only(allowed func(path string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(r.URL.Path) {
			writeError(w, http.StatusNotFound, "", "not found")
			return
		}
		h.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// writeJSON writes a JSON response.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// APIError is the body of every error response.
type APIError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// writeError writes {"error": msg, "field": field}.
func writeError(w http.ResponseWriter, code int, field, msg string) {
	writeJSON(w, code, APIError{Error: msg, Field: field})
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	if !h.b.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, h.healthBody(r, "starting"))
		return
	}
	writeJSON(w, http.StatusOK, h.healthBody(r, "ok"))
}

func (h *Handler) listCanvases(w http.ResponseWriter, r *http.Request) {
	list, err := h.b.Canvases(r.Context())
	if err != nil {
		h.internal(w, err)
		return
	}
	if list == nil {
		list = []CanvasInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"canvases": list})
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request) {
	var runID int64
	if s := r.URL.Query().Get("run"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "run", "run must be a positive run id")
			return
		}
		runID = n
	}
	if by := r.URL.Query().Get("by"); by != "" {
		h.staffReport(w, r, runID, by)
		return
	}
	rep, err := h.b.Report(r.Context(), r.PathValue("id"), runID)
	switch {
	case errors.Is(err, reports.ErrNoCanvas):
		writeError(w, http.StatusNotFound, "id", err.Error())
	case err != nil && strings.Contains(err.Error(), "has no run"):
		writeError(w, http.StatusNotFound, "run", err.Error())
	case err != nil:
		h.internal(w, err)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

// maxBody bounds admin request bodies.
const maxBody = 8 << 20

func (h *Handler) startRun(w http.ResponseWriter, r *http.Request) {
	var body struct {
		UserIDs []string `json:"user_ids"`
	}
	if r.ContentLength != 0 {
		if err := decodeStrict(r.Body, &body); err != nil {
			writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
			return
		}
	}
	for i, id := range body.UserIDs {
		if strings.TrimSpace(id) == "" {
			writeError(w, http.StatusBadRequest, "user_ids["+strconv.Itoa(i)+"]", "user ids must not be empty")
			return
		}
	}
	started, err := h.b.StartRun(r.Context(), r.PathValue("id"), body.UserIDs)
	if err != nil {
		if strings.Contains(err.Error(), "no deployed canvas") {
			writeError(w, http.StatusNotFound, "id", err.Error())
			return
		}
		if errors.Is(err, ErrInvalid) {
			writeError(w, http.StatusBadRequest, "user_ids", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
			return
		}
		h.backendError(w, "id", err)
		return
	}
	writeJSON(w, http.StatusAccepted, started)
}

func (h *Handler) runStatus(w http.ResponseWriter, r *http.Request) {
	st, err := h.b.RunStatus(r.Context(), r.PathValue("workflow"))
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "not found") {
			writeError(w, http.StatusNotFound, "workflow", err.Error())
			return
		}
		h.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *Handler) deploy(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Files map[string]string `json:"files"` // path → canvas YAML
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
		return
	}
	if len(body.Files) == 0 {
		writeError(w, http.StatusBadRequest, "files", "files must name at least one canvas")
		return
	}
	files := make(map[string][]byte, len(body.Files))
	for k, v := range body.Files {
		files[k] = []byte(v)
	}
	out, err := h.b.DeploySources(r.Context(), files)
	switch {
	case errors.Is(err, ErrInvalid):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "canvases have errors; nothing was deployed", "field": "files", "problems": out.Problems})
	case err != nil:
		h.internal(w, err)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// backendError answers a Backend error: the caller's mistakes with their
// status and the backend's message, the rest as 500.
func (h *Handler) backendError(w http.ResponseWriter, field string, err error) {
	if fe := (*FieldError)(nil); errors.As(err, &fe) {
		field = fe.Field
	}
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, field, strings.TrimPrefix(err.Error(), ErrNotFound.Error()+": "))
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, field, strings.TrimPrefix(err.Error(), ErrConflict.Error()+": "))
	case errors.Is(err, ErrForbidden):
		writeError(w, http.StatusForbidden, "Authorization", strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": "))
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, field, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	default:
		h.internal(w, err)
	}
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Plan string `json:"plan"`
	}
	if r.ContentLength != 0 {
		if err := decodeStrict(r.Body, &body); err != nil {
			writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
			return
		}
	}
	if body.Plan != "" && !isHex(body.Plan) {
		writeError(w, http.StatusBadRequest, "plan", "plan must be a plan hash or a prefix of one (hex)")
		return
	}
	out, err := h.b.Approve(r.Context(), r.PathValue("id"), body.Plan)
	if err != nil {
		field := "id"
		if body.Plan != "" && errors.Is(err, ErrNotFound) {
			field = "plan"
		}
		h.backendError(w, field, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// auditLog answers GET /api/v1/audit?canvas=&action=&since=&limit=.
func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request) {
	q := store.AuditQuery{CanvasID: r.URL.Query().Get("canvas"), Action: r.URL.Query().Get("action")}
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := ParseSince(s, time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "since", err.Error())
			return
		}
		q.Since = t
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "limit", "limit must be a number from 1 to 10000")
			return
		}
		q.Limit = n
	}
	entries, err := h.b.Audit(r.Context(), q)
	if err != nil {
		h.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

// ParseSince reads an RFC 3339 time or a duration back from now (24h, 7d).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := canvases.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("since %q is neither an RFC 3339 time nor a duration like 24h or 7d", s)
	}
	return now.Add(-d.Std()), nil
}

func (h *Handler) internal(w http.ResponseWriter, err error) {
	h.log.Error("api error", "err", err)
	writeError(w, http.StatusInternalServerError, "", "internal error")
}

// decodeStrict reads one JSON value, refusing unknown fields and trailing data.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// jsonField names the field a JSON decoding error is about, when it says.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	msg := err.Error()
	if i := strings.Index(msg, "unknown field \""); i >= 0 {
		rest := msg[i+len("unknown field \""):]
		return strings.TrimSuffix(rest[:strings.IndexByte(rest+"\"", '"')], "\"")
	}
	return ""
}
