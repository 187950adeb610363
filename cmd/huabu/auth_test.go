package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
)

const (
	testOperatorToken = "op-secret-0123456789abcdef"
	testViewerToken   = "view-secret-0123456789abcdef"
)

// startSecuredApp runs Huabu in-process with two tokens (from the
// environment, as a real config would take them) and a separate admin
// listener; it returns the config path and the app.
func startSecuredApp(t *testing.T) (string, *app.App) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "hello.yaml"), []byte(`id: hello
trigger: {manual: {}}
steps:
  - id: hi
    push: {channel: outbox, text: "hi"}
`), 0o644))
	t.Setenv("TEST_OPERATOR_TOKEN", testOperatorToken)
	t.Setenv("TEST_VIEWER_TOKEN", testViewerToken)
	cfgPath := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`canvases: ./canvases
http:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  write_keys: [test-write-key]
auth:
  tokens:
    - {name: ops-alice, role: operator, token: "${TEST_OPERATOR_TOKEN}"}
    - {name: dash, role: viewer, token: "${TEST_VIEWER_TOKEN}"}
`), 0o644))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	running, err := app.Start(context.Background(), app.Options{Config: cfg, DataDir: filepath.Join(dir, "data"), TemporalPort: 0,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { running.Close() })
	return cfgPath, running
}

// TestCLICarriesToken: with auth.tokens configured, a command that talks to
// the server fails clearly without a token or with a weak one, and works
// with HUABU_TOKEN or --token; the public listener has no admin API.
func TestCLICarriesToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	cfgPath, app := startSecuredApp(t)
	admin := "http://" + app.AdminAddr()
	t.Setenv(TokenEnv, "")

	_, errOut, code := huabu(t, "run", "hello", "-c", cfgPath, "--api", admin)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "bearer token is required")
	require.Contains(t, errOut, "set HUABU_TOKEN or pass --token")

	_, errOut, code = huabu(t, "run", "hello", "-c", cfgPath, "--api", admin, "--token", testViewerToken)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, `token "dash" (role viewer) may not do this`)

	_, errOut, code = huabu(t, "run", "hello", "-c", cfgPath, "--api", admin, "--token", "not-a-real-token-0123456789")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "not one of the server's auth.tokens")

	t.Setenv(TokenEnv, testOperatorToken)
	out, errOut, code := huabu(t, "run", "hello", "--wait", "-c", cfgPath, "--api", admin)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "run 1 completed")
	out, errOut, code = huabu(t, "deploy", "-c", cfgPath, "--api", admin)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "hello")
	out, errOut, code = huabu(t, "audit", "--canvas", "hello", "-c", cfgPath, "--api", admin, "--token", testViewerToken)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^\S+ \S+ +ops-alice +operator +127\.0\.0\.1 +run +hello +[0-9a-f]{12} +\{"users"|"workflow_id"`, out)
	require.Regexp(t, `(?m) +system +- +- +deploy +hello `, out)
	out, errOut, code = huabu(t, "suppress", "add", "u1", "u2", "--channel", "sms", "-c", cfgPath, "--api", admin)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "2 added (0 already on the list)\n", out)
	out, errOut, code = huabu(t, "suppress", "list", "-c", cfgPath, "--api", admin)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^\S+ \S+ +u1 +sms +api +by ops-alice$`, out)
	out, errOut, code = huabu(t, "suppress", "remove", "u1", "--channel", "*", "-c", cfgPath, "--api", admin)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "1 removed\n", out)
	_, errOut, code = huabu(t, "forget", "u2", "-c", cfgPath, "--api", admin)
	require.Equal(t, 1, code, "operators do not delete users")
	require.Contains(t, errOut, "needs the forget permission")
	_, errOut, code = huabu(t, "approve", "hello", "-c", cfgPath, "--api", admin)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `token "ops-alice" (role operator) may not do this: it needs the approve permission`)

	// The public listener carries only /v1, /wecom/callback and /healthz.
	public := "http://" + app.HTTPAddr()
	for path, want := range map[string]int{"/api/v1/canvases": 404, "/metrics": 404, "/healthz": 200} {
		resp, err := http.Get(public + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
	}
	req, _ := http.NewRequest("POST", public+"/v1/track", strings.NewReader(`{"userId":"u1","event":"opened"}`))
	req.SetBasicAuth("test-write-key", "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	resp, err = http.Post(admin+"/v1/track", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 404, resp.StatusCode, "ingestion is not on the admin listener")
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		":8080":          "127.0.0.1:8080",
		"[::]:8081":      "127.0.0.1:8081",
		"10.0.0.2:8080":  "10.0.0.2:8080",
	} {
		require.Equal(t, want, dialable(in), in)
	}
	cfg := &config.Config{HTTP: config.HTTPConfig{Listen: "0.0.0.0:8080", AdminListen: "127.0.0.1:9090"}}
	require.Equal(t, "http://127.0.0.1:9090", newAPIClient(cfg, "", "").base, "the CLI talks to the admin listener")
}
