package worker

import (
	"context"
	"fmt"

	"github.com/huabu/huabu/ingest"
	"github.com/huabu/huabu/triggers"
)

// startRouter runs the event router: the event feed routes stored events
// through it, and its loop starts the runs of entry windows.
func (app *App) startRouter(ctx context.Context) error {
	app.router = triggers.New(triggers.Options{
		Store: app.store, Temporal: app.client, Compiler: app.compiler,
		TaskQueue: app.cfg.Temporal.TaskQueue, Logger: app.log.With("component", "router"),
		Window: app.cfg.Triggers.EntryWindow(),
	})
	// Windows left by the last process start (or keep gathering) from
	// where it stopped.
	if err := app.router.Load(ctx); err != nil {
		return fmt.Errorf("entry windows: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		app.router.Run(runCtx)
	}()
	app.stopRouter = func() {
		cancel()
		<-done
	}
	return nil
}

// EventSink is told about stored events (the ingestion API and the WeCom
// callback call it after each commit): the feed, which reads them from the
// store and routes them. It is set once Start has returned.
func (app *App) EventSink() ingest.Sink { return app.feed }
