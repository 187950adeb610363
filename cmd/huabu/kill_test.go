package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/huabu/huabu/internal/store"
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

var temporalRE = regexp.MustCompile(`Temporal +([0-9.:]+) +namespace +(\S+)`)

// activityRetries reads the histories of the workflows (ids as the store
// records them, "workflow/run") from the running Huabu's Temporal and
// returns, by timeout type, how many activity attempts were started
// because the attempt before them timed out. After a SIGKILL the dead
// worker's activities time out; a retry after a START_TO_CLOSE timeout
// means one waited out its whole start-to-close time, not the short
// heartbeat timeout the live worker's heartbeats allow (internal/liveness).
func (p *devProcess) activityRetries(workflowIDs []string) map[enumspb.TimeoutType]int {
	t := p.t
	t.Helper()
	c := p.temporal()
	defer c.Close()
	out := map[enumspb.TimeoutType]int{}
	for _, id := range workflowIDs {
		wf, run, _ := strings.Cut(id, "/")
		it := c.GetWorkflowHistory(context.Background(), wf, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			started := ev.GetActivityTaskStartedEventAttributes()
			if started == nil || started.GetAttempt() < 2 {
				continue
			}
			if to := started.GetLastFailure().GetTimeoutFailureInfo(); to != nil {
				out[to.GetTimeoutType()]++
			}
		}
	}
	return out
}

// temporal is a client of the process's embedded Temporal.
func (p *devProcess) temporal() client.Client {
	p.t.Helper()
	m := temporalRE.FindStringSubmatch(p.logs.String())
	require.NotNil(p.t, m, "no Temporal address in the banner:\n%s", p.logs)
	c, err := client.Dial(client.Options{HostPort: m[1], Namespace: m[2], Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	require.NoError(p.t, err)
	return c
}

func (p *devProcess) namespace() string { return temporalRE.FindStringSubmatch(p.logs.String())[2] }

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
	// Kill once the first push is settled in the ledger (its outbox rows
	// alone are not: a kill between the two leaves them unknown, and under
	// load it landed there once).
	require.Eventually(t, func() bool {
		counts, _, err := st.Counts(context.Background(), "two-pushes", 0)
		return err == nil && counts["first"] != nil && counts["first"].Sent == 300
	}, 60*time.Second, 20*time.Millisecond)
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
	require.Zero(t, dev.activityRetries([]string{workflowID})[enumspb.TIMEOUT_TYPE_START_TO_CLOSE], "an activity of the dead worker waited out its start-to-close timeout")
}

// TestKillWhileAShortActivityRuns: SIGKILL `huabu dev` while BeginRun — a
// short activity, one store write — is in flight (the test holds the
// store's write lock, so it cannot finish), start it again, and Temporal
// hands BeginRun to the new worker after its heartbeat timeout (20 s; the
// worker heartbeats every activity while it lives), not after its
// one-minute start-to-close timeout as before internal/liveness. Every
// user still gets the message once.
func TestKillWhileAShortActivityRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal twice")
	}
	t.Parallel() // mostly waiting for Temporal to time out the dead worker's activity
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfgPath := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
canvases: ./canvases
http: {listen: "127.0.0.1:0"}
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "hello.yaml"), []byte(`
id: hello
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: outbox, text: 你好}
`), 0o644))
	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, fmt.Sprintf(`{"userId":"s%03d"}`, i))
	}
	profiles := filepath.Join(dir, "profiles.jsonl")
	require.NoError(t, os.WriteFile(profiles, []byte(strings.Join(lines, "\n")), 0o644))
	dev := startDev(t, dir, cfgPath)
	out, errOut, code := huabu(t, "import", "profiles", profiles, "-c", cfgPath, "--data", data)
	require.Equal(t, 0, code, out+errOut)

	// Hold the store's write lock: BeginRun blocks in its first write.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "huabu.db")+"?_pragma=busy_timeout(15000)")
	require.NoError(t, err)
	defer db.Close()
	lock, err := db.Conn(context.Background())
	require.NoError(t, err)
	defer lock.Close()
	_, err = lock.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	require.NoError(t, err)
	locked := true
	unlock := func() {
		if locked {
			_, err := lock.ExecContext(context.Background(), "ROLLBACK")
			require.NoError(t, err)
			locked = false
		}
	}
	defer unlock()
	go func() { // answers once the run is audited, which waits for the lock too
		resp, err := http.Post(dev.api+"/api/v1/canvases/hello/runs", "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
		}
	}()

	c := dev.temporal()
	var workflowID string
	require.Eventually(t, func() bool {
		list, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: dev.namespace()})
		if err != nil || len(list.Executions) == 0 {
			return false
		}
		workflowID = list.Executions[0].Execution.WorkflowId
		desc, err := c.DescribeWorkflowExecution(context.Background(), workflowID, "")
		if err != nil {
			return false
		}
		for _, a := range desc.PendingActivities {
			if a.ActivityType.GetName() == "BeginRun" && a.State == enumspb.PENDING_ACTIVITY_STATE_STARTED {
				return true
			}
		}
		return false
	}, time.Minute, 20*time.Millisecond, "BeginRun never started:\n%s", dev.logs)
	c.Close()
	dev.kill()
	killed := time.Now()
	unlock()
	dev = startDev(t, dir, cfgPath)

	require.Eventually(t, func() bool {
		status, _, _ := runStatus(t, dev.api, workflowID)
		return status == "Completed"
	}, 3*time.Minute, 100*time.Millisecond, "the run did not finish:\n%s", dev.logs)
	t.Logf("killed with BeginRun in flight; the run completed %s after the kill", time.Since(killed).Round(time.Millisecond))
	retries := dev.activityRetries([]string{workflowID})
	t.Logf("activity attempts after a timeout, by type: %v", retries)
	require.Equal(t, 1, retries[enumspb.TIMEOUT_TYPE_HEARTBEAT], "BeginRun of the dead worker timed out by its heartbeat")
	require.Zero(t, retries[enumspb.TIMEOUT_TYPE_START_TO_CLOSE])

	st, err := store.OpenSQLite(context.Background(), filepath.Join(data, "huabu.db"))
	require.NoError(t, err)
	defer st.Close()
	msgs, err := st.Outbox(context.Background(), "hello", 1000)
	require.NoError(t, err)
	require.Len(t, msgs, 50, "every user once")
}
