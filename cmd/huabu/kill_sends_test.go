package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/huabu/huabu/internal/channels/fakes"
)

var killUsers = flag.Int("kill.users", 10000, "users in TestKillMidSend (the issue's case is 100000; see README)")

// waves counts, per push of the member-day canvas, how often each alias got
// it at the JPush fake (the texts end in the wave's name).
func waves(f *fakes.JPush) map[string]map[string]int {
	out := map[string]map[string]int{"第一波": {}, "第二波": {}}
	for _, p := range f.Pushes() {
		var body struct {
			Notification struct {
				Alert string `json:"alert"`
			} `json:"notification"`
		}
		_ = json.Unmarshal(p.Body, &body)
		for wave, got := range out {
			if strings.HasSuffix(body.Notification.Alert, wave) {
				for _, t := range p.Targets {
					got[t]++
				}
			}
		}
	}
	return out
}

func runStatus(t *testing.T, api, workflowID string) (status string, active int, waiting bool) {
	resp, err := http.Get(api + "/api/v1/runs/" + workflowID)
	if err != nil {
		return "", 0, false
	}
	defer resp.Body.Close()
	var s struct {
		Status  string          `json:"status"`
		Active  int             `json:"active"`
		Waiting json.RawMessage `json:"waiting"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return s.Status, s.Active, len(s.Waiting) > 0 && string(s.Waiting) != "null"
}

// TestKillMidSend: `huabu dev` is SIGKILLed three times during a canvas of
// two personalised pushes and a wait — in the middle of the first push, in
// the wait, in the middle of the second push — and started again each time,
// with JPush (a fake that honours cids as JPush does) as the push provider.
// Every user gets each push exactly once, and the report's sent equals what
// JPush pushed. By default 10,000 users; -kill.users 100000 is the issue's
// case (README).
func TestKillMidSend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal four times")
	}
	t.Parallel() // mostly waiting for Temporal to time out the dead worker's activities
	users := *killUsers
	fake := fakes.NewJPush("killapp", "secret")
	defer fake.Close()
	fake.KeepRequests = false

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfgPath := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
canvases: ./canvases
http: {listen: "127.0.0.1:0"}
profile: {attributes: {name: string}}
channels:
  push: {provider: jpush, base_url: "%s", app_key: killapp, master_secret: secret}
`, fake.URL())), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "member-day.yaml"), []byte(`
id: member-day
trigger: {manual: {}}
steps:
  - id: first
    push: {channel: push, text: "{{ .user.name }}，会员日开始了：第一波"}
  - id: pause
    wait: 10s
  - id: second
    push: {channel: push, text: "{{ .user.name }}，会员日还剩一天：第二波"}
`), 0o644))
	profiles := filepath.Join(dir, "profiles.jsonl")
	pf, err := os.Create(profiles)
	require.NoError(t, err)
	w := bufio.NewWriter(pf)
	for i := 0; i < users; i++ {
		fmt.Fprintf(w, `{"userId":"m%06d","traits":{"name":"会员%d","push_alias":"alias%06d"}}`+"\n", i, i, i)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, pf.Close())

	start := time.Now()
	dev := startDev(t, dir, cfgPath)
	out, errOut, code := huabu(t, "import", "profiles", profiles, "-c", cfgPath, "--data", data)
	require.Equal(t, 0, code, out+errOut)
	out, errOut, code = huabu(t, "run", "member-day", "--yes", "-c", cfgPath, "--data", data, "--api", dev.api)
	require.Equal(t, 0, code, out+errOut)
	workflowID := strings.Fields(out)[1]
	pushed := func(wave string) int { return len(waves(fake)[wave]) }
	restart := func(why string) {
		dev.kill()
		t.Logf("%s: killed at %s (first %d, second %d pushed)", why, time.Since(start).Round(time.Millisecond), pushed("第一波"), pushed("第二波"))
		dev = startDev(t, dir, cfgPath)
	}

	// 1. In the middle of the first push.
	require.Eventually(t, func() bool { return pushed("第一波") >= users/3 }, 2*time.Minute, 2*time.Millisecond)
	require.Less(t, pushed("第一波"), users, "the kill must land mid-send")
	restart("mid first push")

	// 2. In the wait: every cohort asleep, nothing of the second push out.
	require.Eventually(t, func() bool {
		_, active, waiting := runStatus(t, dev.api, workflowID)
		return active == 0 && waiting
	}, 3*time.Minute, 20*time.Millisecond, "the run never reached the wait:\n%s", dev.logs)
	require.Zero(t, pushed("第二波"))
	restart("in the wait")

	// 3. In the middle of the second push.
	require.Eventually(t, func() bool { return pushed("第二波") >= users/3 }, 2*time.Minute, 2*time.Millisecond)
	require.Less(t, pushed("第二波"), users, "the kill must land mid-send")
	restart("mid second push")

	require.Eventually(t, func() bool {
		status, _, _ := runStatus(t, dev.api, workflowID)
		return status == "Completed"
	}, 4*time.Minute, 100*time.Millisecond, "the run did not finish:\n%s", dev.logs)
	t.Logf("%d users, 3 kills: done in %s", users, time.Since(start).Round(time.Millisecond))
	// The dead worker's sends were handed on after their heartbeat timeout,
	// and nothing waited out a start-to-close timeout.
	retries := dev.activityRetries([]string{workflowID})
	t.Logf("activity attempts after a timeout, by type: %v", retries)
	require.Positive(t, retries[enumspb.TIMEOUT_TYPE_HEARTBEAT], "the mid-send kills left sends to time out")
	require.Zero(t, retries[enumspb.TIMEOUT_TYPE_START_TO_CLOSE])

	got := waves(fake)
	for _, wave := range []string{"第一波", "第二波"} {
		require.Len(t, got[wave], users, "%s: users reached", wave)
		for alias, n := range got[wave] {
			if n != 1 {
				require.Equal(t, 1, n, "%s: %s got it %d times", wave, alias, n)
			}
		}
	}
	out, errOut, code = huabu(t, "report", "member-day", "--json", "-c", cfgPath, "--data", data, "--api", dev.api)
	require.Equal(t, 0, code, out+errOut)
	var rep struct {
		Steps []struct {
			Step    string `json:"step"`
			Sent    int    `json:"sent"`
			Unknown int    `json:"unknown"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	sent := map[string]int{}
	for _, s := range rep.Steps {
		sent[s.Step] = s.Sent
		require.Zero(t, s.Unknown, "step %s: unknown deliveries", s.Step)
	}
	require.Equal(t, len(got["第一波"]), sent["first"], "the report's sent is what JPush pushed")
	require.Equal(t, len(got["第二波"]), sent["second"])
}
