package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/triggers"
)

// startsRecorder is the router's runs as Temporal answers: workflow ids
// are unique for good (a finished run keeps its id), a start with a used id
// answers ErrRunStarted (AlreadyStarted, translated). It records the users of every run it started, and counts
// starts that reused an id with other users: AlreadyStarted hides them,
// so those users never enter.
type startsRecorder struct {
	mu       sync.Mutex
	runs     map[string][]string
	hidden   []string // users of a start whose id was taken by another group
	failNext int      // fail this many starts
	failed   int
}

func newStartsRecorder() *startsRecorder { return &startsRecorder{runs: map[string][]string{}} }

func (s *startsRecorder) StartEventRun(ctx context.Context, run triggers.EventRun) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		s.failed++
		return serviceerror.NewUnavailable("temporal is restarting")
	}
	if prev, ok := s.runs[run.WorkflowID]; ok {
		for _, u := range run.Users {
			if !slices.Contains(prev, u) {
				s.hidden = append(s.hidden, u)
			}
		}
		return fmt.Errorf("%w: %w", triggers.ErrRunStarted, serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "", ""))
	}
	s.runs[run.WorkflowID] = append([]string(nil), run.Users...)
	return nil
}

func (s *startsRecorder) SignalArrivals(ctx context.Context, workflowID string) error {
	return nil
}

// entries counts, per user, the runs they entered.
func (s *startsRecorder) entries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, users := range s.runs {
		for _, u := range users {
			out[u]++
		}
	}
	return out
}

// deadTemporal is the Temporal of a process that was killed: nothing it
// does reaches the server any more.
type deadTemporal struct{}

func (deadTemporal) StartEventRun(context.Context, triggers.EventRun) error {
	return errors.New("process killed")
}

func (deadTemporal) SignalArrivals(context.Context, string) error {
	return errors.New("process killed")
}

// switchable lets a test cut a router off from Temporal, as a SIGKILL does.
type switchable struct {
	mu   sync.Mutex
	live triggers.Runs
}

func (s *switchable) get() triggers.Runs { s.mu.Lock(); defer s.mu.Unlock(); return s.live }
func (s *switchable) kill()              { s.mu.Lock(); s.live = deadTemporal{}; s.mu.Unlock() }

func (s *switchable) StartEventRun(ctx context.Context, run triggers.EventRun) error {
	return s.get().StartEventRun(ctx, run)
}

func (s *switchable) SignalArrivals(ctx context.Context, workflowID string) error {
	return s.get().SignalArrivals(ctx, workflowID)
}

// routerProcess is the routing half of a Huabu process: a router running
// its loop and the feed that drives it, on a shared store.
type routerProcess struct {
	router   *triggers.Router
	feed     *eventFeed
	temporal *switchable
	stop     context.CancelFunc
	done     chan struct{}
}

func startRouting(t *testing.T, st *store.SQLite, comp *canvases.Compiler, temporal triggers.Runs) *routerProcess {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := &switchable{live: temporal}
	r := triggers.New(triggers.Options{Store: st, Runs: sw, Compiler: comp, Logger: log, Window: 30 * time.Millisecond})
	require.NoError(t, r.Refresh(context.Background()))
	require.NoError(t, r.Load(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	p := &routerProcess{router: r, temporal: sw, stop: cancel, done: make(chan struct{})}
	go func() { defer close(p.done); r.Run(ctx) }()
	p.feed = newEventFeed(st, r, nil, log)
	require.NoError(t, p.feed.load(context.Background()))
	t.Cleanup(p.crash)
	return p
}

// crash ends the process without any of its shutdown work: its Temporal is
// gone first, so nothing it still holds in memory gets out.
func (p *routerProcess) crash() {
	p.temporal.kill()
	p.stop()
	<-p.done
}

func (p *routerProcess) route(t *testing.T) {
	t.Helper()
	_, err := p.feed.drain(context.Background())
	require.NoError(t, err)
}

// purchases stores one purchase by each of users.
func purchases(t *testing.T, st *store.SQLite, users ...string) {
	t.Helper()
	var msgs []store.Message
	for _, u := range users {
		msgs = append(msgs, store.Message{UserID: u, Name: "purchase", Properties: []byte(`{"amount":900}`)})
	}
	storeTracks(t, st, true, msgs...)
}

func usersNamed(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// routingStore is a store with one event-triggered canvas deployed.
func routingStore(t *testing.T) (*store.SQLite, *canvases.Compiler) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	comp, err := canvases.NewCompiler(canvases.Options{})
	require.NoError(t, err)
	plan, problems := comp.Compile("every-purchase.yaml", []byte(`
id: every-purchase
trigger: {event: {name: purchase, when: 'event.amount >= 500'}}
entry: {reentry: always}
steps:
  - id: thanks
    push: {channel: outbox, text: 谢谢}
`))
	require.False(t, problems.HasErrors(), problems.Error())
	_, err = st.SavePlan(ctx, plan.ID, plan.Hash, plan.JSON(), "every-purchase.yaml")
	require.NoError(t, err)
	return st, comp
}

// TestCatchUpAfterACrashRegroupsNothing: events grouped into runs before a
// crash are grouped the same way when the restarted process routes them
// again from its saved cursor, so every purchase enters exactly one run —
// none is hidden behind an AlreadyStarted, none starts a second run.
func TestCatchUpAfterACrashRegroupsNothing(t *testing.T) {
	st, comp := routingStore(t)
	temporal := newStartsRecorder()
	first := startRouting(t, st, comp, temporal)

	// Two windows start; the periodic cursor save has not come round yet.
	early := usersNamed("a", 40)
	purchases(t, st, early[:20]...)
	first.route(t)
	require.Eventually(t, func() bool { return len(temporal.entries()) == 20 }, 5*time.Second, 5*time.Millisecond)
	purchases(t, st, early[20:]...)
	first.route(t)
	require.Eventually(t, func() bool { return len(temporal.entries()) == 40 }, 5*time.Second, 5*time.Millisecond)
	// A third window gathers, and the process dies before starting it.
	late := usersNamed("b", 30)
	purchases(t, st, late...)
	first.route(t)
	first.crash()
	require.Len(t, temporal.entries(), 40)

	second := startRouting(t, st, comp, temporal)
	second.route(t)
	everyone := append(append([]string(nil), early...), late...)
	require.Eventually(t, func() bool { return len(temporal.entries()) == len(everyone) }, 5*time.Second, 5*time.Millisecond,
		"users who never entered: %v", missing(temporal.entries(), everyone))
	second.crash()
	require.Empty(t, temporal.hidden, "users whose run id was taken by a differently grouped run")
	for _, u := range everyone {
		require.Equal(t, 1, temporal.entries()[u], "%s entered %d runs", u, temporal.entries()[u])
	}
}

// TestFailedStartIsRetried: a run Temporal refuses to start is started
// later, with every user of its window; the saved cursor stays before its
// events meanwhile.
func TestFailedStartIsRetried(t *testing.T) {
	st, comp := routingStore(t)
	temporal := newStartsRecorder()
	temporal.failNext = 3
	p := startRouting(t, st, comp, temporal)
	users := usersNamed("c", 25)
	purchases(t, st, users...)
	p.route(t)
	require.Eventually(t, func() bool {
		temporal.mu.Lock()
		defer temporal.mu.Unlock()
		return temporal.failed >= 1
	}, 5*time.Second, 5*time.Millisecond)
	p.feed.savedAt = time.Time{}
	p.feed.save(context.Background(), false)
	first, _, err := st.EventsToRoute(context.Background(), 0, 1, nil)
	require.NoError(t, err)
	require.Less(t, savedCursor(t, st), first[0].ID, "the cursor passed events whose run is not started")

	require.Eventually(t, func() bool { return len(temporal.entries()) == len(users) }, 20*time.Second, 10*time.Millisecond,
		"users who never entered: %v", missing(temporal.entries(), users))
	for _, u := range users {
		require.Equal(t, 1, temporal.entries()[u])
	}
	require.Eventually(t, func() bool { return p.router.PendingFrom() == 0 }, 5*time.Second, 5*time.Millisecond, "the start is recorded")
	p.feed.savedAt = time.Time{}
	p.feed.save(context.Background(), false)
	last, err := st.LastEventID(context.Background())
	require.NoError(t, err)
	require.Equal(t, last, savedCursor(t, st))
}

func missing(got map[string]int, want []string) []string {
	var out []string
	for _, u := range want {
		if got[u] == 0 {
			out = append(out, u)
		}
	}
	return out
}
