// Package bench measures Huabu on this machine: a scheduled broadcast with an
// audience filter to N synthetic users through a JPush-compatible provider
// on a local HTTP server (in its own process, so its memory is not counted),
// and the same audience sent through one workflow per user at a small N, to
// report the ratio side by side. `huabu bench broadcast` runs it.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// Options configure a broadcast benchmark.
type Options struct {
	Users   int    // profiles seeded and broadcast to
	PerUser int    // users in the cohort-vs-per-user comparison (0: skip)
	DataDir string // "" = a temporary directory, removed after
	// Postgres is the DSN of an empty PostgreSQL database (or schema) to
	// use as the store instead of SQLite in DataDir.
	Postgres string
	// Workers share the broadcast (default 1): the others run in this
	// process, each with its own data directory and connection pool, on the
	// same PostgreSQL store and the first worker's embedded Temporal server
	// and task queue — as worker processes would. Needs Postgres.
	Workers  int
	Provider string // URL of the JPush-compatible provider (started by the caller)
	// FirstPush, when set, says when the provider accepted its first push
	// (Provider.FirstPush): the time to first message is reported from it.
	FirstPush func(context.Context) (time.Time, error)
	// ProviderCPU, when set, is the provider's CPU time so far
	// (Provider.CPU): the broadcast's share is reported beside Huabu's.
	ProviderCPU func() time.Duration
	Out         io.Writer
	Log         *slog.Logger
}

// Result is what the benchmark measured.
type Result struct {
	Users      int
	SeedTime   time.Duration
	Recipients int64
	Wall       time.Duration
	// FirstMessage is the schedule's trigger → the provider's first push;
	// RunToFirst is the run's start (BeginRun) → the same push.
	FirstMessage, RunToFirst time.Duration
	PeakRSSBytes             int64
	// CPU is this process's user+system time from the trigger to the run's
	// end (Temporal, the store and the sender; the provider runs apart);
	// ProviderCPU the provider's in the same span.
	CPU, ProviderCPU time.Duration
	HistoryEvents    int
	Runs             int
	SmallN           int
	CohortSmall      time.Duration
	PerUserSmall     time.Duration
	PerUserSent      int64
}

const appKey, masterSecret = "bench-app", "bench-secret"

const broadcastCanvas = `
id: bench-broadcast
name: 基准广播
trigger:
  schedule: {cron: "0 10 * * *"}
audience: 'user.city != "" && !("退订" in user.tags) && user.level in ["普通", "银卡", "金卡", "钻石"]'
steps:
  - id: broadcast
    push: {channel: push, title: 会员日, text: 今日全场8折，点击查看, url: "app://member-day"}
`

const smallCanvas = `
id: bench-small
trigger: {manual: {}}
steps:
  - id: broadcast
    push: {channel: push, title: 会员日, text: 今日全场8折，点击查看, url: "app://member-day"}
`

// Broadcast runs the benchmark and prints its lines to opts.Out.
func Broadcast(ctx context.Context, opts Options) (Result, error) {
	res := Result{Users: opts.Users}
	if opts.Workers > 1 && opts.Postgres == "" {
		return res, fmt.Errorf("%d workers need a store they can share: --postgres", opts.Workers)
	}
	if err := refuseStoreInUse(ctx, opts.Postgres); err != nil {
		return res, err
	}
	dir, canvasDir, cleanup, err := benchDirs(opts.DataDir)
	if err != nil {
		return res, err
	}
	defer cleanup()
	if err := os.WriteFile(filepath.Join(canvasDir, "broadcast.yaml"), []byte(broadcastCanvas), 0o644); err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(canvasDir, "small.yaml"), []byte(smallCanvas), 0o644); err != nil {
		return res, err
	}
	cfgText := fmt.Sprintf(`
canvases: ./canvases
http: {disabled: true}
profile: {attributes: {name: string, city: string, level: string}}
channels:
  push: {provider: jpush, base_url: "%s", app_key: %s, master_secret: %s, use_cid: "false", concurrency: "8"}
`, opts.Provider, appKey, masterSecret) + storeConfig(opts.Postgres)
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(cfgText))
	if err != nil {
		return res, err
	}
	running, err := app.Start(ctx, app.Options{Config: cfg, DataDir: filepath.Join(dir, "data"), Logger: opts.Log, NoHTTP: true, MaxConcurrentActivities: 16})
	if err != nil {
		return res, err
	}
	defer running.Close()
	workers := []*app.App{running}
	for w := 1; w < opts.Workers; w++ {
		// The same config, with the first worker's Temporal server.
		cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(cfgText+fmt.Sprintf("temporal: {address: %q}\n", running.TemporalAddress())))
		if err != nil {
			return res, err
		}
		other, err := app.Start(ctx, app.Options{Config: cfg, DataDir: filepath.Join(dir, fmt.Sprintf("data-%d", w)), Logger: opts.Log, NoHTTP: true, MaxConcurrentActivities: 16})
		if err != nil {
			return res, fmt.Errorf("worker %d: %w", w+1, err)
		}
		defer other.Close()
		workers = append(workers, other)
	}

	start := time.Now()
	if err := seed(ctx, running.Store(), opts.Users); err != nil {
		return res, err
	}
	res.SeedTime = time.Since(start)
	fmt.Fprintf(opts.Out, "seeded %d profiles in %.1f s (%.0f/s)\n", opts.Users, res.SeedTime.Seconds(), float64(opts.Users)/res.SeedTime.Seconds())

	// The broadcast, through its Temporal Schedule.
	cpu0, providerCPU0 := processCPU(), time.Duration(0)
	if opts.ProviderCPU != nil {
		providerCPU0 = opts.ProviderCPU()
	}
	start = time.Now()
	if err := running.TriggerSchedule(ctx, "bench-broadcast"); err != nil {
		return res, fmt.Errorf("trigger schedule: %w", err)
	}
	run, err := waitRun(ctx, running.Store(), "bench-broadcast")
	if err != nil {
		return res, err
	}
	res.Wall = time.Since(start)
	res.CPU = processCPU() - cpu0
	if opts.ProviderCPU != nil {
		res.ProviderCPU = opts.ProviderCPU() - providerCPU0
	}
	counts, _, err := running.Store().Counts(ctx, "bench-broadcast", run.ID)
	if err != nil {
		return res, err
	}
	if c := counts["broadcast"]; c != nil {
		res.Recipients = c.Sent
	}
	res.PeakRSSBytes = peakRSS()
	if opts.FirstPush != nil {
		first, err := opts.FirstPush(ctx)
		if err != nil {
			return res, err
		}
		res.FirstMessage, res.RunToFirst = first.Sub(start), first.Sub(run.StartedAt)
		fmt.Fprintf(opts.Out, "time to first message: %d ms from the trigger (%d ms from the run's start)\n",
			res.FirstMessage.Milliseconds(), res.RunToFirst.Milliseconds())
	}
	res.HistoryEvents, res.Runs, err = historyLength(ctx, running.Client(), run.WorkflowID)
	if err != nil {
		return res, err
	}
	shared := ""
	if len(workers) > 1 {
		// Which worker ran the send's activities (the pages).
		var sends []string
		for _, w := range workers {
			sends = append(sends, strconv.FormatInt(w.ActivitiesRan("Send"), 10))
		}
		shared = fmt.Sprintf(" (%d workers, Send activities %s)", len(workers), strings.Join(sends, " + "))
	}
	fmt.Fprintf(opts.Out, "cohort broadcast%s: %d recipients in %.2f s wall = %.0f recipients/s; peak RSS %d MiB; history %d events in %d workflow run(s)\n",
		shared, res.Recipients, res.Wall.Seconds(), float64(res.Recipients)/res.Wall.Seconds(), res.PeakRSSBytes>>20, res.HistoryEvents, res.Runs)
	fmt.Fprintf(opts.Out, "broadcast CPU: %.1f s in Huabu (%.1f µs per recipient), %.1f s in the provider\n",
		res.CPU.Seconds(), float64(res.CPU.Microseconds())/float64(max(res.Recipients, 1)), res.ProviderCPU.Seconds())
	if res.Recipients != int64(opts.Users) {
		// Say where the others went: under heavy load a provider call can
		// time out, and its recipients are then unknown (maybe sent), not lost.
		why := "no counts for the step"
		if c := counts["broadcast"]; c != nil {
			why = fmt.Sprintf("entered %d, failed %v, suppressed %v, unknown %d, pending %d", c.Entered, c.Failed, c.Suppressed, c.Unknown, c.Pending)
		}
		return res, fmt.Errorf("sent %d messages for %d users (%s)", res.Recipients, opts.Users, why)
	}
	if opts.PerUser > 0 {
		if err := compare(ctx, running, opts, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// seed writes n synthetic profiles straight into the store.
func seed(ctx context.Context, st *store.SQLite, n int) error {
	cities := []string{"上海", "北京", "杭州", "深圳", "成都", "南京", "武汉", "西安"}
	levels := []string{"普通", "银卡", "金卡", "钻石"}
	const batch = 5000
	ups := make([]store.ProfileUpdate, 0, batch)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("b%07d", i)
		doc := fmt.Sprintf(`{"id":%q,"name":"用户%d","city":%q,"level":%q,"push_alias":%q}`, id, i, cities[i%len(cities)], levels[i%len(levels)], id)
		ups = append(ups, store.ProfileUpdate{ID: id, Patch: []byte(doc)})
		if len(ups) == batch || i == n-1 {
			if _, err := st.UpsertProfiles(ctx, ups); err != nil {
				return err
			}
			ups = ups[:0]
		}
	}
	return nil
}

// waitRun waits for the newest run of a canvas to finish.
func waitRun(ctx context.Context, st *store.SQLite, canvasID string) (store.Run, error) {
	for {
		runs, err := st.Runs(ctx, canvasID, 1)
		if err != nil {
			return store.Run{}, err
		}
		if len(runs) > 0 && runs[0].State != store.RunRunning {
			if runs[0].State != store.RunCompleted {
				return runs[0], fmt.Errorf("run %d ended %s: %s", runs[0].ID, runs[0].State, runs[0].Error)
			}
			return runs[0], nil
		}
		select {
		case <-ctx.Done():
			return store.Run{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// historyLength counts the events of a run's workflow, following
// continue-as-new back to the first run; it returns the longest history.
func historyLength(ctx context.Context, c client.Client, ref string) (longest, runs int, err error) {
	wfID, runID, _ := strings.Cut(ref, "/")
	for runID != "" {
		it := c.GetWorkflowHistory(ctx, wfID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n, prev := 0, ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return longest, runs, err
			}
			if n == 0 {
				prev = ev.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
			}
			n++
		}
		runs++
		longest = max(longest, n)
		runID = prev
	}
	return longest, runs, nil
}

// compare sends the same push to the first n users as one cohort and as one
// workflow per user.
func compare(ctx context.Context, app *app.App, opts Options, res *Result) error {
	n := min(opts.PerUser, opts.Users)
	res.SmallN = n
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("b%07d", i)
	}
	start := time.Now()
	started, err := app.StartRun(ctx, "bench-small", ids)
	if err != nil {
		return err
	}
	if _, err := app.WaitRun(ctx, started.WorkflowID); err != nil {
		return err
	}
	res.CohortSmall = time.Since(start)

	c, err := app.Store().Canvas(ctx, "bench-small")
	if err != nil {
		return err
	}
	run, err := app.Store().BeginRun(ctx, fmt.Sprintf("bench-per-user-%d", time.Now().UnixNano()), "bench-small", c.PlanHash, "bench")
	if err != nil {
		return err
	}
	uids, err := app.Store().UIDs(ctx, ids)
	if err != nil {
		return err
	}
	start = time.Now()
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 64)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			wf, err := app.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: fmt.Sprintf("bench-per-user-%d-%d", run.ID, i), TaskQueue: "huabu",
			}, workflows.SendOneName, activities.SendOneInput{RunID: run.ID, CanvasID: "bench-small", PlanHash: c.PlanHash, StepID: "broadcast", UID: uids[id]})
			if err == nil {
				var r activities.SendResult
				if err = wf.Get(ctx, &r); err == nil {
					sent.Add(r.Sent)
				}
			}
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	res.PerUserSmall = time.Since(start)
	res.PerUserSent = sent.Load()
	select {
	case err := <-errs:
		return fmt.Errorf("per-user workflow: %w", err)
	default:
	}
	cohortRate := float64(n) / res.CohortSmall.Seconds()
	perUserRate := float64(n) / res.PerUserSmall.Seconds()
	fmt.Fprintf(opts.Out, "at %d users: cohort %.2f s (%.0f/s), one workflow per user %.2f s (%.0f/s): cohort is %.1f× faster\n",
		n, res.CohortSmall.Seconds(), cohortRate, res.PerUserSmall.Seconds(), perUserRate, cohortRate/perUserRate)
	if opts.Users > n {
		fmt.Fprintf(opts.Out, "one workflow per user would take about %s for %d users (cohort: %.1f s)\n",
			(time.Duration(float64(opts.Users)/perUserRate) * time.Second).Round(time.Minute), opts.Users, res.Wall.Seconds())
	}
	return nil
}

// peakRSS is the process's peak resident set size.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// processCPU is this process's user+system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPU is the provider's user+system time so far, from /proc (0 where there
// is none).
func (p *Provider) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses): utime and
	// stime are the 12th and 13th, in clock ticks (100 per second on Linux).
	i := strings.LastIndex(string(b), ") ")
	f := strings.Fields(string(b)[i+1:])
	if i < 0 || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100)
}

// Provider is a provider fake running as a child process.
type Provider struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{} // closed when its stdout ends
	// first is when it accepted its first push; pushed is closed once it
	// said so (first is set before).
	first  time.Time
	pushed chan struct{}
}

// StartProvider runs a provider fake as a child process (the same binary,
// `huabu bench provider`) and returns it once it said its URL. Later lines
// on its stdout report when it accepted its first push.
func StartProvider(ctx context.Context, self string, args ...string) (*Provider, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Provider{cmd: cmd, done: make(chan struct{}), pushed: make(chan struct{})}
	lines := bufio.NewReader(out)
	line, err := lines.ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("provider did not start: %w", err)
	}
	var hello struct{ URL string }
	if err := json.Unmarshal([]byte(line), &hello); err != nil {
		p.Stop()
		return nil, fmt.Errorf("provider said %q", line)
	}
	p.URL = hello.URL
	go func() {
		defer close(p.done)
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				return
			}
			var said struct{ FirstPush time.Time }
			if json.Unmarshal([]byte(line), &said) == nil && !said.FirstPush.IsZero() && p.first.IsZero() {
				p.first = said.FirstPush
				close(p.pushed)
			}
		}
	}()
	return p, nil
}

// FirstPush is when the provider accepted its first push, waiting up to 5 s
// for its report (it is written as the push is answered).
func (p *Provider) FirstPush(ctx context.Context) (time.Time, error) {
	select {
	case <-p.pushed:
		return p.first, nil
	case <-p.done:
		select {
		case <-p.pushed: // it reported, then ended
			return p.first, nil
		default:
		}
		return time.Time{}, fmt.Errorf("the provider exited without reporting its first push")
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(5 * time.Second):
		return time.Time{}, fmt.Errorf("the provider did not report its first push")
	}
}

// Stop ends the provider.
func (p *Provider) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// benchDirs returns the benchmark's data directory (dataDir, or a temporary
// one that cleanup removes) and its canvases directory, created.
func benchDirs(dataDir string) (dir, canvasDir string, cleanup func(), err error) {
	dir, cleanup = dataDir, func() {}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "huabu-bench-"); err != nil {
			return "", "", nil, err
		}
		tmp := dir
		cleanup = func() { os.RemoveAll(tmp) }
	}
	canvasDir = filepath.Join(dir, "canvases")
	if err := os.MkdirAll(canvasDir, 0o755); err != nil {
		cleanup()
		return "", "", nil, err
	}
	return dir, canvasDir, cleanup, nil
}

// storeConfig is the config's store section: PostgreSQL at dsn, or the
// default SQLite store when dsn is "".
func storeConfig(dsn string) string {
	if dsn == "" {
		return ""
	}
	b, _ := json.Marshal(dsn)
	return "store: {driver: postgres, dsn: " + string(b) + "}\n"
}

// refuseStoreInUse stops a bench given a PostgreSQL database that holds
// anything but an empty Huabu schema: a bench deploys its own canvases as
// a new canvas set (retiring every other canvas there) and seeds
// synthetic profiles.
func refuseStoreInUse(ctx context.Context, dsn string) error {
	if dsn == "" {
		return nil
	}
	st, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	used, err := st.InUse(ctx)
	if err != nil {
		return err
	}
	if used {
		return fmt.Errorf("--postgres %s holds canvases, profiles, runs or events: a bench retires every canvas there and seeds synthetic profiles, so it needs an empty database or schema", store.MaskDSN(dsn))
	}
	return nil
}
