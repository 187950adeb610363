package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/outbound"
)

// TestWindowTimes: the event benchmark's breakdown reads each window's
// stages — opened, closes, started, its run begun, its first and last
// message — and a window whose run has not begun yet has zeros there.
func TestWindowTimes(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		closes := time.Now().Add(time.Second).Truncate(time.Millisecond)
		ids := saveTwoWindows(t, s, closes)
		require.NoError(t, s.MarkWindowStarted(ctx, ids[0], time.Time{}))
		run, err := s.BeginRun(ctx, "huabu-c-event-1/run-a", "c", "h", canvases.TriggerEvent)
		require.NoError(t, err)
		// A run of another window whose id starts the same way is not its.
		_, err = s.BeginRun(ctx, "huabu-c-event-10/run-b", "c", "h", canvases.TriggerEvent)
		require.NoError(t, err)
		at := time.Now().Truncate(time.Millisecond)
		var msgs []outbound.OutboxRecord
		for i := range 3 {
			msgs = append(msgs, outbound.OutboxRecord{CanvasID: "c", RunID: fmt.Sprint(run.ID), StepID: "hello", Channel: "outbox",
				Recipient: outbound.Recipient{UserID: "u1"}, At: at.Add(time.Duration(i) * time.Millisecond)})
		}
		require.NoError(t, s.WriteOutbox(ctx, msgs))

		times, err := s.WindowTimes(ctx, "c")
		require.NoError(t, err)
		require.Len(t, times, 2)
		w := times[0]
		require.Equal(t, 1, w.Users)
		require.Equal(t, closes.UnixMilli(), w.ClosesAt)
		require.NotZero(t, w.Created)
		require.NotZero(t, w.Started)
		require.Equal(t, run.StartedAt.UnixMilli(), w.RunBegun)
		require.Equal(t, at.UnixMilli(), w.FirstMessage)
		require.Equal(t, at.UnixMilli()+2, w.LastMessage)
		require.Equal(t, WindowTimes{Users: 1, Created: times[1].Created, ClosesAt: closes.UnixMilli()}, times[1], "not started: no run, no messages")
	})
}

// TestEarlyWindowClose (ADR 035): a window the router started before its
// time records when it closed; one started at or after its time keeps its
// closes_at. RunBegun finds a window's run by its workflow id, and not the
// run of another window whose id starts the same way.
func TestEarlyWindowClose(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		closes := time.Now().Add(time.Second).Truncate(time.Millisecond)
		ids := saveTwoWindows(t, s, closes)
		early := closes.Add(-800 * time.Millisecond)
		require.NoError(t, s.MarkWindowStarted(ctx, ids[0], early))
		require.NoError(t, s.MarkWindowStarted(ctx, ids[1], closes.Add(time.Second)))
		times, err := s.WindowTimes(ctx, "c")
		require.NoError(t, err)
		require.Len(t, times, 2)
		require.Equal(t, early.UnixMilli(), times[0].ClosesAt, "closed early")
		require.Equal(t, closes.UnixMilli(), times[1].ClosesAt, "closed at its time, started later")

		begun, err := s.RunBegun(ctx, "c", "huabu-c-event-1")
		require.NoError(t, err)
		require.False(t, begun)
		_, err = s.BeginRun(ctx, "huabu-c-event-10/run-b", "c", "h", canvases.TriggerEvent)
		require.NoError(t, err)
		begun, err = s.RunBegun(ctx, "c", "huabu-c-event-1")
		require.NoError(t, err)
		require.False(t, begun, "event-10's run is not event-1's")
		_, err = s.BeginRun(ctx, "huabu-c-event-1/run-a", "c", "h", canvases.TriggerEvent)
		require.NoError(t, err)
		begun, err = s.RunBegun(ctx, "c", "huabu-c-event-1")
		require.NoError(t, err)
		require.True(t, begun)
	})
}

// saveTwoWindows saves two windows of canvas c closing at closes, with one
// entry each (u1, u2; workflow ids huabu-c-event-1 and -2), and returns
// their ids.
func saveTwoWindows(t *testing.T, s *SQLite, closes time.Time) []int64 {
	t.Helper()
	var ids []int64
	for first := int64(1); first <= 2; first++ {
		got, err := s.SaveWindowEntries(context.Background(), []WindowWrite{{
			Window:  EntryWindow{CanvasID: "c", PlanHash: "h", FirstEvent: first, WorkflowID: fmt.Sprintf("huabu-c-event-%d", first), ClosesAt: closes},
			Entries: []WindowEntry{{UID: first, UserID: fmt.Sprint("u", first), EventID: first}},
		}})
		require.NoError(t, err)
		ids = append(ids, got[0])
	}
	return ids
}
