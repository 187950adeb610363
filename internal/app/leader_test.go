package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/store/storetest"
)

// partitionable is a store handle that can be cut off: every lease call
// fails, as when a worker loses the database or hangs.
type partitionable struct {
	*store.SQLite
	cut atomic.Bool
}

var errCut = errors.New("connection refused")

func (p *partitionable) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error) {
	if p.cut.Load() {
		return store.Lease{}, false, errCut
	}
	return p.SQLite.AcquireLease(ctx, name, holder, ttl)
}

func (p *partitionable) RenewLease(ctx context.Context, name, holder string, term int64, ttl time.Duration) (bool, error) {
	if p.cut.Load() {
		return false, errCut
	}
	return p.SQLite.RenewLease(ctx, name, holder, term, ttl)
}

// leaders records who leads; it fails the test when two lead at once.
type leaders struct {
	t       *testing.T
	mu      sync.Mutex
	current string
	terms   []int64
	changed chan struct{}
}

func (ls *leaders) lead(name string) func(ctx context.Context, term int64, now bool) (func(lost bool), error) {
	return func(ctx context.Context, term int64, now bool) (func(bool), error) {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if ls.current != "" {
			ls.t.Errorf("%s leads (term %d) while %s still leads", name, term, ls.current)
		}
		ls.current = name
		ls.terms = append(ls.terms, term)
		ls.changed <- struct{}{}
		return func(bool) {
			ls.mu.Lock()
			defer ls.mu.Unlock()
			ls.current = ""
			ls.changed <- struct{}{}
		}, nil
	}
}

func (ls *leaders) leader() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.current
}

// Two workers (two handles on one store file, each its own connections)
// contend for the router lease: one leads at a time; when the leader is cut
// off it stops before its lease expires and the other takes over once it
// has; when a leader stops gracefully the other takes over at its next try.
// Durations are a tenth of the real ones. On SQLite (one file) and
// PostgreSQL (one schema).
func TestOneRouterAtATime(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "huabu.db")
		oneRouterAtATime(t, func() (*store.SQLite, error) { return store.OpenSQLite(context.Background(), path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.PostgresDSN(t)
		oneRouterAtATime(t, func() (*store.SQLite, error) { return store.OpenPostgres(context.Background(), dsn) })
	})
}

func oneRouterAtATime(t *testing.T, openStore func() (*store.SQLite, error)) {
	open := func() *partitionable {
		s, err := openStore()
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return &partitionable{SQLite: s}
	}
	ls := &leaders{t: t, changed: make(chan struct{}, 16)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	type worker struct {
		st     *partitionable
		l      *leadership
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(name string) *worker {
		w := &worker{st: open(), done: make(chan struct{})}
		w.l = newLeadership(w.st, routerLease, holderID(), log, ls.lead(name))
		w.l.ttl, w.l.renew, w.l.stepDown = leaseTTL/10, leaseRenew/10, leaseStepDown/10
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel = cancel
		term, stop, err := w.l.tryOnce(ctx, true)
		require.NoError(t, err)
		go func() {
			defer close(w.done)
			w.l.run(ctx, term, stop)
		}()
		return w
	}
	waitFor := func(want string, within time.Duration) time.Duration {
		t.Helper()
		began := time.Now()
		deadline := time.After(within)
		for ls.leader() != want {
			select {
			case <-ls.changed:
			case <-deadline:
				t.Fatalf("leader is %q after %s, want %q", ls.leader(), within, want)
			}
		}
		return time.Since(began)
	}

	a := start("a")
	waitFor("a", time.Second)
	b := start("b")
	// b tries every renew interval for three lease lifetimes: a keeps it.
	for range 3 {
		l, ok, err := b.st.SQLite.AcquireLease(context.Background(), routerLease, "probe", time.Second)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, a.l.holder, l.Holder)
		time.Sleep(leaseTTL / 10)
	}

	// a loses the database: it stops leading (before its lease expires),
	// b takes over once the lease expired, in at most ttl + renew.
	a.st.cut.Store(true)
	took := waitFor("b", 30*leaseTTL/10)
	require.LessOrEqual(t, took, 3*(leaseTTL+leaseRenew)/10, "b took over in %s", took)
	t.Logf("b took over %s after a was cut off (lease %s)", took, leaseTTL/10)

	// a comes back: it does not lead while b does.
	a.st.cut.Store(false)
	l, _, err := a.st.LeaseOf(context.Background(), routerLease)
	require.NoError(t, err)
	require.Equal(t, b.l.holder, l.Holder)

	// b stops gracefully: it releases the lease, a takes it at its next try.
	b.cancel()
	<-b.done
	waitFor("a", 3*leaseRenew/10+time.Second)
	a.cancel()
	<-a.done
	ls.mu.Lock()
	defer ls.mu.Unlock()
	require.Equal(t, []int64{1, 2, 3}, ls.terms, "each holding is a new term")
}

// A canvas deployed through another worker (here: another handle on the
// store, as its Deploy writes it) is routed by the leading worker's router
// without a restart.
func TestLeaderRoutesCanvasesDeployedElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	ctx := context.Background()
	dir := t.TempDir()
	cfg := exampleConfig(t, dir, nil, nil, nil)
	app := startAppIn(t, cfg, dir)
	importExamples(t, app)
	require.True(t, app.Leading())

	other, err := store.OpenSQLite(ctx, StorePath(cfg, filepath.Join(dir, "data")))
	require.NoError(t, err)
	defer other.Close()
	plan, problems := app.Compiler().Compile("elsewhere.yaml", []byte(`
id: elsewhere
trigger: {event: {name: app_open}}
entry: {reentry: always}
steps:
  - id: hello
    push: {channel: outbox, text: 从别的节点部署的}
`))
	require.False(t, problems.HasErrors(), problems.Error())
	_, err = other.SavePlan(ctx, plan.ID, plan.Hash, plan.JSON(), "elsewhere.yaml")
	require.NoError(t, err)

	// Every app_open is tried until one reaches the new canvas: the router
	// sees the deploy at its next look at the store (deployPoll, 2 s), well
	// before its own periodic reload (30 s after it started).
	require.Eventually(t, func() bool {
		sendEvents(t, app, "app_open", nil, "u001")
		return outboxOf(t, app, "elsewhere", "hello")["u001"]
	}, 15*time.Second, 500*time.Millisecond)
}

// A worker SIGKILLed while it leads leaves its lease unexpired (up to
// leaseTTL). Restarted on the same data directory it is the same worker
// (workerIdentity) and takes its lease back at its first try instead of
// waiting for it to run out; a worker on another data directory still
// waits.
func TestRestartedWorkerTakesBackItsLease(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "huabu.db")
	dataA, dataB := t.TempDir(), t.TempDir()
	idA, err := workerIdentity(dataA)
	require.NoError(t, err)
	again, err := workerIdentity(dataA)
	require.NoError(t, err)
	require.Equal(t, idA, again, "one data directory, one worker id")
	idB, err := workerIdentity(dataB)
	require.NoError(t, err)
	require.NotEqual(t, idA, idB)

	ls := &leaders{t: t, changed: make(chan struct{}, 16)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	try := func(holder, name string) int64 {
		s, err := store.OpenSQLite(ctx, path)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		l := newLeadership(s, routerLease, holder, log, ls.lead(name))
		term, _, err := l.tryOnce(ctx, true)
		require.NoError(t, err)
		return term
	}
	require.NotZero(t, try(idA, "a"), "a leads")
	ls.mu.Lock()
	ls.current = "" // a is killed: no stop, no release; its lease runs on
	ls.mu.Unlock()

	require.Zero(t, try(idB, "b"), "the lease is a's until it expires")
	require.NotZero(t, try(idA, "a restarted"), "a, restarted, takes its own lease back at once")
	lease, ok, err := (func() (store.Lease, bool, error) {
		s, err := store.OpenSQLite(ctx, path)
		require.NoError(t, err)
		defer s.Close()
		return s.LeaseOf(ctx, routerLease)
	})()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, idA, lease.Holder)
}
