package main

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// goreleaserModule is the goreleaser the release and CI's snapshot use,
// from the Go module proxy (see .goreleaser.yaml).
const goreleaserModule = "github.com/goreleaser/goreleaser/v2@v2.15.1"

var (
	releaseSnapshot = flag.Bool("release.snapshot", false, "TestReleaseSnapshot: build the release for every target with goreleaser --snapshot (minutes; .ci/run --release)")
	releaseHost     = flag.Bool("release.host", false, "TestReleaseSnapshot: build only this machine's target with goreleaser build --snapshot --single-target (what every .ci/run checks)")
)

type goreleaserConfig struct {
	Version int
	Builds  []struct {
		Main    string
		Binary  string
		Env     []string
		Goos    []string
		Goarch  []string
		Flags   []string
		Ldflags []string
	}
}

// TestReleaseConfig: .goreleaser.yaml builds huabu for linux and darwin on
// amd64 and arm64 without cgo, and what its ldflags set with -X exists.
func TestReleaseConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", ".goreleaser.yaml"))
	require.NoError(t, err)
	var cfg goreleaserConfig
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	require.Equal(t, 2, cfg.Version)
	require.Len(t, cfg.Builds, 1)
	b := cfg.Builds[0]
	require.Equal(t, "./cmd/huabu", b.Main)
	require.Equal(t, "huabu", b.Binary)
	require.Contains(t, b.Env, "CGO_ENABLED=0", "pure Go: every target cross-compiles")
	require.ElementsMatch(t, []string{"linux", "darwin"}, b.Goos)
	require.ElementsMatch(t, []string{"amd64", "arm64"}, b.Goarch)
	require.Contains(t, b.Flags, "-trimpath")

	// -X only sets string variables that exist; a renamed one would be
	// silently ignored by the linker.
	vars := packageStringVars(t, ".")
	ldflags := strings.Join(b.Ldflags, " ")
	require.Contains(t, ldflags, "-s -w")
	xs := regexp.MustCompile(`-X main\.(\w+)=`).FindAllStringSubmatch(ldflags, -1)
	require.Len(t, xs, 3)
	for _, x := range xs {
		require.Contains(t, vars, x[1], "-X main.%s names no string variable of package main", x[1])
	}
}

// packageStringVars lists the package-level variables of the package in
// dir that are declared as strings (var x = "" or var x string).
func packageStringVars(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					isString := false
					if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
						isString = true
					}
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							isString = true
						}
					}
					if isString {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	return names
}

// TestReleaseSnapshot: goreleaser builds every target from a fresh copy of
// the repository, and the binary for this machine says its version. With
// -release.host it builds this machine's target only (goreleaser build
// --single-target: the same config, flags and version stamping, one
// compile instead of four), which every CI run does; -release.snapshot
// builds and archives all four (.ci/run --release).
func TestReleaseSnapshot(t *testing.T) {
	if !*releaseSnapshot && !*releaseHost {
		t.Skip("builds 160 MB binaries with goreleaser: -release.host (this machine's target, every .ci/run) or -release.snapshot (all four, .ci/run --release)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "huabu")
	copyTrackedFiles(t, root, dir)
	// goreleaser wants a git repository with a commit, and a remote: without
	// one a snapshot stamps the commit as "none".
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "-A"}, {"remote", "add", "origin", "https://github.com/huabu/huabu.git"},
		{"-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-qm", "snapshot"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
	}
	began := time.Now()
	// goreleaser's own default timeout (1 h) ran out on four cold
	// cross-builds on a busy 2-core machine.
	args := []string{"run", goreleaserModule, "release", "--snapshot", "--clean", "--timeout", "3h"}
	if !*releaseSnapshot {
		args = []string{"run", goreleaserModule, "build", "--snapshot", "--single-target", "--clean", "--timeout", "1h"}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("goreleaser %s: %.0fs", strings.Join(args[2:], " "), time.Since(began).Seconds())

	if *releaseSnapshot {
		archives, err := filepath.Glob(filepath.Join(dir, "dist", "huabu_*.tar.gz"))
		require.NoError(t, err)
		var targets []string
		for _, a := range archives {
			info, err := os.Stat(a)
			require.NoError(t, err)
			t.Logf("%s: %.1f MB", filepath.Base(a), float64(info.Size())/1e6)
			m := regexp.MustCompile(`_(linux|darwin)_(amd64|arm64)\.tar\.gz$`).FindStringSubmatch(a)
			require.NotNil(t, m, a)
			targets = append(targets, m[1]+"/"+m[2])
		}
		slices.Sort(targets)
		require.Equal(t, []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"}, targets)
	}

	bins, err := filepath.Glob(filepath.Join(dir, "dist", "huabu_"+runtime.GOOS+"_"+runtime.GOARCH+"*", "huabu"))
	require.NoError(t, err)
	require.Len(t, bins, 1)
	info, err := os.Stat(bins[0])
	require.NoError(t, err)
	t.Logf("%s/%s binary: %.1f MB", runtime.GOOS, runtime.GOARCH, float64(info.Size())/1e6)
	version, err := exec.Command(bins[0], "version").CombinedOutput()
	require.NoError(t, err, "%s", version)
	require.Regexp(t, `^huabu \S+-snapshot \([0-9a-f]{40}, `, string(version))
}
