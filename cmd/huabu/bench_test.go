package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBenchBroadcastReportsTimeToFirstMessage runs `huabu bench broadcast`
// as a user does (the provider fake in its own process) at a small N: every
// user is sent to, and the time to first message it reports lies inside the
// broadcast's wall time, the run's start after the trigger.
func TestBenchBroadcastReportsTimeToFirstMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	cmd := exec.Command(os.Args[0], "bench", "broadcast", "--users", "2500", "--per-user", "0")
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

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
