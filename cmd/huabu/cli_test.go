package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// huabu runs the CLI in-process, as a user would from the repository root.
func huabu(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func chdirRepoRoot(t *testing.T) {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.NoError(t, os.Chdir(filepath.Join("..", "..")))
	t.Cleanup(func() { _ = os.Chdir(wd) })
}

func TestValidateExamples(t *testing.T) {
	chdirRepoRoot(t)
	out, errOut, code := huabu(t, "validate", "-c", "examples/huabu.yaml", "examples/canvases")
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out, "a valid canvas prints nothing")

	out, _, code = huabu(t, "validate") // no huabu.yaml here: the built-in example config and canvases
	require.Equal(t, 0, code)
	require.Empty(t, out)
}

func TestValidateFiveMistakes(t *testing.T) {
	chdirRepoRoot(t)
	out, _, code := huabu(t, "validate", "-c", "examples/huabu.yaml", "internal/canvases/testdata/errors/five_mistakes.yaml")
	require.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5, out)
	for _, l := range lines {
		require.Regexp(t, `^internal/canvases/testdata/errors/five_mistakes\.yaml:\d+:\d+: error: `, l)
	}
}

func TestValidateJSON(t *testing.T) {
	chdirRepoRoot(t)
	out, _, code := huabu(t, "validate", "--json", "-c", "examples/huabu.yaml", "internal/canvases/testdata/errors/unreachable.yaml", "examples/canvases")
	require.Equal(t, 1, code)
	var report struct {
		Files, Errors, Warnings int
		Problems                []struct {
			File, Severity, Path, Message string
			Line, Column                  int
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.Equal(t, 9, report.Files)
	require.Equal(t, 1, report.Errors)
	require.Equal(t, 7, report.Problems[0].Line)
	require.Equal(t, 9, report.Problems[0].Column)
}

func TestValidateDuplicateIDsAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	canvas := "id: same\ntrigger: {manual: {}}\nsteps: [{id: done, exit: {}}]\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(canvas), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yml"), []byte(canvas), 0o644))
	out, _, code := huabu(t, "validate", dir)
	require.Equal(t, 1, code)
	require.Contains(t, out, filepath.Join(dir, "b.yml")+`:1:5: error: id: canvas id "same" is also used by `)
}

func TestValidateMissingPath(t *testing.T) {
	_, errOut, code := huabu(t, "validate", "no/such/dir")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no/such/dir: no such file or directory")
}

func TestGraph(t *testing.T) {
	chdirRepoRoot(t)
	out, _, code := huabu(t, "graph", "examples/canvases/winback-dormant.yaml")
	require.Equal(t, 0, code)
	want, err := os.ReadFile("internal/canvases/testdata/graph/winback-dormant.mmd")
	require.NoError(t, err)
	require.Equal(t, string(want), out)

	out, _, code = huabu(t, "graph", "--format", "dot", "examples/canvases/winback-dormant.yaml")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, `digraph "winback-dormant" {`))

	_, errOut, code := huabu(t, "graph", "--format", "png", "examples/canvases/winback-dormant.yaml")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `--format "png": use mermaid or dot`)

	_, errOut, code = huabu(t, "graph", "internal/canvases/testdata/errors/unreachable.yaml")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "never reached")
}

func TestSchema(t *testing.T) {
	chdirRepoRoot(t)
	out, _, code := huabu(t, "schema")
	require.Equal(t, 0, code)
	want, err := os.ReadFile("docs/canvas.schema.json")
	require.NoError(t, err)
	require.Equal(t, string(want), out)
}

func TestUsageErrors(t *testing.T) {
	_, _, code := huabu(t, "validate", "--nope")
	require.Equal(t, 1, code)
	_, _, code = huabu(t, "frobnicate")
	require.Equal(t, 1, code)
	_, errOut, code := huabu(t, "validate", "-c", "does-not-exist.yaml")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "does-not-exist.yaml")
}

// TestConfigErrors: a config's problems come out like a canvas's, every one
// of them, FILE:LINE:COL, whatever the command, and exit 1.
func TestConfigErrors(t *testing.T) {
	chdirRepoRoot(t)
	t.Setenv("HUABU_TEST_BACKLOG", "lots")
	golden, err := os.ReadFile("internal/config/testdata/errors/typos.golden")
	require.NoError(t, err)
	for _, args := range [][]string{
		{"validate", "examples/canvases"},
		{"report", "winback-dormant"},
		{"dev"},
	} {
		out, errOut, code := huabu(t, append(args, "-c", "internal/config/testdata/errors/typos.yaml")...)
		require.Equal(t, 1, code, args)
		require.Empty(t, out)
		require.Equal(t, strings.ReplaceAll(string(golden), "testdata/errors/", "internal/config/testdata/errors/"), errOut, args)
	}
}
