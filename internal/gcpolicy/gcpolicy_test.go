package gcpolicy

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// restore puts back the collector's settings a test changes.
func restore(t *testing.T) {
	percent := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func noContainer() (int64, bool) { return 0, false }

func TestApply(t *testing.T) {
	t.Run("huabu's percent, no limit outside a container", func(t *testing.T) {
		restore(t)
		debug.SetMemoryLimit(math.MaxInt64)
		p := Apply(env(nil), noContainer)
		require.Equal(t, Policy{Percent: Percent, PercentFrom: "huabu", MemoryLimit: math.MaxInt64, MemoryLimitOf: "none"}, p)
		require.Equal(t, Percent, debug.SetGCPercent(Percent))
		require.Equal(t, "GOGC 200 (huabu), memory limit none (none)", p.String())
	})

	t.Run("a share of the container's limit", func(t *testing.T) {
		restore(t)
		p := Apply(env(nil), func() (int64, bool) { return 1 << 30, true })
		gib := float64(1 << 30)
		require.Equal(t, int64(gib*ContainerShare), p.MemoryLimit)
		require.Equal(t, p.MemoryLimit, debug.SetMemoryLimit(-1))
		require.Equal(t, "GOGC 200 (huabu), memory limit 614 MiB (container)", p.String())
	})

	t.Run("the environment wins", func(t *testing.T) {
		restore(t)
		// Go's runtime applied GOGC=50 and GOMEMLIMIT=256MiB at start.
		debug.SetGCPercent(50)
		debug.SetMemoryLimit(256 << 20)
		p := Apply(env(map[string]string{"GOGC": "50", "GOMEMLIMIT": "256MiB"}), func() (int64, bool) { return 1 << 30, true })
		require.Equal(t, Policy{Percent: 50, PercentFrom: "GOGC", MemoryLimit: 256 << 20, MemoryLimitOf: "GOMEMLIMIT"}, p)
	})
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]int64{"max\n": 0, "536870912\n": 536870912, "9223372036854771712": 0, "": 0, "-1": 0} {
		got, ok := parseLimit(in)
		require.Equal(t, want, got, "%q", in)
		require.Equal(t, want != 0, ok, "%q", in)
	}
}

// cgroupFS writes files under a fake cgroup mount: path → content.
func cgroupFS(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	return root
}

func TestCgroupLimit(t *testing.T) {
	t.Run("v2 under systemd: the unit's MemoryMax, not the root's", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{
			"cgroup.controllers":                      "cpu memory",
			"system.slice/memory.max":                 "max\n",
			"system.slice/huabu.service/memory.max":   "2147483648\n",
			"system.slice/other.service/memory.max":   "1048576\n",
			"system.slice/huabu.service/cgroup.procs": "1\n",
		})
		got, ok := cgroupLimit(root, "0::/system.slice/huabu.service\n")
		require.True(t, ok)
		require.Equal(t, int64(2<<30), got)
	})
	t.Run("v2: a parent's smaller limit holds", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{
			"cgroup.controllers":       "memory",
			"kubepods/memory.max":      "536870912",
			"kubepods/pod1/memory.max": "max",
		})
		got, ok := cgroupLimit(root, "0::/kubepods/pod1\n")
		require.True(t, ok)
		require.Equal(t, int64(512<<20), got)
	})
	t.Run("v2 in a container: its root", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{"cgroup.controllers": "memory", "memory.max": "1073741824"})
		got, ok := cgroupLimit(root, "0::/\n")
		require.True(t, ok)
		require.Equal(t, int64(1<<30), got)
	})
	t.Run("v1 (hybrid): the memory controller's line", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{
			"memory/memory.limit_in_bytes":                 "9223372036854771712",
			"memory/process_api/abc/memory.limit_in_bytes": "805306368",
			"unified/cgroup.procs":                         "",
		})
		got, ok := cgroupLimit(root, "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n")
		require.True(t, ok)
		require.Equal(t, int64(768<<20), got)
	})
	t.Run("no limit anywhere", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{
			"memory/memory.limit_in_bytes":                 "9223372036854771712",
			"memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712",
		})
		_, ok := cgroupLimit(root, "4:memory:/process_api/abc\n0::/\n")
		require.False(t, ok)
		_, ok = cgroupLimit(t.TempDir(), "")
		require.False(t, ok)
	})
}
