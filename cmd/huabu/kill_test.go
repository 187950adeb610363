package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/store"
)

// devProcess is `huabu dev` running as a child process.
type devProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	api  string
	logs *syncBuffer
}

var apiRE = regexp.MustCompile(`API +(http://[0-9.:]+)`)

// syncBuffer is a bytes.Buffer safe for the child's writes and our reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDev runs `huabu dev` on free ports it picks itself (reserving ports
// for a child process races with other tests) and reads its API address
// from the banner.
func startDev(t *testing.T, dir, cfgPath string) *devProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "dev", "-c", cfgPath, "--data", filepath.Join(dir, "data"), "--temporal-port", "0")
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	p := &devProcess{t: t, cmd: cmd, logs: logs}
	require.Eventually(t, func() bool {
		m := apiRE.FindStringSubmatch(logs.String())
		if m == nil {
			return false
		}
		p.api = m[1]
		return true
	}, 60*time.Second, 50*time.Millisecond, "huabu dev printed no API address:\n%s", logs)
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.api + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 60*time.Second, 100*time.Millisecond, "huabu dev did not become healthy:\n%s", logs)
	return p
}

func (p *devProcess) kill() {
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = p.cmd.Process.Wait()
}

// TestKillWhileWaiting: SIGKILL `huabu dev` while a run waits between two
// pushes, start it again, and the run finishes with every message sent
// exactly once.
func TestKillWhileWaiting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal twice")
	}
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfgPath := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
canvases: ./canvases
http: {listen: "127.0.0.1:0"}
profile: {attributes: {name: string}}
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "two-pushes.yaml"), []byte(`
id: two-pushes
trigger: {manual: {}}
steps:
  - id: first
    push: {channel: outbox, text: "{{ .user.name }}，第一条"}
  - id: pause
    wait: 15s
  - id: second
    push: {channel: outbox, text: "{{ .user.name }}，第二条"}
`), 0o644))
	var lines []string
	for i := 0; i < 300; i++ {
		lines = append(lines, fmt.Sprintf(`{"userId":"k%03d","traits":{"name":"客户%d"}}`, i, i))
	}
	profiles := filepath.Join(dir, "profiles.jsonl")
	require.NoError(t, os.WriteFile(profiles, []byte(strings.Join(lines, "\n")), 0o644))

	dev := startDev(t, dir, cfgPath)
	out, errOut, code := huabu(t, "import", "profiles", profiles, "-c", cfgPath, "--data", filepath.Join(dir, "data"))
	require.Equal(t, 0, code, out+errOut)
	out, errOut, code = huabu(t, "run", "two-pushes", "-c", cfgPath, "--data", filepath.Join(dir, "data"), "--api", dev.api)
	require.Equal(t, 0, code, out+errOut)
	workflowID := strings.Fields(out)[1]

	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "data", "huabu.db"))
	require.NoError(t, err)
	defer st.Close()
	countStep := func(step string) int {
		msgs, err := st.Outbox(context.Background(), "two-pushes", 10000)
		require.NoError(t, err)
		n := 0
		for _, m := range msgs {
			if m.StepID == step {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return countStep("first") == 300 }, 30*time.Second, 20*time.Millisecond)
	dev.kill() // mid-wait, without any chance to clean up
	require.Equal(t, 0, countStep("second"), "the kill landed in the wait")
	dev = startDev(t, dir, cfgPath)

	require.Eventually(t, func() bool {
		resp, err := http.Get(dev.api + "/api/v1/runs/" + workflowID)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var s struct{ Status string }
		_ = json.NewDecoder(resp.Body).Decode(&s)
		return s.Status == "Completed"
	}, 90*time.Second, 200*time.Millisecond, "the run did not finish after the restart:\n%s", dev.logs)

	msgs, err := st.Outbox(context.Background(), "two-pushes", 10000)
	require.NoError(t, err)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.StepID+"/"+m.UserID]++
	}
	require.Len(t, msgs, 600, "300 users × 2 pushes")
	for k, n := range seen {
		require.Equal(t, 1, n, "%s delivered %d times", k, n)
	}
	counts, _, err := st.Counts(context.Background(), "two-pushes", 0)
	require.NoError(t, err)
	require.Equal(t, int64(300), counts["first"].Sent)
	require.Equal(t, int64(300), counts["second"].Sent)
	require.Zero(t, counts["second"].Unknown)
}
