package traits

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/store"
)

// t0 is the tests' "now" at the start: a fixed instant, so windows and day
// boundaries are deterministic.
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// clock is the store's clock in tests (the engine reads time only through
// the store), safe to move while the engine's loop runs.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a real SQLite store in a temp dir with a trait engine over it.
type env struct {
	t   testing.TB
	ctx context.Context
	st  *store.SQLite
	eng *Engine
	clk *clock
	cfg *config.Config
	seq *atomic.Int64
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB, cfgText string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	clk := &clock{now: t0}
	st.SetClock(clk.Now)
	e := &env{t: t, ctx: ctx, st: st, clk: clk, seq: new(atomic.Int64)}
	e.reconfigure(cfgText)
	return e
}

// reconfigure builds a new engine of another config over the same store.
func (e *env) reconfigure(cfgText string) {
	e.t.Helper()
	cfg, err := config.Parse("huabu.yaml", e.t.TempDir(), []byte(cfgText))
	require.NoError(e.t, err)
	e.cfg = cfg
	e.eng, err = New(cfg, e.st, quietLog())
	require.NoError(e.t, err)
}

// ev is one track call for ingest.
type ev struct {
	user  string
	name  string
	props map[string]any
	at    time.Time
}

func purchase(user string, amount float64, at time.Time) ev {
	return ev{user: user, name: "purchase", props: map[string]any{"amount": amount}, at: at}
}

// track stores events the way the ingestion API does: one store.Ingest
// call, users marked due in the same transaction.
func (e *env) track(evs ...ev) store.IngestResult {
	e.t.Helper()
	msgs := make([]store.Message, len(evs))
	for i, x := range evs {
		props, err := json.Marshal(x.props)
		require.NoError(e.t, err)
		if x.props == nil {
			props = []byte("{}")
		}
		msgs[i] = store.Message{Type: "track", MessageID: fmt.Sprintf("m%d", e.seq.Add(1)), UserID: x.user,
			Name: x.name, Properties: props, Timestamp: x.at}
	}
	res, err := e.st.Ingest(e.ctx, msgs, store.IngestOptions{Realtime: true, MarkDue: true})
	require.NoError(e.t, err)
	return res
}

// identify merges attributes into a profile, as POST /v1/identify does.
func (e *env) identify(user string, traits map[string]any) {
	e.t.Helper()
	traits["id"] = user
	props, err := json.Marshal(traits)
	require.NoError(e.t, err)
	_, err = e.st.Ingest(e.ctx, []store.Message{{Type: "identify", MessageID: fmt.Sprintf("m%d", e.seq.Add(1)),
		UserID: user, Properties: props, Timestamp: e.clk.Now()}}, store.IngestOptions{Realtime: true, MarkDue: true})
	require.NoError(e.t, err)
}

// refresh recomputes every user that is due, as one turn of the loop.
func (e *env) refresh() int {
	e.t.Helper()
	n, err := e.eng.RefreshDue(e.ctx)
	require.NoError(e.t, err)
	return n
}

func (e *env) rfm() {
	e.t.Helper()
	require.NoError(e.t, e.eng.RefreshRFM(e.ctx))
}

func (e *env) doc(user string) map[string]any {
	e.t.Helper()
	row, err := e.st.ProfileByID(e.ctx, user)
	require.NoError(e.t, err, user)
	var doc map[string]any
	require.NoError(e.t, json.Unmarshal(row.Doc, &doc))
	return doc
}

func (e *env) traits(user string) map[string]any {
	e.t.Helper()
	m, _ := e.doc(user)["traits"].(map[string]any)
	return m
}

func (e *env) tags(user string) []string {
	e.t.Helper()
	out := []string{}
	l, _ := e.doc(user)["tags"].([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func (e *env) scores(user string) map[string]any {
	e.t.Helper()
	m, _ := e.doc(user)["rfm"].(map[string]any)
	return m
}

// pending counts users that are dirty or due now.
func (e *env) pending() int64 {
	e.t.Helper()
	n, err := e.st.CountDue(e.ctx, e.clk.Now().UnixMilli())
	require.NoError(e.t, err)
	return n
}
