package app

import (
	"context"
	"fmt"
	"time"

	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/triggers"
)

// startRouting routes events while this worker holds the router lease
// (internal/app/leader.go): it tries once now — a lone worker takes it at once
// and routes the events stored before this start before the API takes new
// ones — and then keeps holding it, or trying, until Close.
func (app *App) startRouting(ctx context.Context) error {
	app.leader = newLeadership(app.store, routerLease, app.id, app.log.With("component", "leader"), app.lead)
	runCtx, cancel := context.WithCancel(context.Background())
	term, stop, err := app.leader.tryOnce(runCtx, true)
	if err != nil {
		cancel()
		return fmt.Errorf("router: %w", err)
	}
	if term == 0 {
		app.log.Info("another worker routes events; this one takes over if it stops", "lease", routerLease)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		app.leader.run(runCtx, term, stop)
	}()
	app.stopRouting = func() {
		cancel()
		<-done
	}
	return nil
}

// lead is the leader's work: the router (its loop starts the runs of entry
// windows) and the feed that routes stored events through it, both resumed
// from the store — the windows a previous leader left and the events stored
// after its last saved cursor (routed again, they enter nobody twice: ADR
// 009). now: resume before returning (at start, before the API takes
// events); else in the background while the lease is renewed. The returned
// stop ends both; lost means another worker leads now, so the gathering
// windows are left to it instead of started.
func (app *App) lead(ctx context.Context, term int64, now bool) (func(lost bool), error) {
	router := triggers.New(triggers.Options{
		Store: app.store, Runs: temporalRuns{client: app.client, taskQueue: app.cfg.Temporal.TaskQueue},
		Compiler: app.compiler, Logger: app.log.With("component", "router"),
		Window: app.cfg.Triggers.EntryWindow(), BackPressure: app.cfg.Triggers.BackPressure,
		Paused: app.canvasPaused,
	})
	var tw traitWaiter
	if app.traits != nil {
		tw = app.traits
	}
	feed := newEventFeed(app.store, router, tw, app.log.With("component", "feed"))
	resume := func(ctx context.Context) error {
		if err := router.Load(ctx); err != nil {
			return fmt.Errorf("entry windows: %w", err)
		}
		if err := router.Refresh(ctx); err != nil {
			return fmt.Errorf("deployed canvases: %w", err)
		}
		if err := app.catchUp(ctx, feed); err != nil {
			return fmt.Errorf("router cursor: %w", err)
		}
		return nil
	}
	started := false // set before feedDone closes
	// publish makes the router this worker's (currentRouter).
	publish := func() {
		app.routingMu.Lock()
		app.router, app.feed = router, feed
		app.routingMu.Unlock()
		started = true
	}
	if now {
		if err := resume(ctx); err != nil {
			return nil, err
		}
		// Before returning: once Start returns, the worker that routes
		// has its router (a test read it nil here while the goroutine
		// below had not yet run).
		publish()
	}
	routerCtx, cancelRouter := context.WithCancelCause(context.WithoutCancel(ctx))
	feedCtx, cancelFeed := context.WithCancel(context.WithoutCancel(ctx))
	routerDone, feedDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(feedDone)
		for wait := time.Second; !now; wait = min(2*wait, 30*time.Second) {
			err := resume(feedCtx)
			if err == nil {
				break
			}
			if feedCtx.Err() != nil {
				close(routerDone)
				return
			}
			app.log.Error("resuming routing from the store; trying again", "term", term, "retry_in", wait, "err", err)
			select {
			case <-feedCtx.Done():
				close(routerDone)
				return
			case <-time.After(wait):
			}
		}
		if !now {
			publish()
		}
		go func() {
			defer close(routerDone)
			router.Run(routerCtx)
		}()
		// Joined before feedDone closes: a stopped router is never
		// refreshed by a deploy seen late.
		deploysDone, watchDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(deploysDone)
			app.followDeploys(feedCtx, router)
		}()
		// Events other workers store wake the feed when they commit
		// (PostgreSQL's NOTIFY), not at its next poll.
		go func() {
			defer close(watchDone)
			app.store.WatchEvents(feedCtx, func() { feed.Events(feedCtx, nil) })
		}()
		feed.run(feedCtx)
		<-deploysDone
		<-watchDone
	}()
	return func(lost bool) {
		cancelFeed()
		<-feedDone
		if !started {
			return
		}
		app.routingMu.Lock()
		app.router, app.feed = nil, nil
		app.routingMu.Unlock()
		if lost {
			cancelRouter(triggers.ErrHandedOver)
		} else {
			cancelRouter(nil) // starts the runs of entries still gathering
		}
		<-routerDone
		if !lost {
			// Up to the first window whose run could not be started (it
			// stays in the store and starts after the next start).
			feed.save(context.Background(), true)
		}
	}, nil
}

// deployPoll is how often the leading router looks for deploys made through
// other workers (their own Deploy refreshes only their router, if any).
const deployPoll = 2 * time.Second

// followDeploys refreshes the router when the store's deploy mark moves, so
// a canvas deployed through any worker is routed within deployPoll.
func (app *App) followDeploys(ctx context.Context, router interface{ Refresh(context.Context) error }) {
	mark := "" // refresh once at the first tick: a deploy since resume's Refresh is not missed
	tick := time.NewTicker(deployPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now, err := app.store.DeployMark(ctx)
		if err != nil || now == mark {
			continue
		}
		if err := router.Refresh(ctx); err != nil {
			app.log.Warn("router: reloading canvases deployed elsewhere", "err", err)
			continue
		}
		mark = now
	}
}

// catchUp loads the feed's cursor and routes what was stored after it.
func (app *App) catchUp(ctx context.Context, f *eventFeed) error {
	if err := f.load(ctx); err != nil {
		return err
	}
	from := f.Cursor()
	n, err := f.drain(ctx)
	if err != nil {
		// The feed's loop keeps trying; refusing to lead would not help.
		app.log.Error("routing events stored before this start; the feed keeps trying", "after", f.Cursor(), "err", err)
	}
	if n > 0 {
		app.log.Warn("routed events stored before this start but not routed then", "events", n, "after", from)
	}
	f.save(ctx, false)
	return nil
}

// currentRouter is the router while this worker leads, else nil.
func (app *App) currentRouter() *triggers.Router {
	app.routingMu.Lock()
	defer app.routingMu.Unlock()
	return app.router
}

func (app *App) currentFeed() *eventFeed {
	app.routingMu.Lock()
	defer app.routingMu.Unlock()
	return app.feed
}

// Leading reports whether this worker routes events now.
func (app *App) Leading() bool { return app.currentRouter() != nil }

// canvasPaused tells the router whether a canvas is paused.
func (app *App) canvasPaused(ctx context.Context, canvasID string) (bool, error) {
	c, err := app.store.ControlOf(ctx, canvasID)
	return c.State == store.CanvasPaused, err
}

// EventSink is told about stored events (the ingestion API and the WeCom
// callback call it after each commit): it pokes the feed when this worker
// leads. The leader of several workers polls the store every second for
// events the others stored.
func (app *App) EventSink() ingest.Sink { return feedPoker{app} }

type feedPoker struct{ app *App }

func (p feedPoker) Events(ctx context.Context, events []ingest.Event) {
	if f := p.app.currentFeed(); f != nil {
		f.Events(ctx, events)
	}
}
