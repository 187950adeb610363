package bench

// The wait-for-event benchmark (`huabu bench wait`): N users enter a canvas
// that waits for an event; half of them send it; those are thanked with a
// push, the rest time out and leave. It shows that a million-user wait —
// its registration, the arrivals the router records, the collections that
// take them on, the final collection of those who never came — stays
// within the broadcast's memory and time.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// WaitOptions configure the wait-for-event benchmark.
type WaitOptions struct {
	Users    int           // profiles seeded; all enter, every other one sends the event
	Timeout  time.Duration // the wait's timeout (the run ends that long after the wait opens)
	DataDir  string        // "" = a temporary directory, removed after
	Postgres string        // DSN of an empty PostgreSQL database for the store ("" = SQLite)
	Provider string        // URL of the JPush-compatible provider (started by the caller)
	Out      io.Writer
	Log      *slog.Logger
}

// WaitResult is what the wait benchmark measured.
type WaitResult struct {
	Users        int
	Entered      int64 // enter + wait registered
	EnterTime    time.Duration
	EventsTime   time.Duration // storing the events
	TakenOnTime  time.Duration // first event stored → every sender thanked
	Thanked      int64
	TimedOut     int64
	Wall         time.Duration // run start → run end
	Idle         time.Duration // all senders thanked → the wait's deadline
	PeakRSSBytes int64
}

const waitCanvas = `
id: bench-wait
name: 基准等待事件
trigger: {manual: {}}
steps:
  - id: wait-buy
    wait: {event: purchase, timeout: %s, on_timeout: gone}
  - id: thanks
    push: {channel: push, title: 感谢, text: 感谢您的购买，积分已到账}
    next: done
  - id: gone
    exit: {reason: no_purchase}
  - id: done
    exit: {reason: bought}
`

// Wait runs the wait-for-event benchmark and prints its lines to opts.Out.
func Wait(ctx context.Context, opts WaitOptions) (WaitResult, error) {
	res := WaitResult{Users: opts.Users}
	if err := refuseStoreInUse(ctx, opts.Postgres); err != nil {
		return res, err
	}
	dir, canvasDir, cleanup, err := benchDirs(opts.DataDir)
	if err != nil {
		return res, err
	}
	defer cleanup()
	src := fmt.Sprintf(waitCanvas, opts.Timeout.Round(time.Second))
	if err := os.WriteFile(filepath.Join(canvasDir, "wait.yaml"), []byte(src), 0o644); err != nil {
		return res, err
	}
	cfgText := fmt.Sprintf(`
canvases: ./canvases
http: {disabled: true}
profile: {attributes: {name: string, city: string, level: string}}
events:
  purchase: {amount: number, order_id: string}
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
	st := running.Store()

	start := time.Now()
	if err := seed(ctx, st, opts.Users); err != nil {
		return res, err
	}
	seedTime := time.Since(start)
	fmt.Fprintf(opts.Out, "seeded %d profiles in %.1f s (%.0f/s)\n", opts.Users, seedTime.Seconds(), float64(opts.Users)/seedTime.Seconds())

	// Everyone enters and waits.
	start = time.Now()
	started, err := running.StartRun(ctx, "bench-wait", nil)
	if err != nil {
		return res, err
	}
	status := func() (workflows.Status, error) {
		var s workflows.Status
		v, err := running.Client().QueryWorkflow(ctx, started.WorkflowID, "", workflows.StatusQuery)
		if err == nil {
			err = v.Get(&s)
		}
		return s, err
	}
	var run store.Run
	var deadline time.Time
	for {
		if run.ID == 0 {
			run, _ = st.RunByWorkflow(ctx, started.WorkflowID)
		}
		if run.ID != 0 {
			waits, err := st.WaitsIn(ctx, []int64{run.ID}, "purchase")
			if err != nil {
				return res, err
			}
			if len(waits) > 0 {
				deadline = waits[0].Deadline
				break
			}
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.EnterTime = time.Since(start)
	if s, err := status(); err == nil {
		res.Entered = s.Stats.Entered
	}
	fmt.Fprintf(opts.Out, "entered %d users and opened the wait in %.2f s\n", res.Entered, res.EnterTime.Seconds())

	// Every other user buys: the events go into the store as the ingestion
	// API puts them, and the router picks them up from there.
	eventsStart := time.Now()
	const batch = 5000
	msgs := make([]store.Message, 0, batch)
	for i := 0; i < opts.Users; i += 2 {
		id := fmt.Sprintf("b%07d", i)
		msgs = append(msgs, store.Message{Type: "track", MessageID: "bench-buy-" + id, UserID: id, Name: "purchase",
			Properties: []byte(fmt.Sprintf(`{"amount":%d,"order_id":"o%07d"}`, 100+i%900, i)), Timestamp: time.Now()})
		if len(msgs) == batch || i+2 >= opts.Users {
			if _, err := st.Ingest(ctx, msgs, store.IngestOptions{Realtime: true}); err != nil {
				return res, err
			}
			msgs = msgs[:0]
		}
	}
	res.EventsTime = time.Since(eventsStart)
	senders := int64((opts.Users + 1) / 2)
	fmt.Fprintf(opts.Out, "stored %d purchase events in %.2f s\n", senders, res.EventsTime.Seconds())
	for {
		s, err := status()
		if err == nil && s.Stats.Sent >= senders {
			break
		}
		if time.Now().After(deadline) {
			// Arrivals routed after the deadline go the timeout way, as
			// they should: the run still accounts for everyone once.
			fmt.Fprintf(opts.Out, "the wait's timeout (%s) passed with %d of %d senders thanked (the rest time out): a longer --timeout measures routing in full\n", opts.Timeout, s.Stats.Sent, senders)
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.TakenOnTime = time.Since(eventsStart)
	res.Idle = max(time.Until(deadline), 0)
	if res.Idle > 0 {
		fmt.Fprintf(opts.Out, "routed the events and thanked all %d senders %.2f s after the first event was stored\n", senders, res.TakenOnTime.Seconds())
	}

	// The rest time out.
	if _, err := running.WaitRun(ctx, started.WorkflowID); err != nil {
		return res, err
	}
	res.Wall = time.Since(start)
	res.PeakRSSBytes = peakRSS()
	counts, _, err := st.Counts(ctx, "bench-wait", run.ID)
	if err != nil {
		return res, err
	}
	if c := counts["thanks"]; c != nil {
		res.Thanked = c.Sent
	}
	if c := counts["gone"]; c != nil {
		res.TimedOut = c.Exited
	}
	fmt.Fprintf(opts.Out, "wait-for-event: %d users, %d thanked, %d timed out; run wall %.2f s (%.2f s of it idle until the %s timeout: busy %.2f s); peak RSS %d MiB\n",
		res.Entered, res.Thanked, res.TimedOut, res.Wall.Seconds(), res.Idle.Seconds(), opts.Timeout, (res.Wall - res.Idle).Seconds(), res.PeakRSSBytes>>20)
	if res.Thanked+res.TimedOut != res.Entered || res.Entered != int64(opts.Users) {
		return res, fmt.Errorf("%d entered, %d thanked, %d timed out: not everyone once", res.Entered, res.Thanked, res.TimedOut)
	}
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
