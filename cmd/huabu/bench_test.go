package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store/storetest"
)

// TestBenchBroadcastReportsTimeToFirstMessage runs `huabu bench broadcast`
// as a user does (the provider fake in its own process) at a small N: every
// user is sent to, and the time to first message it reports lies inside the
// broadcast's wall time, the run's start after the trigger.
func TestBenchBroadcastReportsTimeToFirstMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	block := filepath.Join(t.TempDir(), "broadcast.block")
	cmd := exec.Command(os.Args[0], "bench", "broadcast", "--users", "2500", "--per-user", "0", "--blockprofile", block)
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	profile, err := os.ReadFile(block)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(profile, []byte{0x1f, 0x8b}), "--blockprofile writes a gzipped pprof profile")

	wall := regexp.MustCompile(`cohort broadcast: 2500 recipients in ([0-9.]+) s wall`).FindSubmatch(out)
	require.NotNil(t, wall, "%s", out)
	first := regexp.MustCompile(`time to first message: (-?\d+) ms from the trigger \((-?\d+) ms from the run's start\)`).FindSubmatch(out)
	require.NotNil(t, first, "%s", out)
	wallMS, _ := strconv.ParseFloat(string(wall[1]), 64)
	fromTrigger, _ := strconv.Atoi(string(first[1]))
	fromStart, _ := strconv.Atoi(string(first[2]))
	require.Positive(t, fromStart, "the first push comes after the run began")
	require.LessOrEqual(t, fromStart, fromTrigger, "the run began after the trigger")
	require.LessOrEqual(t, float64(fromTrigger), wallMS*1000, "the first push comes before the broadcast ends")
}

// TestBenchEventsFindsEveryMessage runs `huabu bench events` in-process at
// a small rate: every event's message is found in the outbox (the bench
// reads it incrementally, by id) and the latency line counts all of them.
func TestBenchEventsFindsEveryMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	cmd := exec.Command(os.Args[0], "bench", "events", "--rate", "200", "--duration", "2s")
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `event → outbox: p50 \d+ ms, p99 \d+ ms, max \d+ ms; 400/400 messages in the outbox; \d+ runs \(one per entry window\); stored in [1-9]\d* applier transactions`, string(out))
}

// TestBenchBroadcastWithTwoWorkers: `bench broadcast --workers 2` runs two
// workers on one PostgreSQL store and one Temporal server; the send
// reaches every user once (the bench fails otherwise) and the Send
// activities are counted per worker. Without --postgres it is refused: two
// workers need a store they can share.
func TestBenchBroadcastWithTwoWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	cmd := exec.Command(os.Args[0], "bench", "broadcast", "--users", "10", "--per-user", "0", "--workers", "2")
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "2 workers need a store they can share: --postgres")

	dsn := storetest.PostgresDSN(t)
	cmd = exec.Command(os.Args[0], "bench", "broadcast", "--users", "3000", "--per-user", "0", "--workers", "2", "--postgres", dsn)
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	sends := regexp.MustCompile(`cohort broadcast \(2 workers, Send activities (\d+) \+ (\d+)\): 3000 recipients in`).FindSubmatch(out)
	require.NotNil(t, sends, "%s", out)
	first, _ := strconv.Atoi(string(sends[1]))
	second, _ := strconv.Atoi(string(sends[2]))
	require.Positive(t, first+second, "%s", out)
}

// TestBenchEventsAgainstARunningWorker: `bench events --target` loads a
// worker that is already running (its own Temporal and store, write keys
// and bearer tokens, the admin API on its own listener), as it would
// scripts/cluster's: it deploys its canvas through the admin API without
// retiring the worker's own, sends the events to /v1/track, and finds every
// event's message through GET /api/v1/outbox. Without a write key, or with a
// viewer's token (which may not deploy), it says what is missing.
func TestBenchEventsAgainstARunningWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	_, running := startSecuredApp(t)
	public, admin := "http://"+running.HTTPAddr(), "http://"+running.AdminAddr()
	t.Setenv("HUABU_WRITE_KEY", "")
	t.Setenv(TokenEnv, "")

	_, errOut, code := huabu(t, "bench", "events", "--target", public, "--server", admin, "--rate", "20", "--duration", "1s")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "--target needs --write-key")

	_, errOut, code = huabu(t, "bench", "events", "--target", public, "--server", admin, "--write-key", "test-write-key",
		"--token", testViewerToken, "--rate", "20", "--duration", "1s")
	require.NotEqual(t, 0, code, errOut)
	require.Contains(t, errOut, "deploying the bench canvas")
	require.Contains(t, errOut, "403")

	out, errOut, code := huabu(t, "bench", "events", "--target", public, "--target", public, "--server", admin,
		"--write-key", "test-write-key", "--token", testOperatorToken, "--rate", "40", "--duration", "1s")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `events: 40 POST /v1/track at 40/s for 1s to 2 worker\(s\)`, out)
	require.Regexp(t, `event → outbox: p50 \d+ ms, p99 \d+ ms, max \d+ ms; 40/40 messages in the outbox`, out)

	canvases, err := running.Store().Canvases(context.Background())
	require.NoError(t, err)
	var ids []string
	for _, c := range canvases {
		if c.Active {
			ids = append(ids, c.ID)
		}
	}
	require.Subset(t, ids, []string{"hello", "bench-events"}, "the bench's deploy adds its canvas and retires nothing")
}
