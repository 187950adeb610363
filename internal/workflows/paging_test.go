package workflows

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/store"
)

// peakHeap runs fn and returns the largest live heap seen while it ran,
// above what was live before, with the collector made eager so the number
// is what fn holds rather than garbage awaiting collection.
func peakHeap(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
					peak.Store(ms.HeapAlloc - base)
				}
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// TestLargeWaitIsCollectedInPages (issue 11, defect 9): the final
// collection of a 300,000-user wait with 150,000 arrivals, and the report's
// conversions over it, hold a page or so of users at a time, not the cohort.
func TestLargeWaitIsCollectedInPages(t *testing.T) {
	if testing.Short() {
		t.Skip("300,000 members")
	}
	const members, arrivals = 300000, 150000
	h := newHarness(t)
	ctx := context.Background()
	run, err := h.store.BeginRun(ctx, "wf/paged", "paged", "hash", "manual")
	require.NoError(t, err)
	waiting, err := h.store.CreateCohort(ctx, "paged/waiting", run.ID, "wait", 0, time.Time{})
	require.NoError(t, err)
	var pages []store.Page
	for p := 0; p < members/store.PageSize; p++ {
		uids := make([]int64, store.PageSize)
		for i := range uids {
			uids[i] = int64(p*store.PageSize + i + 1)
		}
		pages = append(pages, store.Page{No: int64(p), Members: uids})
	}
	require.NoError(t, h.store.WritePages(ctx, waiting.ID, pages))
	waiting, err = h.store.SealCohort(ctx, waiting.ID, int64(len(pages)))
	require.NoError(t, err)
	require.NoError(t, h.store.RegisterWait(ctx, store.Wait{CohortID: waiting.ID, RunID: run.ID, CanvasID: "paged", StepID: "wait", Event: "open", Deadline: time.Now()}))
	arrived := make([]int64, 0, arrivals)
	for u := int64(1); u <= members; u += 2 {
		arrived = append(arrived, u)
	}
	_, err = h.store.RecordArrivals(ctx, waiting.ID, arrived, time.Now())
	require.NoError(t, err)
	require.NoError(t, h.store.RecordConversions(ctx, run.ID, arrived, time.Now()))
	require.NoError(t, h.store.RecordStepEntry(ctx, run.ID, "wait", 0, waiting.ID, members))
	pages, arrived = nil, nil

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(h.acts)
	var got activities.Collected
	peak := peakHeap(func() {
		v, err := env.ExecuteActivity(h.acts.CollectArrivals, activities.CollectInput{
			StepInput: activities.StepInput{RunID: run.ID, StepID: "wait", Cohort: activities.CohortRef{ID: waiting.ID, Size: waiting.Size, PageSpan: waiting.PageSpan}},
			Seq:       1, Final: true,
		})
		require.NoError(t, err)
		require.NoError(t, v.Get(&got))
	})
	require.Equal(t, int64(arrivals), got.Arrived.Size)
	require.Equal(t, int64(members-arrivals), got.TimedOut.Size)
	t.Logf("final collection of %d members, %d arrivals: peak heap %d KiB", members, arrivals, peak>>10)
	require.Less(t, peak, uint64(5<<20), "the collection holds pages, not the cohort (all at once: 9 MiB)")

	in, err := h.store.InCohort(ctx, got.Arrived.ID, 299999)
	require.NoError(t, err)
	require.True(t, in, "the arrived cohort's pages are ordered like every cohort's")

	peak = peakHeap(func() {
		counts, converted, err := h.store.Counts(ctx, "paged", run.ID)
		require.NoError(t, err)
		require.Equal(t, int64(arrivals), converted)
		require.Equal(t, int64(arrivals), counts["wait"].Converted)
	})
	t.Logf("report over %d conversions: peak heap %d KiB", arrivals, peak>>10)
	require.Less(t, peak, uint64(5<<20), "the report reads a few pages at a time")
}
