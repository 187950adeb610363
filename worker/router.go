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

// EventSink is where stored events go: the router.
func (app *App) EventSink() ingest.Sink { return app.router }
