package canvases_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
)

func exampleCompiler(t testing.TB) *canvases.Compiler {
	t.Helper()
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse("huabu.yaml", "", src)
	require.NoError(t, err)
	c, err := cfg.Compiler()
	require.NoError(t, err)
	return c
}

// TestExamplesValidate: every example canvas is clean under the example config.
func TestExamplesValidate(t *testing.T) {
	c := exampleCompiler(t)
	files, problems, err := c.CompileAll(canvases.FS{FS: examples.FS}, []string{"canvases"})
	require.NoError(t, err)
	require.Empty(t, problems, problems.Error())
	require.GreaterOrEqual(t, len(files), 6)
	for _, f := range files {
		require.NotNil(t, f.Plan, f.Path)
	}
}

// TestGraphsGolden draws every example in both formats.
func TestGraphsGolden(t *testing.T) {
	c := exampleCompiler(t)
	files, _, err := c.CompileAll(canvases.FS{FS: examples.FS}, []string{"canvases"})
	require.NoError(t, err)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f.Path), ".yaml")
		t.Run(name, func(t *testing.T) {
			golden(t, filepath.Join("testdata", "graph", name+".mmd"), f.Plan.Mermaid())
			golden(t, filepath.Join("testdata", "graph", name+".dot"), f.Plan.Dot())
		})
	}
}

// TestGeneratedDocs keeps docs/canvas.md and docs/canvas.schema.json in step
// with the spec they are generated from.
func TestGeneratedDocs(t *testing.T) {
	golden(t, filepath.Join("..", "..", "docs", "canvas.md"), canvases.Reference())
	golden(t, filepath.Join("..", "..", "docs", "canvas.schema.json"), string(canvases.JSONSchema()))
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if updateGolden() {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing generated file; run go test ./internal/canvases -update")
	require.Equal(t, string(want), got, "%s is stale; run go test ./internal/canvases -update and review the diff", path)
}

func updateGolden() bool {
	f := canvases.FlagLookup("update")
	return f != nil && f.Value.String() == "true"
}

var _ fs.FS = examples.FS
