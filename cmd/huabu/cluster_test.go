package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels/fakes"
)

var (
	clusterTest    = flag.Bool("cluster", false, "run TestCluster: scripts/cluster's PostgreSQL and upstream Temporal server (built once into ~/.cache/huabu-cluster: minutes) with huabu workers (README)")
	clusterWorkers = flag.Int("cluster.workers", 3, "huabu workers in TestCluster (more than one needs the PostgreSQL store)")
	clusterStore   = flag.String("cluster.store", "postgres", "TestCluster's huabu store: postgres, or sqlite (one worker)")
	clusterUsers   = flag.Int("cluster.users", 10000, "users in TestCluster's broadcast (the issue's case is 100000)")
	clusterEvents  = flag.Int("cluster.events", 3000, "events TestCluster streams while it kills the router's leader")
)

// clusterWorker is `huabu worker` running as a child process.
type clusterWorker struct {
	t    *testing.T
	cmd  *exec.Cmd
	api  string
	logs *syncBuffer
}

func startClusterWorker(t *testing.T, cfgPath, data string) *clusterWorker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "worker", "-c", cfgPath, "--data", data)
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	w := &clusterWorker{t: t, cmd: cmd, logs: logs}
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
	})
	require.Eventually(t, func() bool {
		m := apiRE.FindStringSubmatch(logs.String())
		if m == nil {
			return false
		}
		w.api = m[1]
		resp, err := http.Get(w.api + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 3*time.Minute, 100*time.Millisecond, "huabu worker did not become healthy:\n%s", logs)
	return w
}

func (w *clusterWorker) kill() {
	require.NoError(w.t, w.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = w.cmd.Process.Wait()
}

// leads reports whether this worker holds the router lease now: its last
// word on the lease was taking it (internal/app/leader.go logs both).
func (w *clusterWorker) leads() bool {
	logs := w.logs.String()
	took := strings.LastIndex(logs, "took the lease")
	lost := max(strings.LastIndex(logs, "lost the lease"), strings.LastIndex(logs, "could not renew the lease"))
	return took >= 0 && took > lost
}

// TestCluster runs Huabu as issue 15 deploys it: scripts/cluster's
// PostgreSQL and the upstream Temporal server (go.temporal.io/server
// cmd/server on PostgreSQL), and -cluster.workers `huabu worker` processes
// on one store and task queue, JPush as the push provider (a fake that
// honours cids as JPush does). A canvas of two pushes and a wait goes to
// -cluster.users users; one worker is SIGKILLed in the middle of the first
// push. Events stream in through every worker while the router's leader is
// SIGKILLed. Every user gets each push exactly once, and every accepted
// event enters exactly one run (its user's welcome push, once).
//
//	go test ./cmd/huabu -run TestCluster -cluster -timeout 30m                             # 3 workers, PostgreSQL store
//	go test ./cmd/huabu -run TestCluster -cluster -cluster.workers 1 -cluster.store sqlite # the Temporal cluster, one worker
func TestCluster(t *testing.T) {
	if !*clusterTest {
		t.Skip("-cluster runs it (minutes: builds the Temporal server once; README)")
	}
	if *clusterStore == "sqlite" && *clusterWorkers != 1 {
		t.Fatal("-cluster.store sqlite is one worker's store: -cluster.workers 1")
	}
	users, events := *clusterUsers, *clusterEvents
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	// The cluster's directory must be reachable by the postgres user.
	base, err := os.MkdirTemp("", "huabu-cluster-test")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o711))
	clusterDir := filepath.Join(base, "cluster")
	script := func(args ...string) string {
		cmd := exec.Command(filepath.Join(root, "scripts", "cluster"), args...)
		cmd.Env = append(os.Environ(), "HUABU_CLUSTER_DIR="+clusterDir)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "scripts/cluster %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	t.Cleanup(func() {
		script("stop")
		os.RemoveAll(base)
	})
	start := time.Now()
	script("start", "-n", "0", "--store", *clusterStore)
	t.Logf("cluster up in %s", time.Since(start).Round(time.Second))
	env := map[string]string{}
	envText, err := os.ReadFile(filepath.Join(clusterDir, "env"))
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`(?m)^(HUABU_CLUSTER_\w+)='?([^'\n]*)'?$`).FindAllStringSubmatch(string(envText), -1) {
		env[m[1]] = m[2]
	}

	fake := fakes.NewJPush("clusterapp", "secret")
	defer fake.Close()
	fake.KeepRequests = false
	dir := filepath.Join(base, "huabu")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfgPath := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
canvases: ./canvases
temporal: {address: "%s", namespace: default, task_queue: huabu}
store: {driver: %s, dsn: "%s"}
http: {listen: "127.0.0.1:0"}
triggers: {window: 400ms}
profile: {attributes: {name: string, kind: string}}
channels:
  push: {provider: jpush, base_url: "%s", app_key: clusterapp, master_secret: secret}
`, env["HUABU_CLUSTER_TEMPORAL"], env["HUABU_CLUSTER_STORE_DRIVER"], env["HUABU_CLUSTER_STORE_DSN"], fake.URL())), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "member-day.yaml"), []byte(`
id: member-day
trigger: {manual: {}}
audience: 'user.kind == "member"'
steps:
  - id: first
    push: {channel: push, text: "{{ .user.name }}，会员日开始了：第一波"}
  - id: pause
    wait: 10s
  - id: second
    push: {channel: push, text: "{{ .user.name }}，会员日还剩一天：第二波"}
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "welcome.yaml"), []byte(`
id: welcome
trigger: {event: {name: app_open}}
entry: {reentry: always}
steps:
  - id: hello
    push: {channel: push, text: "{{ .user.name }}，欢迎回来"}
`), 0o644))
	profiles := filepath.Join(dir, "profiles.jsonl")
	pf, err := os.Create(profiles)
	require.NoError(t, err)
	bw := bufio.NewWriter(pf)
	for i := range users {
		fmt.Fprintf(bw, `{"userId":"m%06d","traits":{"name":"会员%d","kind":"member","push_alias":"alias%06d"}}`+"\n", i, i, i)
	}
	for i := range events {
		fmt.Fprintf(bw, `{"userId":"e%05d","traits":{"name":"访客%d","kind":"visitor","push_alias":"ealias%05d"}}`+"\n", i, i, i)
	}
	require.NoError(t, bw.Flush())
	require.NoError(t, pf.Close())

	workers := make([]*clusterWorker, *clusterWorkers)
	data := func(i int) string { return filepath.Join(dir, fmt.Sprintf("worker-%d", i)) }
	for i := range workers {
		workers[i] = startClusterWorker(t, cfgPath, data(i))
	}
	out, errOut, code := huabu(t, "import", "profiles", profiles, "-c", cfgPath, "--data", data(0))
	require.Equal(t, 0, code, out+errOut)
	out, errOut, code = huabu(t, "run", "member-day", "--yes", "-c", cfgPath, "--api", workers[0].api)
	require.Equal(t, 0, code, out+errOut)
	workflowID := strings.Fields(out)[1]

	// pushes counts, per wave, the pushes each alias got. Incremental: each
	// call decodes only the pushes since the last (before, every 5 ms poll
	// decoded every push so far: with 100,000 users, work for the test
	// process that grew with the run, on the machine the workers share).
	var (
		pushesMu sync.Mutex
		decoded  int
		counts   = map[string]map[string]int{"第一波": {}, "第二波": {}, "欢迎回来": {}}
	)
	decode := func() { // with pushesMu held
		all := fake.Pushes()
		for _, p := range all[decoded:] {
			var body struct {
				Notification struct {
					Alert string `json:"alert"`
				} `json:"notification"`
			}
			_ = json.Unmarshal(p.Body, &body)
			for suffix, m := range counts {
				if strings.HasSuffix(body.Notification.Alert, suffix) {
					for _, a := range p.Targets {
						m[a]++
					}
				}
			}
		}
		decoded = len(all)
	}
	// reached is how many users a wave reached so far.
	reached := func(wave string) int {
		pushesMu.Lock()
		defer pushesMu.Unlock()
		decode()
		return len(counts[wave])
	}
	pushes := func() map[string]map[string]int {
		pushesMu.Lock()
		defer pushesMu.Unlock()
		decode()
		got := make(map[string]map[string]int, len(counts))
		for wave, m := range counts {
			got[wave] = maps.Clone(m)
		}
		return got
	}

	// 1. A worker dies in the middle of the first push (the run's sends are
	// spread over every worker; whichever dies, its pages are handed on
	// after their heartbeat timeout). It comes back.
	// Bounds grow with the cohort: a minute and a half per 10,000 users
	// (3 min at least) for a third of the first push, on a loaded 2-core
	// machine.
	sendBound := max(3*time.Minute, time.Duration(users)*9*time.Millisecond)
	runStarted := time.Now()
	waitFor(t, func() bool { return reached("第一波") >= users/3 }, sendBound, 20*time.Millisecond,
		func() string { return fmt.Sprintf("first push: %d of %d users", reached("第一波"), users) })
	t.Logf("a third of the first push (%d users) %s after the run started", users/3, time.Since(runStarted).Round(time.Millisecond))
	victim := len(workers) - 1
	workers[victim].kill()
	t.Logf("killed worker %d mid first push (%d of %d pushed) at %s", victim, reached("第一波"), users, time.Since(start).Round(time.Millisecond))
	require.Less(t, reached("第一波"), users, "the kill must land mid-send")
	workers[victim] = startClusterWorker(t, cfgPath, data(victim))

	// 2. Events stream in through every worker; the router's leader is
	// killed while they do, and comes back.
	// First a leader: the worker killed above may have held the lease; its
	// successor (or itself, restarted) takes it once it expired.
	leader := -1
	require.Eventually(t, func() bool {
		for i, w := range workers {
			if w.leads() {
				leader = i
			}
		}
		return leader >= 0
	}, 30*time.Second, 50*time.Millisecond, "no worker says it holds the router lease")
	apis := make([]*liveAPI, len(workers))
	for i, w := range workers {
		apis[i] = &liveAPI{url: w.api}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var accepted atomic.Int64
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < events; i += 20 {
			var b strings.Builder
			b.WriteString(`{"batch":[`)
			for j := i; j < min(i+20, events); j++ {
				if j > i {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"type":"track","messageId":"open-%05d","userId":"e%05d","event":"app_open","timestamp":%q}`, j, j, time.Now().UTC().Format(time.RFC3339Nano))
			}
			b.WriteString(`]}`)
			if err := sendUntilAccepted(ctx, apis[(i/20)%len(apis)], []byte(b.String())); err != nil {
				sent <- err
				return
			}
			accepted.Add(int64(min(20, events-i)))
			time.Sleep(20 * time.Millisecond) // ~1,000 events a second
		}
		sent <- nil
	}()
	require.Eventually(t, func() bool { return accepted.Load() >= int64(events/3) }, 2*time.Minute, 5*time.Millisecond)
	workers[leader].kill()
	killedAt := time.Now()
	t.Logf("killed the router's leader, worker %d, with %d of %d events accepted", leader, accepted.Load(), events)
	require.Less(t, accepted.Load(), int64(events), "the leader must die while events stream in")
	if len(workers) > 1 {
		// Another worker takes over within 15 s (lease 10 s, tries every 2 s).
		require.Eventually(t, func() bool {
			for i, w := range workers {
				if i != leader && w.leads() {
					return true
				}
			}
			return false
		}, 15*time.Second, 50*time.Millisecond, "no worker took the router lease within 15 s of the leader's death")
		t.Logf("a new leader within %s", time.Since(killedAt).Round(time.Millisecond))
	}
	workers[leader] = startClusterWorker(t, cfgPath, data(leader))
	apis[leader].set(workers[leader].api)
	require.NoError(t, <-sent)

	// Everything settles: the run completes, every accepted event's user is welcomed.
	waitFor(t, func() bool {
		status, _, _ := runStatus(t, workers[0].api, workflowID)
		return status == "Completed"
	}, 2*sendBound, 200*time.Millisecond, func() string {
		got := pushes()
		return fmt.Sprintf("the run did not finish: first push %d, second %d of %d users", len(got["第一波"]), len(got["第二波"]), users)
	})
	t.Logf("the broadcast run completed %s after it started", time.Since(runStarted).Round(time.Millisecond))
	waitFor(t, func() bool { return reached("欢迎回来") == events }, 3*time.Minute, 200*time.Millisecond,
		func() string { return fmt.Sprintf("welcomed %d of %d users", reached("欢迎回来"), events) })
	t.Logf("%d workers, %d users, %d events, 2 kills: done in %s", len(workers), users, events, time.Since(start).Round(time.Millisecond))
	got := pushes()
	for wave, want := range map[string]int{"第一波": users, "第二波": users, "欢迎回来": events} {
		require.Equal(t, want, len(got[wave]), "%s: users reached", wave)
		for alias, n := range got[wave] {
			if n != 1 {
				require.Equal(t, 1, n, "%s: %s got it %d times", wave, alias, n)
			}
		}
	}
}

// waitFor polls cond until it holds, failing after within with what() —
// the state at the deadline, not at the call.
func waitFor(t *testing.T, cond func() bool, within, every time.Duration, what func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what())
		}
		time.Sleep(every)
	}
}
