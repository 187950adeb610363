package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
)

// liveAPI is the address of whichever `huabu dev` is running (each start
// listens on a new port), for a client that keeps sending across restarts.
type liveAPI struct {
	mu  sync.Mutex
	url string
}

func (a *liveAPI) get() string    { a.mu.Lock(); defer a.mu.Unlock(); return a.url }
func (a *liveAPI) set(url string) { a.mu.Lock(); a.url = url; a.mu.Unlock() }

// orderBatches builds /v1/batch bodies of one order_paid event per user,
// users e00000… in order, size events a batch.
func orderBatches(users, size int) [][]byte {
	var out [][]byte
	for start := 0; start < users; start += size {
		var b bytes.Buffer
		b.WriteString(`{"batch":[`)
		for i := start; i < min(start+size, users); i++ {
			if i > start {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"track","messageId":"order-%05d","userId":"e%05d","event":"order_paid","properties":{"amount":%d},"timestamp":%q}`,
				i, i, 100+i%400, time.Now().UTC().Format(time.RFC3339Nano))
		}
		b.WriteString(`]}`)
		out = append(out, b.Bytes())
	}
	return out
}

// sendUntilAccepted posts a batch until the running Huabu answers 200, as
// a Segment client does: a request the kill cut off is sent again, with the
// same message ids, so what was stored before the kill is not stored twice.
func sendUntilAccepted(ctx context.Context, api *liveAPI, body []byte) error {
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Post(api.get()+"/v1/batch", "application/json", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("batch never accepted: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestKillWhileEntryWindowsAreOpen: events stream into an event-triggered
// canvas (reentry: always, so any second run would send again) while
// `huabu dev` is SIGKILLed twice, each time with entry windows gathering,
// and started again; the client resends what a kill cut off. Every
// accepted event enters exactly one run: each user has exactly one
// delivery of the canvas's push.
func TestKillWhileEntryWindowsAreOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal three times")
	}
	t.Parallel() // mostly waiting for Temporal to time out the dead worker's activities
	const users = 6000
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfgPath := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
canvases: ./canvases
http: {listen: "127.0.0.1:0"}
triggers: {window: 400ms}
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "every-order.yaml"), []byte(`
id: every-order
trigger: {event: {name: order_paid, when: 'event.amount >= 100'}}
entry: {reentry: always}
steps:
  - id: thanks
    push: {channel: outbox, text: 感谢您的订单}
`), 0o644))

	start := time.Now()
	dev := startDev(t, dir, cfgPath)
	api := &liveAPI{url: dev.api}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	batches := orderBatches(users, 50)
	var accepted atomic.Int64
	sent := make(chan error, 1)
	go func() {
		for _, b := range batches {
			if err := sendUntilAccepted(ctx, api, b); err != nil {
				sent <- err
				return
			}
			accepted.Add(50)
			time.Sleep(15 * time.Millisecond) // ~3,000 events a second
		}
		sent <- nil
	}()

	resumed := 0
	for kill := 1; kill <= 2; kill++ {
		target := int64(users * kill / 3)
		require.Eventually(t, func() bool { return accepted.Load() >= target }, time.Minute, 5*time.Millisecond)
		dev.kill()
		dev = startDev(t, dir, cfgPath)
		api.set(dev.api)
		// The restarted worker is the same worker (its data directory's
		// worker id): it takes back the router lease the killed process
		// held at start, before it answers /healthz, instead of waiting up
		// to 12 s for it to run out; it resumes the stored windows then.
		require.Contains(t, dev.logs.String(), "took the lease", "the restarted worker did not take its lease back at start")
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if strings.Contains(dev.logs.String(), "resuming entry windows from the store") {
				resumed++
				break
			}
		}
	}
	require.NoError(t, <-sent)
	require.Positive(t, resumed, "no kill found an entry window open:\n%s", dev.logs)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "huabu.db")+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer db.Close()
	entered := func() (distinct, rows int) {
		err := db.QueryRow(`SELECT count(DISTINCT d.uid), count(*) FROM deliveries d JOIN runs r ON r.id = d.run_id
			WHERE r.canvas_id = 'every-order' AND d.step_id = 'thanks'`).Scan(&distinct, &rows)
		require.NoError(t, err)
		return distinct, rows
	}
	// Every window's run has ended: no run still to come could enter anyone twice.
	runsEnded := func() (runs, running int) {
		require.NoError(t, db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE state = 'running') FROM runs
			WHERE canvas_id = 'every-order'`).Scan(&runs, &running))
		return runs, running
	}
	require.Eventually(t, func() bool {
		d, _ := entered()
		_, running := runsEnded()
		return d == users && running == 0
	}, 90*time.Second, 200*time.Millisecond,
		"users who entered: %d of %d\n%s", func() int { d, _ := entered(); return d }(), users, dev.logs)
	distinct, rows := entered()
	require.Equal(t, users, distinct)
	require.Equal(t, users, rows, "a user entered more than one run")
	runs, _ := runsEnded()
	t.Logf("%d events, 2 kills (%d with windows open), %d runs, done in %s", users, resumed, runs, time.Since(start).Round(time.Millisecond))

	// The dead worker's activities were handed on after their heartbeat
	// timeout: none waited out a start-to-close timeout.
	var ids []string
	rs, err := db.Query(`SELECT workflow_id FROM runs WHERE canvas_id = 'every-order'`)
	require.NoError(t, err)
	for rs.Next() {
		var id string
		require.NoError(t, rs.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rs.Err())
	retries := dev.activityRetries(ids)
	t.Logf("activity attempts after a timeout, by type: %v", retries)
	require.Zero(t, retries[enumspb.TIMEOUT_TYPE_START_TO_CLOSE])
}
