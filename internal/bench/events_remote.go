package bench

// The event benchmark against a running Huabu (`huabu bench events
// --target URL`): a cluster of workers behind their own Temporal and
// PostgreSQL, say scripts/cluster's. It loads the system through its
// public /v1 API and reads delivery through the admin API, as an operator
// would, so the latency includes whatever the deployment adds (several
// workers' accept logs and appliers, the router's lease holder, the
// Temporal cluster's persistence).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/huabu/huabu/internal/store"
)

// RemoteOptions say which running Huabu `bench events --target` loads.
type RemoteOptions struct {
	// Targets are the base URLs of the workers' public HTTP servers
	// (http.listen); events go to them in turn, as a load balancer would
	// spread them.
	Targets []string
	// Admin is the base URL of the admin API (http.admin_listen, or a
	// worker's http.listen): the bench deploys its canvas and reads the
	// outbox there. Default: the first target.
	Admin    string
	WriteKey string // one of the workers' http.write_keys
	Token    string // a bearer token with the operator role ("" when auth.tokens is empty: loopback only)
}

// remote talks to a running Huabu.
type remote struct {
	RemoteOptions
	client *http.Client
}

func (r *remote) adminDo(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(r.Admin, "/")+path, rd)
	if err != nil {
		return err
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out != nil {
		return json.Unmarshal(msg, out)
	}
	return nil
}

func (r *remote) track(ctx context.Context, target string, body []byte) error {
	return post(ctx, r.client, strings.TrimRight(target, "/")+"/v1/track", r.WriteKey, body)
}

// outboxReader collects the bench canvas's outbox rows by user. The admin
// API answers the newest rows first, at most 10,000: reading while the
// load runs keeps every row inside that window; the window grows when a
// read finds nothing it had seen before (rows may have slipped past).
type outboxReader struct {
	r       *remote
	mu      sync.Mutex
	created map[string]time.Time
	limit   int
}

func (o *outboxReader) read(ctx context.Context) error {
	var page struct {
		Messages []store.OutboxMessage `json:"messages"`
	}
	q := url.Values{"canvas": {eventsCanvasID}, "limit": {fmt.Sprint(o.limit)}}
	if err := o.r.adminDo(ctx, "GET", "/api/v1/outbox?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	overlap := false
	for _, m := range page.Messages {
		if _, ok := o.created[m.UserID]; ok {
			overlap = true
			continue
		}
		o.created[m.UserID] = m.CreatedAt
	}
	if len(page.Messages) == o.limit && !overlap {
		o.limit = min(10000, o.limit*2)
	}
	return nil
}

func (o *outboxReader) at(user string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.created[user]
	return t, ok
}

const eventsCanvasID = "bench-events"

// EventsRemote is Events against a running Huabu: it deploys the bench's
// canvas (bench-events, triggered by the event bench_ping; deploying adds
// it and retires nothing), waits until one event reaches the outbox (the
// router's leader has the canvas), then sends Rate /v1/track calls a
// second for Duration, each for a new user, spread over the targets, and
// prints the latency from each request's sending to its outbox row. The
// row's time is the worker's clock: run the bench on the workers' host (or
// one kept in step with it). The workers' channels must write to the
// outbox (scripts/cluster.yaml's do).
func EventsRemote(ctx context.Context, opts EventOptions, target RemoteOptions) error {
	if opts.Rate <= 0 || opts.Duration <= 0 {
		return fmt.Errorf("--rate and --duration must be positive")
	}
	if len(target.Targets) == 0 {
		return fmt.Errorf("--target: at least one worker's URL")
	}
	if target.Admin == "" {
		target.Admin = target.Targets[0]
	}
	senders := max(64, opts.Rate/4)
	r := &remote{RemoteOptions: target, client: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: senders},
		Timeout:   30 * time.Second,
	}}
	if err := r.adminDo(ctx, "POST", "/api/v1/deploy", map[string]any{"files": map[string]string{"bench-events.yaml": eventsCanvas}}, nil); err != nil {
		return fmt.Errorf("deploying the bench canvas: %w", err)
	}
	run := time.Now().UnixNano()
	reader := &outboxReader{r: r, created: map[string]time.Time{}, limit: 1000}

	// Warm up: one event through the whole path, so the timed events do
	// not wait for the router's leader to load the new canvas. A deploy
	// made through a worker that does not lead reaches the leader within
	// its deploy poll, and an event routed before that enters nothing: so
	// a new warm-up event (a new user) goes every warmEvery until one of
	// them reaches the outbox.
	const warmEvery = 3 * time.Second
	var warms []string
	warmStart := time.Now()
	var lastWarm time.Time
	arrived := func(user string) bool { _, ok := reader.at(user); return ok }
	for {
		if time.Since(lastWarm) >= warmEvery {
			warm := fmt.Sprintf("w%d-%d", run%1000000, len(warms))
			if err := r.track(ctx, target.Targets[0], fmt.Appendf(nil, `{"userId":%q,"event":"bench_ping","messageId":"w-%d-%d"}`, warm, run, len(warms))); err != nil {
				return err
			}
			warms, lastWarm = append(warms, warm), time.Now()
		}
		if err := reader.read(ctx); err != nil {
			return err
		}
		if slices.ContainsFunc(warms, arrived) {
			break
		}
		if time.Since(warmStart) > 2*time.Minute {
			return fmt.Errorf("no warm-up event reached an outbox row in 2 minutes: are the workers' channels outbox providers, and is a router running?")
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	warmup := time.Since(warmStart)

	n := int(float64(opts.Rate) * opts.Duration.Seconds())
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("r%d-%07d", run%100000, i)
	}
	// Read the outbox while the load runs (twice a second), so no row
	// slips out of the API's newest-first window.
	readCtx, stopReading := context.WithCancel(ctx)
	readErr := make(chan error, 1)
	go func() {
		for readCtx.Err() == nil {
			if err := reader.read(readCtx); err != nil && readCtx.Err() == nil {
				readErr <- err
				return
			}
			_ = sleepCtx(readCtx, 500*time.Millisecond)
		}
		readErr <- nil
	}()
	load, err := sendPaced(ctx, n, opts.Rate, senders, func(ctx context.Context, i int) error {
		return r.track(ctx, target.Targets[i%len(target.Targets)], pingBody(users[i], run, i))
	})
	if err != nil {
		stopReading()
		return err
	}
	if load.failed > 0 {
		stopReading()
		return fmt.Errorf("%d of %d requests failed, e.g. %w", load.failed, n, load.firstErr)
	}
	sentAt, accept, sending := load.sentAt, load.accept, load.sending

	// Every event's message, or a timeout 30 s after the last request.
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for _, u := range users {
			if _, ok := reader.at(u); !ok {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			stopReading()
			return err
		}
	}
	stopReading()
	if err := <-readErr; err != nil {
		return fmt.Errorf("reading the outbox: %w", err)
	}
	if err := reader.read(ctx); err != nil {
		return fmt.Errorf("reading the outbox: %w", err)
	}
	var lat []time.Duration
	for i, u := range users {
		if at, ok := reader.at(u); ok {
			// The row's time has millisecond precision.
			lat = append(lat, max(0, at.Sub(sentAt[i].Truncate(time.Millisecond))))
		}
	}
	fmt.Fprintf(opts.Out, "events: %d POST /v1/track at %d/s for %s to %d worker(s) (achieved %.1f/s); HTTP accept p50 %s, p99 %s; warm-up event in %s\n",
		n, opts.Rate, opts.Duration, len(target.Targets), float64(n)/sending.Seconds(), ms(percentile(accept, 0.5)), ms(percentile(accept, 0.99)), ms(warmup))
	fmt.Fprintf(opts.Out, "event → outbox: p50 %s, p99 %s, max %s; %d/%d messages in the outbox\n",
		ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(percentile(lat, 1)), len(lat), n)
	if len(lat) < n {
		return fmt.Errorf("%d events had no message in the outbox 30 s after the last request", n-len(lat))
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
