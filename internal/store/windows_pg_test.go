package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEntryWindowLifecycle: a window is opened with its first users, more
// join it (a user already in it is not entered twice), it is listed open
// with its users until its run is marked started, and marking it twice is
// harmless. Both stores.
func TestEntryWindowLifecycle(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		closes := time.UnixMilli(time.Now().Add(time.Second).UnixMilli())
		ids, err := s.SaveWindowEntries(ctx, []WindowWrite{{
			Window:  EntryWindow{CanvasID: "c", PlanHash: "h", FirstEvent: 10, WorkflowID: "huabu-c-event-10", ClosesAt: closes},
			Entries: []WindowEntry{{UID: 1, UserID: "u1", EventID: 10}, {UID: 2, UserID: "u2", EventID: 11}},
		}})
		require.NoError(t, err)
		require.Len(t, ids, 1)
		_, err = s.SaveWindowEntries(ctx, []WindowWrite{{
			Window:  EntryWindow{ID: ids[0], CanvasID: "c"},
			Entries: []WindowEntry{{UID: 2, UserID: "u2", EventID: 12}, {UID: 3, UserID: "u3", EventID: 13}},
		}})
		require.NoError(t, err)
		open, err := s.OpenWindows(ctx)
		require.NoError(t, err)
		require.Len(t, open, 1)
		require.Equal(t, 3, open[0].Users)
		require.Equal(t, int64(13), open[0].LastEvent)
		require.Equal(t, []int64{1, 2, 3}, open[0].UIDs)
		users, err := s.WindowUsers(ctx, ids[0])
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"u1", "u2", "u3"}, users)

		require.NoError(t, s.MarkWindowStarted(ctx, ids[0], time.Time{}))
		require.NoError(t, s.MarkWindowStarted(ctx, ids[0], time.Time{}), "marking a started window again changes nothing")
		open, err = s.OpenWindows(ctx)
		require.NoError(t, err)
		require.Empty(t, open)
		_, err = s.SaveWindowEntries(ctx, []WindowWrite{{Window: EntryWindow{ID: ids[0], CanvasID: "c"}, Entries: []WindowEntry{{UID: 4, UserID: "u4", EventID: 14}}}})
		require.ErrorContains(t, err, "is started or gone", "a started window takes no more entries")
	})
}

// TestWindowWritesDoNotWaitForTheWriteLock: on PostgreSQL the router's
// window transactions take a lock of their own (ADR 028), so while another
// worker's applier, run or send holds the write lock, windows still open,
// fill and start. Before, each window's start queued behind every write
// transaction of every worker: with three workers' appliers, runs started
// seconds after their windows closed.
func TestWindowWritesDoNotWaitForTheWriteLock(t *testing.T) {
	s := openPostgres(t)
	ctx := context.Background()
	holder, err := s.w.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer holder.Rollback()
	require.NoError(t, s.lockWrites(ctx, holder))

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ids, err := s.SaveWindowEntries(wctx, []WindowWrite{{
		Window:  EntryWindow{CanvasID: "c", PlanHash: "h", FirstEvent: 1, WorkflowID: "huabu-c-event-1", ClosesAt: time.Now()},
		Entries: []WindowEntry{{UID: 1, UserID: "u1", EventID: 1}},
	}})
	require.NoError(t, err, "opening a window while the write lock is held")
	require.NoError(t, s.MarkWindowStarted(wctx, ids[0], time.Time{}), "starting a window while the write lock is held")
}
