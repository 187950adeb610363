package triggers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/ingest"
)

// acceptedAgo is f.signups for events Huabu accepted ago before now.
func (f *windowsFixture) acceptedAgo(ago time.Duration, users ...string) []ingest.Event {
	evs := f.signups(users...)
	for i := range evs {
		evs[i].ReceivedAt = f.clock.now().Add(-ago)
	}
	return evs
}

// TestWindowsCloseAfterTheirFirstEventWasAccepted (ADR 054): a window
// closes Window after its first event was accepted, so the time the event
// took to be stored and reach the router is not added to its wait; an
// event that reaches the router later than Window less the floor, or
// accepted by a clock ahead of the router's, opens a whole window.
func TestWindowsCloseAfterTheirFirstEventWasAccepted(t *testing.T) {
	ctx := context.Background()

	t.Run("the time before the router counts against the window", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.router(0)
		first := f.acceptedAgo(300*time.Millisecond, "u1")
		accepted := first[0].ReceivedAt
		require.NoError(t, r.Route(ctx, first))
		f.clock.advance(400 * time.Millisecond)
		require.NoError(t, r.Route(ctx, f.acceptedAgo(10*time.Millisecond, "u2")))
		f.clock.advance(250 * time.Millisecond)
		require.Zero(t, r.StartWindows(ctx, false), "950 ms since the first event was accepted")
		f.clock.advance(50 * time.Millisecond)
		require.Equal(t, 1, r.StartWindows(ctx, false), "a second since the first event was accepted, 700 ms since the router saw it")
		wf := workflowID("welcome", first[0].ID)
		require.Equal(t, []string{"u1", "u2"}, f.temporal.users()[wf])
		require.True(t, accepted.Add(time.Second).Equal(f.closesAt(wf)), "stored closes_at is the first event's acceptance plus the window")
	})

	t.Run("a window gathers for an eighth of its time at least", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.router(0)
		opened := f.clock.now()
		first := f.acceptedAgo(870*time.Millisecond, "u1") // 130 ms of its window left: more than the floor of 125
		require.NoError(t, r.Route(ctx, first))
		require.True(t, opened.Add(130*time.Millisecond).Equal(f.closesAt(workflowID("welcome", first[0].ID))))
		f.clock.advance(time.Second)
		require.Equal(t, 1, r.StartWindows(ctx, false))

		opened = f.clock.now()
		late := f.acceptedAgo(880*time.Millisecond, "u2") // 120 ms left: under the floor, a backlog
		require.NoError(t, r.Route(ctx, late))
		require.True(t, opened.Add(time.Second).Equal(f.closesAt(workflowID("welcome", late[0].ID))), "a late event opens a whole window")
		f.clock.advance(time.Second)
		require.Equal(t, 1, r.StartWindows(ctx, false))

		opened = f.clock.now()
		ahead := f.acceptedAgo(-time.Minute, "u3") // another worker's clock, a minute ahead
		require.NoError(t, r.Route(ctx, ahead))
		require.True(t, opened.Add(time.Second).Equal(f.closesAt(workflowID("welcome", ahead[0].ID))), "a clock ahead of the router's does not lengthen the window")
	})
}

func TestClosesAt(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	w := 200 * time.Millisecond
	for _, c := range []struct {
		name     string
		received time.Time
		want     time.Time
	}{
		{"accepted just now", now, now.Add(w)},
		{"accepted 60 ms ago", now.Add(-60 * time.Millisecond), now.Add(140 * time.Millisecond)},
		{"exactly the floor left", now.Add(-175 * time.Millisecond), now.Add(25 * time.Millisecond)},
		{"less than the floor left", now.Add(-176 * time.Millisecond), now.Add(w)},
		{"long ago (a backlog)", now.Add(-time.Hour), now.Add(w)},
		{"unknown", time.Time{}, now.Add(w)},
		{"in the future", now.Add(time.Millisecond), now.Add(w)},
	} {
		require.True(t, c.want.Equal(closesAt(c.received, now, w)), "%s: got %s, want %s", c.name, closesAt(c.received, now, w), c.want)
	}
}

// TestBackPressuredWindowGathersItsFloorFromOpening (review-s9 M3): with
// back-pressure (ADR 035) a window may start after an eighth of its time;
// that eighth counts from when the router opened it, not from its first
// event's acceptance, which ADR 054's closing time counts from.
func TestBackPressuredWindowGathersItsFloorFromOpening(t *testing.T) {
	ctx := context.Background()
	f := newWindowsFixture(t)
	r := f.backPressured()
	first := f.acceptedAgo(300*time.Millisecond, "u1") // 700 ms of its 1 s window left
	require.NoError(t, r.Route(ctx, first))
	require.Zero(t, r.StartWindows(ctx, false), "opened this instant: it has gathered nothing yet")
	f.clock.advance(100 * time.Millisecond)
	require.Zero(t, r.StartWindows(ctx, false), "100 ms of the 125 ms floor")
	f.clock.advance(25 * time.Millisecond)
	require.Equal(t, 1, r.StartWindows(ctx, false), "the floor has passed and no run of the canvas is on its way")
}
