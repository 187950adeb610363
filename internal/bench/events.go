package bench

// The event benchmarks: events accepted per second through POST /v1/batch
// of the running app's HTTP server (`huabu bench ingest`), and event →
// outbox latency at a steady rate of /v1/track calls (`huabu bench events`).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/loadgen"
	"github.com/huabu/huabu/internal/store"
)

const writeKey = "bench-write-key"

// benchProfile is the example config's audience data: computed traits,
// RFM and auto-tags, so the traits engine does its production work.
const benchProfile = `
profile:
  attributes: {name: string, city: string, level: string}
  traits:
    orders_30d: {count: purchase, within: 30d}
    spend_90d: {sum: purchase.amount, within: 90d}
    last_order_amount: {last: purchase.amount}
    days_since_last_order: {days_since: purchase}
    app_opens_7d: {count: app_open, within: 7d}
  rfm: {event: purchase, amount: amount, window: 365d}
events:
  purchase: {amount: number, order_id: string}
tags:
  dormant: 'user.traits.days_since_last_order > 60'
  high_value: 'user.rfm.m >= 4'
`

// EventOptions configure the event benchmarks.
type EventOptions struct {
	// bench ingest
	Events  int // events to send
	Batch   int // events per /v1/batch request (default 500)
	Clients int // concurrent HTTP clients (default 8)
	Users   int // distinct users the events name (default 100,000)
	// bench events
	Rate     int           // events per second
	Duration time.Duration // how long to send
	Window   time.Duration // the entry window (0: the default)
	// BackPressure sets triggers.back_pressure (ADR 035).
	BackPressure bool

	// NoTraits leaves computed traits, RFM and tags out of the config (to
	// see what they cost).
	NoTraits bool

	DataDir string // "" = a temporary directory, removed after
	// Postgres is the DSN of an empty PostgreSQL database (or schema) to
	// use as the store instead of SQLite in DataDir.
	Postgres string
	Out      io.Writer
	Log      *slog.Logger
}

// startStack runs the app with its HTTP API on a free port.
func startStack(ctx context.Context, opts EventOptions, canvases map[string]string) (*app.App, func(), error) {
	if err := refuseStoreInUse(ctx, opts.Postgres); err != nil {
		return nil, nil, err
	}
	dir := opts.DataDir
	cleanup := func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "huabu-bench-")
		if err != nil {
			return nil, nil, err
		}
		dir, cleanup = tmp, func() { os.RemoveAll(tmp) }
	}
	canvasDir := filepath.Join(dir, "canvases")
	if err := os.MkdirAll(canvasDir, 0o755); err != nil {
		cleanup()
		return nil, nil, err
	}
	for name, body := range canvases {
		if err := os.WriteFile(filepath.Join(canvasDir, name), []byte(body), 0o644); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	cfgText := "canvases: ./canvases\nhttp: {listen: \"127.0.0.1:0\", write_keys: [" + writeKey + "]}\n"
	if opts.Window > 0 || opts.BackPressure {
		window := opts.Window
		if window <= 0 {
			window = 200 * time.Millisecond
		}
		cfgText += fmt.Sprintf("triggers: {window: %s, back_pressure: %t}\n", window, opts.BackPressure)
	}
	if !opts.NoTraits {
		cfgText += benchProfile
	}
	cfgText += storeConfig(opts.Postgres)
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(cfgText))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	running, err := app.Start(ctx, app.Options{Config: cfg, DataDir: filepath.Join(dir, "data"), Logger: opts.Log})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return running, func() { running.Close(); cleanup() }, nil
}

// pingBody is the bench's i-th event: a Segment track call of bench_ping.
func pingBody(user string, run int64, i int) []byte {
	return fmt.Appendf(nil, `{"userId":%q,"event":"bench_ping","messageId":"%d-%d","properties":{"seq":%d}}`, user, run, i, i)
}

// pacedLoad is what sendPaced did: when each event went, how long its
// request took to be answered, which requests failed (no message is
// expected for them) and the first failure.
type pacedLoad struct {
	sentAt   []time.Time
	accept   []time.Duration
	lost     []bool
	failed   int
	firstErr error
	sending  time.Duration
}

// sendPaced sends n events at a steady pace — event i at start + i/rate —
// from senders goroutines, each waiting for its request's answer; failed
// requests are counted, not fatal. Its error is the context's.
func sendPaced(ctx context.Context, n, rate, senders int, send func(ctx context.Context, i int) error) (pacedLoad, error) {
	load := pacedLoad{sentAt: make([]time.Time, n), accept: make([]time.Duration, n), lost: make([]bool, n)}
	jobs := make(chan int, n)
	errs := make(chan error, 1)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				load.sentAt[i] = time.Now()
				if err := send(ctx, i); err != nil {
					failed.Add(1)
					load.lost[i] = true
					select {
					case errs <- err:
					default:
					}
					continue
				}
				load.accept[i] = time.Since(load.sentAt[i])
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			if err := sleepCtx(ctx, d); err != nil {
				close(jobs)
				wg.Wait()
				return load, err
			}
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	load.sending = time.Since(start)
	if load.failed = int(failed.Load()); load.failed > 0 {
		load.firstErr = <-errs
	}
	return load, nil
}

// post sends one ingestion request (its write key as the basic-auth user,
// as Segment's libraries do) and wants 200.
func post(ctx context.Context, c *http.Client, url, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// Ingest posts Events events in /v1/batch requests from Clients concurrent
// clients to the app's HTTP server and prints how many were accepted (in
// the accept log, fsynced) per second, how soon all of them were in the
// event store, then how long the router and the traits engine took to
// catch up once the load stopped.
func Ingest(ctx context.Context, opts EventOptions) error {
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Clients <= 0 {
		opts.Clients = 8
	}
	if opts.Users <= 0 {
		opts.Users = 100000
	}
	requests := max(1, (opts.Events+opts.Batch-1)/opts.Batch)
	app, stop, err := startStack(ctx, opts, nil)
	if err != nil {
		return err
	}
	defer stop()
	bodies := loadgen.BatchBodies(requests, opts.Batch, opts.Users, uint64(time.Now().UnixNano()))
	url := "http://" + app.HTTPAddr() + "/v1/batch"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: opts.Clients}, Timeout: time.Minute}
	before, err := app.Store().CountEvents(ctx)
	if err != nil {
		return err
	}
	var next atomic.Int64
	lat := make([][]time.Duration, opts.Clients)
	errs := make(chan error, opts.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < opts.Clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests || ctx.Err() != nil {
					return
				}
				t := time.Now()
				if err := post(ctx, client, url, writeKey, bodies[i]); err != nil {
					errs <- err
					return
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return err
	default:
	}
	sent := requests * opts.Batch
	all := slices.Concat(lat...)
	fmt.Fprintf(opts.Out, "ingest: %d events in %d POST /v1/batch of %d from %d clients in %.2f s = %.0f events/s accepted (in the fsynced accept log); request p50 %s, p99 %s\n",
		sent, requests, opts.Batch, opts.Clients, elapsed.Seconds(), float64(sent)/elapsed.Seconds(), ms(percentile(all, 0.5)), ms(percentile(all, 0.99)))

	// Storing: the applier moves the accepted requests into the store.
	if err := app.WaitIngested(ctx); err != nil {
		return err
	}
	storedIn := time.Since(start)
	after, err := app.Store().CountEvents(ctx)
	if err != nil {
		return err
	}
	if stored := after - before; stored != int64(sent) {
		return fmt.Errorf("stored %d events of %d sent", stored, sent)
	}
	fmt.Fprintf(opts.Out, "stored: all %d in the event store %.2f s after the first request = %.0f events/s sustained (store bound)\n",
		sent, storedIn.Seconds(), float64(sent)/storedIn.Seconds())

	// Catching up: the router (event triggers, waits, exits, goals) and the
	// computed traits, from the moment the load stopped.
	last, err := app.Store().LastEventID(ctx)
	if err != nil {
		return err
	}
	catchUp := time.Now()
	for app.EventsRouted() < last {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	routed := time.Since(catchUp)
	if err := app.WaitTraits(ctx); err != nil {
		return err
	}
	fmt.Fprintf(opts.Out, "after the load: router caught up in %.2f s, computed traits in %.2f s\n", routed.Seconds(), time.Since(catchUp).Seconds())
	return nil
}

const eventsCanvas = `
id: bench-events
name: 事件基准
trigger: {event: {name: bench_ping}}
entry: {reentry: always}
steps:
  - id: hello
    push: {channel: outbox, text: 你好}
`

// Events sends Rate /v1/track calls per second for Duration, each for a new
// user, to a canvas triggered by that event whose first step writes to the
// outbox, and prints the event → outbox latency: from sending the request
// to the outbox row's creation.
func Events(ctx context.Context, opts EventOptions) error {
	if opts.Rate <= 0 || opts.Duration <= 0 {
		return fmt.Errorf("--rate and --duration must be positive")
	}
	app, stop, err := startStack(ctx, opts, map[string]string{"bench-events.yaml": eventsCanvas})
	if err != nil {
		return err
	}
	defer stop()
	url := "http://" + app.HTTPAddr() + "/v1/track"
	n := int(float64(opts.Rate) * opts.Duration.Seconds())
	sentAt := make([]time.Time, n)
	accept := make([]time.Duration, n)
	run := time.Now().UnixNano()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("e%d-%07d", run%100000, i)
	}
	// Enough senders for the rate at a slow accept: each waits for its
	// request's answer (the accept log's fsync), and 64 of them fell behind
	// 2,000/s on a busy machine, sending far fewer events than asked.
	senders := max(64, opts.Rate/4)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}, Timeout: 30 * time.Second}
	load, err := sendPaced(ctx, n, opts.Rate, senders, func(ctx context.Context, i int) error {
		return post(ctx, client, url, writeKey, pingBody(users[i], run, i))
	})
	if err != nil {
		return err
	}
	sentAt, accept, lost, sending := load.sentAt, load.accept, load.lost, load.sending
	// Failed requests (e.g. past the client's timeout on an overloaded
	// machine) are reported with the rest, not instead of it.
	var failure error
	accepted := n
	if load.failed > 0 {
		failure = fmt.Errorf("%d of %d requests failed, e.g. %w", load.failed, n, load.firstErr)
		accepted -= load.failed
	}

	// Every accepted event's message, or a timeout. Each poll reads only
	// the rows written since the last one (by id): reading the newest
	// "missing" rows again and again took a core of the two at 5,000/s
	// while the runs it waits for were still working through their
	// backlog, and the events it slowed were the last ones, in the tail.
	// On PostgreSQL ids come from a sequence and concurrent sends commit
	// out of id order, so each poll reads again from pgOutboxMargin rows
	// before the newest id seen (review-s9 L4). A last whole read finds a
	// row that committed under an older id still.
	created := map[string]time.Time{}
	deadline := time.Now().Add(30 * time.Second)
	var seen int64
	for {
		from := seen
		if app.Store().Postgres() {
			from = max(0, seen-pgOutboxMargin)
		}
		for {
			msgs, err := app.Store().OutboxAfter(ctx, "bench-events", from, 10000)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				created[m.UserID], seen, from = m.CreatedAt, max(seen, m.ID), m.ID
			}
			if len(msgs) < 10000 {
				break
			}
		}
		if len(created) >= accepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(created) < accepted {
		msgs, err := app.Store().Outbox(ctx, "bench-events", n+10)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			created[m.UserID] = m.CreatedAt
		}
	}
	var lat, acc []time.Duration
	for i, u := range users {
		if !lost[i] {
			acc = append(acc, accept[i])
		}
		if at, ok := created[u]; ok {
			// The row's time has millisecond precision.
			lat = append(lat, max(0, at.Sub(sentAt[i].Truncate(time.Millisecond))))
		}
	}
	runs, err := app.Store().Runs(ctx, "bench-events", 100000)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.Out, "events: %d POST /v1/track at %d/s for %s (achieved %.1f/s); HTTP accept p50 %s, p99 %s\n",
		n, opts.Rate, opts.Duration, float64(n)/sending.Seconds(), ms(percentile(acc, 0.5)), ms(percentile(acc, 0.99)))
	if failure != nil {
		fmt.Fprintf(opts.Out, "failed: %d requests (no message expected for them): %v\n", n-accepted, failure)
	}
	fmt.Fprintf(opts.Out, "event → outbox: p50 %s, p99 %s, max %s; %d/%d messages in the outbox; %d runs (one per entry window); stored in %d applier transactions\n",
		ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(percentile(lat, 1)), len(lat), accepted, len(runs), app.ApplierTransactions())
	if times, err := app.Store().WindowTimes(ctx, "bench-events"); err == nil && len(times) > 0 {
		fmt.Fprintln(opts.Out, windowStages(times))
	}
	if len(lat) < accepted {
		failure = errors.Join(failure, fmt.Errorf("%d accepted events had no message in the outbox after 30 s", accepted-len(lat)))
	}
	return failure
}

// pgOutboxMargin is how far below the newest outbox id seen the bench
// reads again on PostgreSQL: more than the messages its sends have in
// flight at once (pages of 1,000, a few sends at a time).
const pgOutboxMargin = 20000

// windowStages says where the windows' time went: per stage, the median
// and the maximum over the windows that reached it, in ms.
func windowStages(times []store.WindowTimes) string {
	stages := []struct {
		name     string
		from, to func(store.WindowTimes) int64
	}{
		{"stored → window opened", func(w store.WindowTimes) int64 { return w.FirstStored }, func(w store.WindowTimes) int64 { return w.Created }},
		{"open", func(w store.WindowTimes) int64 { return w.Created }, func(w store.WindowTimes) int64 { return w.ClosesAt }},
		{"closed → run started", func(w store.WindowTimes) int64 { return w.ClosesAt }, func(w store.WindowTimes) int64 { return w.Started }},
		{"closed → BeginRun", func(w store.WindowTimes) int64 { return w.ClosesAt }, func(w store.WindowTimes) int64 { return w.RunBegun }},
		{"BeginRun → first message", func(w store.WindowTimes) int64 { return w.RunBegun }, func(w store.WindowTimes) int64 { return w.FirstMessage }},
		{"first → last message", func(w store.WindowTimes) int64 { return w.FirstMessage }, func(w store.WindowTimes) int64 { return w.LastMessage }},
	}
	users := make([]int, 0, len(times))
	for _, w := range times {
		users = append(users, w.Users)
	}
	slices.Sort(users)
	var b strings.Builder
	fmt.Fprintf(&b, "windows: %d, users median %d, max %d; ms median/max:", len(times), users[len(users)/2], users[len(users)-1])
	for i, st := range stages {
		var d []time.Duration
		for _, w := range times {
			if from, to := st.from(w), st.to(w); from > 0 && to > 0 {
				d = append(d, time.Duration(to-from)*time.Millisecond)
			}
		}
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %.0f/%.0f", sep, st.name, float64(percentile(d, 0.5))/1e6, float64(percentile(d, 1))/1e6)
	}
	return b.String()
}
