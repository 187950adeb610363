package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
)

// Backend is what the console reads and drives; app.App implements it.
type Backend interface {
	Canvases(ctx context.Context) ([]server.CanvasInfo, error)
	Report(ctx context.Context, canvasID string, runID int64) (*reports.Report, error)
	Runs(ctx context.Context, canvasID string, limit int) ([]server.RunInfo, error)
	RunStatus(ctx context.Context, id string) (server.RunStatus, error)
	server.Controller
	// CanvasPlan is a version of a deployed (or retired) canvas: the
	// current one for plan "", else the one whose hash starts with plan.
	CanvasPlan(ctx context.Context, canvasID, plan string) (*canvases.Plan, error)
	UserReader
	StaffReport(ctx context.Context, canvasID string, runID int64, by string) (*reports.StaffReport, error)
	Editor
	StepSampler
	VersionReader
	StaffLister
}

// Options configure New.
type Options struct {
	Backend Backend
	// Auth is the admin API's authenticator: the console lets in whom it
	// lets in. Nil has no tokens (loopback clients only).
	Auth *auth.Authenticator
	Log  *slog.Logger
	// Zone shows times (the config's timezone); nil is UTC.
	Zone *time.Location
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Console serves the pages.
type Console struct {
	b     Backend
	authn *auth.Authenticator
	log   *slog.Logger
	zone  *time.Location
	now   func() time.Time
	pages map[string]*template.Template
	// localKey signs form tokens when no tokens are configured (loopback
	// clients have no session to bind them to).
	localKey []byte
	origin   *http.CrossOriginProtection
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// SessionCookie is the name of the console's session cookie.
const SessionCookie = "huabu_session"

// langCookie remembers the language switch.
const langCookie = "huabu_lang"

// formField is the name of the anti-CSRF field of every form.
const formField = "form_token"

// New builds the console.
func New(o Options) (*Console, error) {
	if o.Backend == nil {
		return nil, errors.New("console: no backend")
	}
	c := &Console{b: o.Backend, authn: o.Auth, log: o.Log, zone: o.Zone, now: o.Now, pages: map[string]*template.Template{},
		origin: http.NewCrossOriginProtection()}
	if c.authn == nil {
		c.authn, _ = auth.New(nil)
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.zone == nil {
		c.zone = time.UTC
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.localKey = make([]byte, 32)
	if _, err := rand.Read(c.localKey); err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(c.funcs()).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		c.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	return c, nil
}

// Mux is where Register adds the console's routes (server.Handler).
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// Register adds the console's routes. Paths are the contract's: / lists
// canvases, /canvases/{id} draws one, /runs/{id} follows a run.
func (c *Console) Register(m Mux) {
	m.Handle("GET /{$}", c.guard(auth.Read, c.canvasesPage))
	m.Handle("GET /canvases", c.guard(auth.Read, c.canvasesPage))
	m.Handle("GET /canvases/{id}", c.guard(auth.Read, c.canvasPage))
	m.Handle("GET /canvases/{id}/steps/{step}", c.guard(auth.Read, c.stepPage))
	m.Handle("GET /canvases/{id}/versions/{n}", c.guard(auth.Read, c.versionPage))
	m.Handle("GET /canvases/{id}/diff", c.guard(auth.Read, c.diffPage))
	m.Handle("GET /runs/{id}", c.guard(auth.Read, c.runPage))
	m.Handle("GET /staff", c.guard(auth.Read, c.staffPage))
	m.Handle("GET /editor", c.guard(auth.Read, c.editorPage))
	m.Handle("POST /editor", c.guard(auth.Read, c.editorCheck))
	m.Handle("GET /users", c.guard(auth.Read, c.usersPage))
	m.Handle("GET /users/{id}", c.guard(auth.Read, c.userPage))
	for _, action := range []string{"pause", "resume", "stop"} {
		m.Handle("POST /canvases/{id}/"+action, c.guard(auth.Control, c.control(action)))
	}
	m.Handle("GET /login", http.HandlerFunc(c.loginPage))
	m.Handle("POST /login", http.HandlerFunc(c.login))
	m.Handle("POST /logout", http.HandlerFunc(c.logout))
	assets, _ := fs.Sub(assetFS, "assets")
	m.Handle("GET /assets/", http.StripPrefix("/assets/", cacheFor(time.Hour, http.FileServerFS(assets))))
}

// view is what every page's template gets.
type view struct {
	Title  string
	Lang   string
	Actor  auth.Actor
	Form   string // the anti-CSRF token for forms
	Path   string
	Local  bool // no tokens: loopback clients, no login
	Bearer bool // the request came with a bearer token
	Data   any
}

// Can reports whether the viewer's role grants a permission ("control").
func (v *view) Can(p string) bool { return v.Actor.Role.Can(auth.Permission(p)) }

// visitor is who asks, and how they proved it.
type visitor struct {
	actor  auth.Actor
	form   string // the form token their forms must carry ("" for bearer)
	bearer bool
}

// errLoginNeeded: a browser without a session, sent to the login form.
var errLoginNeeded = errors.New("log in first")

// who authenticates a request: a bearer token (scripts, tests), the
// loopback rule when no tokens are configured, else the session cookie.
func (c *Console) who(r *http.Request) (visitor, error) {
	if r.Header.Get("Authorization") != "" || c.authn.Open() {
		a, err := c.authn.Authenticate(r)
		if err != nil {
			return visitor{actor: a}, err
		}
		v := visitor{actor: a, bearer: !c.authn.Open()}
		if c.authn.Open() {
			v.form = sign(c.localKey, "local")
		}
		return v, nil
	}
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" {
		return visitor{}, errLoginNeeded
	}
	a, err := c.authn.Session(r, ck.Value, c.now())
	if err != nil {
		return visitor{actor: a}, errLoginNeeded
	}
	return visitor{actor: a, form: c.authn.FormToken(ck.Value)}, nil
}

type pageFunc func(w http.ResponseWriter, r *http.Request, v *view)

// guard lets in who may: a stranger's page view goes to the login form
// (401 with a bearer token that is not valid), a role without perm gets
// 403, and a POST without the visitor's form token or from another
// origin is refused.
func (c *Console) guard(perm auth.Permission, next pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vis, err := c.who(r)
		switch {
		case errors.Is(err, auth.ErrNotLoopback):
			c.fail(w, r, http.StatusForbidden, err.Error())
			return
		case errors.Is(err, errLoginNeeded) && r.Method == http.MethodGet:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		case err != nil:
			c.log.Warn("console: refused", "reason", err.Error(), "method", r.Method, "path", r.URL.Path, "remote", vis.actor.Remote)
			w.Header().Set("WWW-Authenticate", `Bearer realm="huabu"`)
			c.fail(w, r, http.StatusUnauthorized, err.Error())
			return
		}
		if !vis.actor.Role.Can(perm) {
			c.log.Warn("console: forbidden", "token", vis.actor.Name, "role", vis.actor.Role, "needs", perm, "path", r.URL.Path)
			c.fail(w, r, http.StatusForbidden, fmt.Sprintf("token %q (role %s) may not do this: it needs the %s permission", vis.actor.Name, vis.actor.Role, perm))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !vis.bearer {
			if err := c.origin.Check(r); err != nil {
				c.fail(w, r, http.StatusForbidden, "refused: a request from another site")
				return
			}
			if !sameToken(r.PostFormValue(formField), vis.form) {
				c.fail(w, r, http.StatusForbidden, "refused: the form token is missing or stale; reload the page and try again")
				return
			}
		}
		r = r.WithContext(auth.WithActor(r.Context(), vis.actor))
		next(w, r, &view{Lang: c.lang(w, r), Actor: vis.actor, Form: vis.form, Path: r.URL.Path, Local: c.authn.Open(), Bearer: vis.bearer})
	})
}

func sameToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func sign(key []byte, data string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// loginPage shows the token form.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	v := &view{Lang: c.lang(w, r), Path: r.URL.Path, Local: c.authn.Open(), Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}}
	c.render(w, http.StatusOK, "login", v)
}

type loginData struct {
	Next  string
	Error string
}

// login checks the typed token and sets the session cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := c.origin.Check(r); err != nil {
		c.fail(w, r, http.StatusForbidden, "refused: a request from another site")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if c.authn.Open() {
		http.Redirect(w, r, next, http.StatusSeeOther) // loopback needs no login
		return
	}
	a, err := c.authn.Login(r, r.PostFormValue("token"))
	if err != nil {
		c.log.Warn("console: login refused", "remote", a.Remote)
		v := &view{Lang: c.lang(w, r), Path: "/login", Data: loginData{Next: next, Error: tr(c.lang(w, r), "That token is not valid.")}}
		c.render(w, http.StatusUnauthorized, "login", v)
		return
	}
	expires := c.now().Add(auth.SessionTTL)
	value, err := c.authn.NewSession(a.Name, expires)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "internal error")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: value, Path: "/", Expires: expires, MaxAge: int(auth.SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isTLS(r)})
	c.log.Info("console: logged in", "token", a.Name, "role", a.Role, "remote", a.Remote)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout clears the session cookie (sessions end on their own after
// SessionTTL, or at once for every browser when the token is rotated).
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if err := c.origin.Check(r); err != nil {
		c.fail(w, r, http.StatusForbidden, "refused: a request from another site")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isTLS(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func isTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// safeNext keeps a redirect after login on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

// render executes a page into a buffer first, so a template error is a
// clean 500, not half a page.
func (c *Console) render(w http.ResponseWriter, code int, name string, v *view) {
	t := c.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail answers with an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	lang := c.lang(w, r)
	c.render(w, code, "error", &view{Title: http.StatusText(code), Lang: lang, Path: r.URL.Path, Local: c.authn.Open(), Data: errorData{Code: code, Message: msg}})
}

type errorData struct {
	Code    int
	Message string
}

// failErr answers a Backend error.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, server.ErrNotFound), errors.Is(err, reports.ErrNoCanvas), strings.Contains(strings.ToLower(err.Error()), "not found"):
		c.fail(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, server.ErrConflict):
		c.fail(w, r, http.StatusConflict, err.Error())
	case errors.Is(err, server.ErrForbidden):
		c.fail(w, r, http.StatusForbidden, err.Error())
	case errors.Is(err, server.ErrInvalid):
		c.fail(w, r, http.StatusBadRequest, err.Error())
	default:
		c.log.Error("console error", "path", r.URL.Path, "err", err)
		c.fail(w, r, http.StatusInternalServerError, "internal error")
	}
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(d/time.Second)))
		h.ServeHTTP(w, r)
	})
}
