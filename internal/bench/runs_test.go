package bench

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
)

// BenchmarkNamedRuns is what one run of 400 named users costs the whole
// embedded stack — the Temporal server, the worker, the store — as an entry
// window's run does (begin, enter, one push to the outbox, exit, finish):
// CPU µs of the process per run (getrusage; load-robust) and runs a second
// with 8 runs in flight (what the machine sustains sets the ceiling of
// event runs at 5,000 events/s).
//
//	go test ./internal/bench -run '^$' -bench NamedRuns -benchtime 100x -count 3
func BenchmarkNamedRuns(b *testing.B) {
	const users, inFlight = 400, 8
	ctx := context.Background()
	app, stop, err := startStack(ctx, EventOptions{}, map[string]string{"bench-runs.yaml": `
id: bench-runs
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: outbox, text: 你好}
`})
	require.NoError(b, err)
	defer stop()
	ids := make([]string, users)
	ups := make([]store.ProfileUpdate, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%04d", i)
		ups[i] = store.ProfileUpdate{ID: ids[i], Patch: []byte(`{"name":"王芳"}`)}
	}
	_, err = app.Store().UpsertProfiles(ctx, ups)
	require.NoError(b, err)
	run := func() error {
		started, err := app.StartRun(ctx, "bench-runs", ids)
		if err != nil {
			return err
		}
		_, err = app.WaitRun(ctx, started.WorkflowID)
		return err
	}
	require.NoError(b, run()) // warm: plan compiled, connections open
	cpu := func() time.Duration {
		var ru syscall.Rusage
		require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	began, cpu0 := time.Now(), cpu()
	b.ResetTimer()
	next := make(chan struct{})
	errs := make(chan error, inFlight)
	var wg sync.WaitGroup
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// After an error the worker still takes its share of next
			// (running nothing), so the sender never blocks on it.
			failed := false
			for range next {
				if failed {
					continue
				}
				if err := run(); err != nil {
					errs <- err // one per worker at most: errs holds inFlight
					failed = true
				}
			}
		}()
	}
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	b.StopTimer()
	close(errs)
	require.NoError(b, <-errs)
	b.ReportMetric(float64((cpu()-cpu0).Microseconds())/float64(b.N), "cpu-µs/run")
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "runs/s")
}
