package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
)

// testApp is Huabu running in-process for CLI tests: the CLI talks to it
// over HTTP as it would to `huabu dev`.
type testApp struct {
	*app.App
	dir, cfgPath string
}

// server is the --server flag pointing the CLI at this app.
func (a *testApp) server() []string {
	return []string{"-c", a.cfgPath, "--server", "http://" + a.HTTPAddr()}
}

// startTestApp runs Huabu with the given canvases (file name → YAML) and
// config text appended to a small base config, with profiles imported.
func startTestApp(t *testing.T, canvasFiles map[string]string, extraConfig string, profiles string) *testApp {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	for name, body := range canvasFiles {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", name), []byte(body), 0o644))
	}
	cfgPath := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`canvases: ./canvases
http: {listen: 127.0.0.1:0}
profile:
  attributes: {name: string, city: string}
events:
  purchase: {amount: number}
`+extraConfig), 0o644))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	running, err := app.Start(context.Background(), app.Options{Config: cfg, DataDir: filepath.Join(dir, "data"), TemporalPort: 0,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { running.Close() })
	if profiles != "" {
		schema, err := cfg.Schema()
		require.NoError(t, err)
		sum, err := ingest.ImportProfiles(context.Background(), running.Store(), schema, strings.NewReader(profiles), ingest.Options{})
		require.NoError(t, err)
		require.Empty(t, sum.Rejected)
	}
	return &testApp{App: running, dir: dir, cfgPath: cfgPath}
}
