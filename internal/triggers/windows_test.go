package triggers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// runs is the router's Runs as Temporal answers: ids are unique for good.
type runs struct {
	mu      sync.Mutex
	started map[string]EventRun
	order   []string
}

func (r *runs) StartEventRun(ctx context.Context, run EventRun) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.started[run.WorkflowID]; ok {
		return ErrRunStarted
	}
	r.started[run.WorkflowID] = run
	r.order = append(r.order, run.WorkflowID)
	return nil
}

func (r *runs) SignalArrivals(context.Context, string) error { return nil }

func (r *runs) users() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for id, run := range r.started {
		out[id] = run.Users
	}
	return out
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type windowsFixture struct {
	t        *testing.T
	st       *store.SQLite
	comp     *canvases.Compiler
	temporal *runs
	clock    *clock
	nextID   int64
	uids     map[string]int64
}

func newWindowsFixture(t *testing.T) *windowsFixture {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	comp, err := canvases.NewCompiler(canvases.Options{})
	require.NoError(t, err)
	f := &windowsFixture{t: t, st: st, comp: comp, temporal: &runs{started: map[string]EventRun{}},
		clock: &clock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}, uids: map[string]int64{}}
	f.deploy("v1")
	return f
}

// deploy makes text the canvas's welcome text: a new plan version.
func (f *windowsFixture) deploy(text string) {
	f.t.Helper()
	plan, problems := f.comp.Compile("welcome.yaml", []byte(fmt.Sprintf(`
id: welcome
trigger: {event: {name: signup}}
entry: {reentry: always}
steps:
  - id: hello
    push: {channel: outbox, text: %q}
`, text)))
	require.False(f.t, problems.HasErrors(), problems.Error())
	_, err := f.st.SavePlan(context.Background(), plan.ID, plan.Hash, plan.JSON(), "welcome.yaml")
	require.NoError(f.t, err)
}

func (f *windowsFixture) router(maxUsers int) *Router {
	o := f.options()
	o.MaxUsersPerRun = maxUsers
	return f.loaded(o)
}

// options are the fixture's router options: its store, Temporal fake and
// clock, a one-second window.
func (f *windowsFixture) options() Options {
	return Options{Store: f.st, Runs: f.temporal, Compiler: f.comp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Window: time.Second, Now: f.clock.now}
}

// refreshed is a router with o that has read the deployed plans.
func (f *windowsFixture) refreshed(o Options) *Router {
	r := New(o)
	require.NoError(f.t, r.Refresh(context.Background()))
	return r
}

// loaded is a refreshed router that has also loaded the stored windows.
func (f *windowsFixture) loaded(o Options) *Router {
	r := f.refreshed(o)
	require.NoError(f.t, r.Load(context.Background()))
	return r
}

// signups makes events (ids in order, as the feed reads them).
func (f *windowsFixture) signups(users ...string) []ingest.Event {
	var out []ingest.Event
	for _, u := range users {
		if f.uids[u] == 0 {
			f.uids[u] = int64(len(f.uids) + 1)
		}
		f.nextID++
		out = append(out, ingest.Event{ID: f.nextID, UID: f.uids[u], UserID: u, Name: "signup", Timestamp: f.clock.now()})
	}
	return out
}

func TestEntryWindows(t *testing.T) {
	ctx := context.Background()

	t.Run("a window gathers for its time, once per user, and starts one run", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.router(0)
		first := f.signups("u1", "u2", "u1")
		require.NoError(t, r.Route(ctx, first))
		f.clock.advance(500 * time.Millisecond)
		require.NoError(t, r.Route(ctx, f.signups("u3")))
		require.Zero(t, r.StartWindows(ctx, false), "the window is still open")
		require.Equal(t, first[0].ID, r.PendingFrom())
		f.clock.advance(600 * time.Millisecond)
		require.Equal(t, 1, r.StartWindows(ctx, false))
		require.Equal(t, map[string][]string{fmt.Sprintf("huabu-welcome-event-%d", first[0].ID): {"u1", "u2", "u3"}}, f.temporal.users())
		require.Zero(t, r.PendingFrom())
		// The next entry opens a new window.
		later := f.signups("u1")
		require.NoError(t, r.Route(ctx, later))
		f.clock.advance(time.Second)
		require.Equal(t, 1, r.StartWindows(ctx, false))
		require.Equal(t, []string{"u1"}, f.temporal.users()[fmt.Sprintf("huabu-welcome-event-%d", later[0].ID)])
	})

	t.Run("a full window starts at once; the rest open the next", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.router(3)
		require.NoError(t, r.Route(ctx, f.signups("u1", "u2", "u3", "u4", "u5")))
		require.Equal(t, 1, r.StartWindows(ctx, false))
		f.clock.advance(time.Second)
		require.Equal(t, 1, r.StartWindows(ctx, false))
		got := f.temporal.users()
		require.Equal(t, []string{"u1", "u2", "u3"}, got["huabu-welcome-event-1"])
		require.Equal(t, []string{"u4", "u5"}, got["huabu-welcome-event-4"])
	})

	t.Run("a new plan version closes the window of the old one", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.router(0)
		require.NoError(t, r.Route(ctx, f.signups("u1")))
		f.deploy("v2")
		require.NoError(t, r.Refresh(ctx))
		require.NoError(t, r.Route(ctx, f.signups("u2")))
		require.Equal(t, 1, r.StartWindows(ctx, false), "the old version's window starts now")
		f.clock.advance(time.Second)
		require.Equal(t, 1, r.StartWindows(ctx, false))
		f.temporal.mu.Lock()
		defer f.temporal.mu.Unlock()
		require.NotEqual(t, f.temporal.started["huabu-welcome-event-1"].PlanHash, f.temporal.started["huabu-welcome-event-2"].PlanHash)
	})

	t.Run("a restarted router resumes an open window and regroups nothing", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.router(0)
		a := f.signups("u1", "u2")
		require.NoError(t, r.Route(ctx, a))
		f.clock.advance(time.Second)
		require.Equal(t, 1, r.StartWindows(ctx, false))
		b := f.signups("u3", "u1") // u1 again: a new window, since the first started
		require.NoError(t, r.Route(ctx, b))
		dup := f.signups("u3") // u3 twice in one window: one entry
		require.NoError(t, r.Route(ctx, dup))
		// The process dies here. The next one routes everything again
		// from before the first event (its saved cursor was old), in
		// other pages, and more signups arrive while the window is open.
		again := f.router(0)
		require.Equal(t, b[0].ID, again.PendingFrom(), "the open window is loaded from the store")
		all := append(append(append([]ingest.Event(nil), a...), b...), dup...)
		require.NoError(t, again.Route(ctx, all[:1]))
		require.NoError(t, again.Route(ctx, all[1:]))
		require.NoError(t, again.Route(ctx, f.signups("u4")))
		f.clock.advance(time.Second)
		require.Equal(t, 1, again.StartWindows(ctx, false))
		require.Equal(t, map[string][]string{
			"huabu-welcome-event-1": {"u1", "u2"},
			"huabu-welcome-event-3": {"u3", "u1", "u4"},
		}, f.temporal.users())
		require.Zero(t, again.StartWindows(ctx, true), "nothing left to start")

		// A third process after the window started: nothing at all.
		third := f.router(0)
		require.NoError(t, third.Route(ctx, all))
		require.Zero(t, third.PendingFrom())
		require.Zero(t, third.StartWindows(ctx, true))
		require.Len(t, f.temporal.users(), 2)
	})

	t.Run("a start lost between Temporal and the store is found already started", func(t *testing.T) {
		f := newWindowsFixture(t)
		r := f.router(0)
		require.NoError(t, r.Route(ctx, f.signups("u1")))
		ws, err := f.st.OpenWindows(ctx)
		require.NoError(t, err)
		require.Len(t, ws, 1)
		// Started in Temporal, then the process died before the store knew.
		require.NoError(t, f.temporal.StartEventRun(ctx, EventRun{WorkflowID: ws[0].WorkflowID, Users: []string{"u1"}}))
		again := f.router(0)
		f.clock.advance(time.Second)
		require.Equal(t, 1, again.StartWindows(ctx, false))
		ws, err = f.st.OpenWindows(ctx)
		require.NoError(t, err)
		require.Empty(t, ws)
		require.Len(t, f.temporal.users(), 1)
	})
}
