package server

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/auth"
)

// Tokens of the role tests, one per role.
var roleTokens = map[auth.Role]string{
	auth.Viewer:   "viewer-token-0123456789abcdef",
	auth.Operator: "operator-token-0123456789abcdef",
	auth.Approver: "approver-token-0123456789abcdef",
	auth.Admin:    "admin-token-0123456789abcdef",
}

func authedHandler(t *testing.T, logTo io.Writer) *Handler {
	t.Helper()
	var tokens []auth.Token
	for _, r := range auth.Roles {
		tokens = append(tokens, auth.Token{Name: "t-" + string(r), Role: r, Secret: roleTokens[r]})
	}
	authn, err := auth.New(tokens)
	require.NoError(t, err)
	return New(&backend{ready: true}, slog.New(slog.NewTextHandler(logTo, nil)), authn)
}

// routeRoles is the role × route table: which roles may use each admin
// route. Every admin route must be here, and nothing else.
var routeRoles = map[string][]auth.Role{
	"GET /api/v1/canvases":                 {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"GET /api/v1/canvases/{id}/report":     {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"GET /api/v1/runs/{workflow}":          {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"POST /api/v1/canvases/{id}/runs":      {auth.Operator, auth.Admin},
	"POST /api/v1/deploy":                  {auth.Operator, auth.Admin},
	"POST /api/v1/canvases/{id}/approve":   {auth.Approver, auth.Admin},
	"GET /api/v1/audit":                    {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"GET /api/v1/canvases/{id}/estimate":   {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"POST /api/v1/estimate":                {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"POST /api/v1/preview":                 {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"POST /api/v1/canvases/{id}/test-send": {auth.Operator, auth.Admin},
	"GET /api/v1/suppressions":             {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"POST /api/v1/suppressions":            {auth.Operator, auth.Admin},
	"POST /api/v1/suppressions/remove":     {auth.Operator, auth.Admin},
	"DELETE /api/v1/users/{id}":            {auth.Admin},
	"POST /api/v1/users/forget":            {auth.Admin},
	"POST /api/v1/canvases/{id}/pause":     {auth.Operator, auth.Admin},
	"POST /api/v1/canvases/{id}/resume":    {auth.Operator, auth.Admin},
	"POST /api/v1/canvases/{id}/stop":      {auth.Operator, auth.Admin},
	"GET /api/v1/runs":                     {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"GET /api/v1/outbox":                   {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
	"GET /api/v1/status":                   {auth.Viewer, auth.Operator, auth.Approver, auth.Admin},
}

var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

func TestRoleRouteTable(t *testing.T) {
	h := authedHandler(t, io.Discard)
	var listed, expected []string
	for p := range h.AdminRoutes() {
		listed = append(listed, p)
	}
	for p := range routeRoles {
		expected = append(expected, p)
	}
	sort.Strings(listed)
	sort.Strings(expected)
	require.Equal(t, expected, listed, "every admin route is in the role table")

	for pattern, roles := range routeRoles {
		method, path, _ := strings.Cut(pattern, " ")
		path = pathParam.ReplaceAllString(path, "promo")
		send := func(header string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(method, path, strings.NewReader(`{}`))
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		for _, header := range []string{"", "Bearer ", "Bearer wrong-token-0123456789abcdef", "Basic " + roleTokens[auth.Admin], roleTokens[auth.Admin]} {
			rec := send(header)
			require.Equal(t, http.StatusUnauthorized, rec.Code, "%s with %q", pattern, header)
			require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
			require.JSONEq(t, `"Authorization"`, bodyField(t, rec.Body.Bytes(), "field"))
		}
		for _, role := range auth.Roles {
			rec := send("Bearer " + roleTokens[role])
			allowed := false
			for _, r := range roles {
				allowed = allowed || r == role
			}
			require.Equal(t, allowed, role.Can(h.AdminRoutes()[pattern]))
			if allowed {
				require.NotContains(t, []int{401, 403}, rec.Code, "%s as %s: %s", pattern, role, rec.Body)
			} else {
				require.Equal(t, http.StatusForbidden, rec.Code, "%s as %s", pattern, role)
				require.Contains(t, rec.Body.String(), `"error"`)
				require.Contains(t, rec.Header().Get("Content-Type"), "application/json")
			}
		}
	}
}

func bodyField(t *testing.T, body []byte, field string) string {
	t.Helper()
	m := regexp.MustCompile(`"` + field + `":("[^"]*")`).FindSubmatch(body)
	require.NotNil(t, m, "%s in %s", field, body)
	return string(m[1])
}

func TestUnknownAdminPathNeedsTokenFirst(t *testing.T) {
	h := authedHandler(t, io.Discard)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/secret-things", nil))
	require.Equal(t, http.StatusUnauthorized, rec.Code, "strangers learn nothing about which admin paths exist")
	req := httptest.NewRequest("GET", "/api/v1/secret-things", nil)
	req.Header.Set("Authorization", "Bearer "+roleTokens[auth.Viewer])
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code)
}

func TestTokensAreNeverLogged(t *testing.T) {
	var logs bytes.Buffer
	h := authedHandler(t, &logs)
	for _, tok := range []string{roleTokens[auth.Viewer], "a-wrong-secret-0123456789abcdef"} {
		req := httptest.NewRequest("POST", "/api/v1/deploy", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	require.Contains(t, logs.String(), "t-viewer", "the refusal names the token")
	for _, secret := range append([]string{"a-wrong-secret"}, roleTokens[auth.Viewer]) {
		require.NotContains(t, logs.String(), secret)
	}
}

func TestLoopbackOnlyWithoutTokens(t *testing.T) {
	var logs bytes.Buffer
	h := New(&backend{ready: true}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	for _, c := range []struct {
		remote string
		header string
		code   int
	}{
		{"127.0.0.1:40000", "", 200},
		{"[::1]:40000", "", 200},
		{"10.1.2.3:40000", "", 403},
		{"192.168.1.9:40000", "Bearer anything-at-all-0123456789", 403},
		{"127.0.0.1:40000", "X-Forwarded-For: 203.0.113.7", 403}, // a proxy on this host forwards strangers
	} {
		req := httptest.NewRequest("GET", "/api/v1/canvases", nil)
		req.RemoteAddr = c.remote
		if k, v, ok := strings.Cut(c.header, ": "); ok {
			req.Header.Set(k, v)
		} else if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, c.code, rec.Code, "%s %s", c.remote, c.header)
		if c.code == 403 {
			require.Contains(t, rec.Body.String(), "loopback clients only")
		}
	}
	require.Contains(t, logs.String(), "remote=10.1.2.3")
}

func TestPublicAndAdminListeners(t *testing.T) {
	h := New(&backend{ready: true}, slog.New(slog.DiscardHandler), nil)
	h.Handle("POST /v1/track", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	h.Handle("POST /wecom/callback", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	for _, c := range []struct {
		handler        http.Handler
		method, path   string
		code           int
		listenerByName string
	}{
		{h.Public(), "POST", "/v1/track", 200, "public"},
		{h.Public(), "POST", "/wecom/callback", 200, "public"},
		{h.Public(), "GET", "/healthz", 200, "public"},
		{h.Public(), "GET", "/api/v1/canvases", 404, "public"},
		{h.Public(), "POST", "/api/v1/deploy", 404, "public"},
		{h.Public(), "GET", "/metrics", 404, "public"},
		{h.Admin(), "GET", "/api/v1/canvases", 200, "admin"},
		{h.Admin(), "GET", "/metrics", 200, "admin"},
		{h.Admin(), "GET", "/healthz", 200, "admin"},
		{h.Admin(), "POST", "/v1/track", 404, "admin"},
		{h.Admin(), "POST", "/wecom/callback", 404, "admin"},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		c.handler.ServeHTTP(rec, req)
		require.Equal(t, c.code, rec.Code, "%s listener: %s %s", c.listenerByName, c.method, c.path)
	}
}

func TestAdminRouteWithoutPermissionIsRefusedAtRegistration(t *testing.T) {
	h := New(&backend{}, slog.New(slog.DiscardHandler), nil)
	require.Panics(t, func() { h.Handle("GET /api/v1/anything", http.NotFoundHandler()) })
}
