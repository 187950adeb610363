package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/huabu/huabu/internal/acceptlog"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/traits"
)

// The audience-data wiring: the traits engine, the event feed from the
// store to the router, and the Segment-compatible ingestion API.

// startTraits builds the traits engine of the config and, when it has
// anything to compute, runs its loop until Close.
func (app *App) startTraits() error {
	eng, err := traits.New(app.cfg, app.store, app.log.With("component", "traits"))
	if err != nil {
		return fmt.Errorf("traits: %w", err)
	}
	if !eng.Enabled() {
		return nil
	}
	app.traits = eng
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Stored events first: while the accept log has a backlog, the
		// engine takes a fifth of the writer (ADR 037).
		eng.Run(ctx, traits.RunOptions{IngestBehind: app.ingestBehind})
	}()
	app.stopTraits = func() {
		cancel()
		<-done
	}
	return nil
}

// ingestAPI is the ingestion API in front of the accept log; the applier
// stores what it accepts and tells the feed and the traits engine. Traits is
// still set so accepted requests ask for their users' traits to be marked due.
func (app *App) ingestAPI(h *server.Handler) (*ingest.API, error) {
	schema, err := app.cfg.Schema()
	if err != nil {
		return nil, err
	}
	opts := ingest.APIOptions{
		Store: &ingest.Accepter{Log: app.acceptLog}, Validator: ingest.NewValidator(schema), WriteKeys: app.cfg.HTTP.WriteKeys,
		Logger: app.log.With("component", "ingest"), Metrics: h.Registry(), CORSOrigins: app.cfg.HTTP.CORSOrigins,
	}
	if rl := app.cfg.HTTP.RateLimit; rl != nil {
		opts.RatePerSecond, opts.RateBurst = rl.RequestsPerSecond, rl.Burst
	}
	if app.traits != nil {
		opts.Traits = app.traits
	}
	h.Registry().MustRegister(app.applier.Collectors()...)
	return ingest.NewAPI(opts), nil
}

// AcceptLogDir is where the accept log of a store lives: beside its file.
func AcceptLogDir(storePath string) string { return storePath + "-accept" }

// applyGather is how long the applier lets records gather after an idle
// moment (ADR 056). At 2,000 one-event requests a second it stored one
// transaction per accept-log sync — ~500 a second, each with its commit,
// its feed drain and its window write through the one writer, which was
// busy half the time. An entry window counts from the event's acceptance
// (ADR 054), so these milliseconds come out of the window's wait, not on
// top of the event's latency.
const applyGather = 10 * time.Millisecond

// startApplier opens the accept log and stores its records until Close:
// first what earlier runs accepted and did not store, then what the API
// appends. The traits engine and the event feed hear of each stored group.
func (app *App) startApplier(ctx context.Context, storePath string) error {
	l, err := acceptlog.Open(filepath.Join(AcceptLogDir(storePath), "log"), acceptlog.Options{MaxBacklog: int64(app.cfg.HTTP.IngestBacklogMB) << 20})
	if err != nil {
		return err
	}
	app.acceptLog = l
	app.acceptBacklog.Store(l)
	// One SQLite store has one accept log (beside its file); a PostgreSQL
	// store has one per worker, each with its own applied position.
	key := ingest.AppliedKey
	// While behind, an applier stores bigger groups (ADR 038). On
	// PostgreSQL too since ADR 053: its group holds the write lock only in
	// shared mode (ADR 039) — runs and sends go on beside it — and each
	// group's turn at the lock also waited behind an exclusive holder (the
	// traits engine) once, 44–64 ms a group; a grown group still holds the
	// lock no longer than behindGroupTime.
	behindGroup := ingest.BehindGroupMessages
	if app.store.Postgres() {
		key = ingest.AppliedKeyOf(app.id)
	}
	a, err := ingest.NewApplier(ctx, ingest.ApplierOptions{
		Log: l, Store: app.store, FailedDir: filepath.Join(AcceptLogDir(storePath), "failed"), Key: key, BehindGroup: behindGroup,
		Gather: applyGather,
		Logger: app.log.With("component", "applier"),
		Applied: func(results []store.IngestResult) {
			touched, events := false, false
			for _, r := range results {
				touched = touched || len(r.Touched) > 0
				events = events || len(r.Events) > 0
			}
			if touched && app.traits != nil {
				app.traits.Notify()
			}
			if events {
				app.EventSink().Events(context.Background(), nil)
			}
		},
	})
	if err != nil {
		return err
	}
	app.applier = a
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(runCtx)
	}()
	app.stopApplier = func() {
		// What was accepted is stored before the engine stops, if that is
		// quick; the rest is stored at the next start.
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.WaitApplied(wctx); err != nil {
			app.log.Warn("stopping with accepted requests not yet stored; they are stored at the next start", "backlog_bytes", l.Backlog())
		}
		wcancel()
		cancel()
		<-done
	}
	return nil
}

// ingestBehind reports whether accepted requests wait to be stored.
func (app *App) ingestBehind() bool {
	l := app.acceptBacklog.Load()
	return l != nil && l.Backlog() > 0
}

// WaitIngested waits until every request the API has accepted so far is
// in the store (tests and benchmarks; the API answers on acceptance).
func (app *App) WaitIngested(ctx context.Context) error {
	if app.applier == nil {
		return nil
	}
	return app.applier.WaitApplied(ctx)
}

// EventsRouted is the id of the last stored event the router has been given
// (benchmarks and tests watch it catch up).
func (app *App) EventsRouted() int64 {
	f := app.currentFeed()
	if f == nil {
		return 0
	}
	return f.Cursor()
}

// WaitTraits waits until the traits of every user touched so far (by
// requests accepted so far) are recomputed (at once when the config
// computes none).
func (app *App) WaitTraits(ctx context.Context) error {
	if app.traits == nil {
		return nil
	}
	if err := app.WaitIngested(ctx); err != nil {
		return err
	}
	return app.traits.WaitCurrent(ctx)
}
