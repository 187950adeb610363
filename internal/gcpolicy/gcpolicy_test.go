package gcpolicy

import (
	"math"
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
