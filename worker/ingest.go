package worker

import (
	"context"
	"fmt"

	"github.com/huabu/huabu/ingest"
	"github.com/huabu/huabu/server"
	"github.com/huabu/huabu/traits"
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
		eng.Run(ctx, traits.RunOptions{})
	}()
	app.stopTraits = func() {
		cancel()
		<-done
	}
	return nil
}

// startFeed routes what was stored but not routed before this start (a
// crash between the two), then follows the store until Close.
func (app *App) startFeed(ctx context.Context) error {
	var tw traitWaiter
	if app.traits != nil {
		tw = app.traits
	}
	f := newEventFeed(app.store, app.router, tw, app.log.With("component", "feed"))
	if err := f.load(ctx); err != nil {
		return fmt.Errorf("router cursor: %w", err)
	}
	from := f.Cursor()
	n, err := f.drain(ctx)
	if err != nil {
		return fmt.Errorf("routing events stored before this start: %w", err)
	}
	if n > 0 {
		app.log.Warn("routed events stored before this start but not routed then", "events", n, "after", from)
	}
	f.save(ctx, false)
	app.feed = f
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(runCtx)
	}()
	app.stopFeed = func() {
		cancel()
		<-done
	}
	return nil
}

// ingestAPI is the ingestion API over the store, handing stored events to
// the feed and telling the traits engine about touched users.
func (app *App) ingestAPI(h *server.Handler) (*ingest.API, error) {
	schema, err := app.cfg.Schema()
	if err != nil {
		return nil, err
	}
	opts := ingest.APIOptions{
		Store: app.store, Validator: ingest.NewValidator(schema), WriteKeys: app.cfg.HTTP.WriteKeys,
		Logger: app.log.With("component", "ingest"), Metrics: h.Registry(),
	}
	if app.traits != nil {
		opts.Traits = app.traits
	}
	if app.feed != nil {
		opts.Sink = app.feed
	}
	return ingest.NewAPI(opts), nil
}

// EventsRouted is the id of the last stored event the router has been given
// (benchmarks and tests watch it catch up).
func (app *App) EventsRouted() int64 {
	if app.feed == nil {
		return 0
	}
	return app.feed.Cursor()
}

// WaitTraits waits until the traits of every user touched so far are
// recomputed (at once when the config computes none).
func (app *App) WaitTraits(ctx context.Context) error {
	if app.traits == nil {
		return nil
	}
	return app.traits.WaitCurrent(ctx)
}
