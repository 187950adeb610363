package worker

import (
	"context"
	"fmt"

	"github.com/huabu/huabu/ingest"
	"github.com/huabu/huabu/store"
	"github.com/huabu/huabu/triggers"
)

// startRouter runs the event router: the event feed routes stored events
// through it, and its loop starts the runs of entry windows.
func (app *App) startRouter(ctx context.Context) error {
	app.router = triggers.New(triggers.Options{
		Store: app.store, Temporal: app.client, Compiler: app.compiler,
		TaskQueue: app.cfg.Temporal.TaskQueue, Logger: app.log.With("component", "router"),
		Window: app.cfg.Triggers.EntryWindow(),
		Paused: app.canvasPaused,
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

// canvasPaused tells the router whether a canvas is paused.
func (app *App) canvasPaused(ctx context.Context, canvasID string) (bool, error) {
	c, err := app.store.ControlOf(ctx, canvasID)
	return c.State == store.CanvasPaused, err
}

// EventSink is told about stored events (the ingestion API and the WeCom
// callback call it after each commit): the feed, which reads them from the
// store and routes them. It is set once Start has returned.
func (app *App) EventSink() ingest.Sink { return app.feed }
