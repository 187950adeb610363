package app

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/huabu/huabu/"

// imports reads the import graph of the module's packages from their
// non-test sources: package (path under the module) → what it imports,
// the module's packages by the same kind of path, others in full.
func imports(t *testing.T, root string) map[string][]string {
	t.Helper()
	graph := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "testdata") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(dir)
		for _, spec := range f.Imports {
			p, _ := strconv.Unquote(spec.Path.Value)
			p = strings.TrimPrefix(p, module)
			if !slices.Contains(graph[pkg], p) {
				graph[pkg] = append(graph[pkg], p)
			}
		}
		return nil
	})
	require.NoError(t, err)
	return graph
}

// deps is everything pkg imports, directly or not.
func deps(graph map[string][]string, pkg string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range graph[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	return seen
}

// TestLayers keeps the layers ARCHITECTURE.md draws (issue 14): nothing
// the store uses, and no leaf, knows about channels, activities, workflows
// or triggers; the router reaches runs through its Runs port, not the
// engine or Temporal (ADR 030); the engine does not reach up.
func TestLayers(t *testing.T) {
	graph := imports(t, filepath.Join("..", ".."))
	require.Contains(t, graph, "internal/store", "the import graph was read from the module root")
	upper := []string{"internal/channels", "internal/activities", "internal/workflows", "internal/triggers", "internal/app"}
	for _, tc := range []struct {
		pkg       string
		forbidden []string // packages, or prefixes ending in "/"
	}{
		{"internal/store", upper},
		{"internal/outbound", append(upper, "internal/store")},
		{"internal/canvases", append(upper, "internal/store", "go.temporal.io/")},
		{"internal/auth", append(upper, "internal/store")},
		{"internal/liveness", append(upper, "internal/store")},
		{"internal/sqliteheap", append(upper, "internal/store")},
		{"internal/version", append(upper, "internal/store")},
		{"internal/triggers", []string{"internal/workflows", "internal/activities", "internal/app", "go.temporal.io/"}},
		{"internal/activities", []string{"internal/workflows", "internal/triggers", "internal/app", "internal/ingest"}},
		{"internal/workflows", []string{"internal/triggers", "internal/app", "internal/ingest"}},
		{"internal/channels", []string{"internal/store", "internal/activities", "internal/workflows", "internal/triggers", "internal/app"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			require.Contains(t, graph, tc.pkg)
			var bad []string
			for d := range deps(graph, tc.pkg) {
				for _, f := range tc.forbidden {
					if d == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) || strings.HasPrefix(d, f+"/") {
						bad = append(bad, d)
					}
				}
			}
			slices.Sort(bad)
			require.Empty(t, slices.Compact(bad), "%s imports, directly or not", tc.pkg)
		})
	}
}
