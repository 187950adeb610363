package worker

import (
	"context"

	"github.com/huabu/huabu/ingest"
	"github.com/huabu/huabu/triggers"
)

// startRouter runs the event router: the Sink stored events go to.
func (app *App) startRouter() {
	app.router = triggers.New(triggers.Options{
		Store: app.store, Temporal: app.client, Compiler: app.compiler,
		TaskQueue: app.cfg.Temporal.TaskQueue, Logger: app.log.With("component", "router"),
		Window: app.cfg.Triggers.EntryWindow(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		app.router.Run(ctx)
	}()
	app.stopRouter = func() {
		cancel()
		<-done
	}
}

// EventSink is told about stored events (the ingestion API and the WeCom
// callback call it after each commit): the feed, which reads them from the
// store and routes them. Before the feed starts, events go to the router
// directly.
func (app *App) EventSink() ingest.Sink {
	if app.feed != nil {
		return app.feed
	}
	return app.router
}
