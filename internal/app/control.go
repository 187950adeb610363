package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// Pause, resume and stop a canvas. The state is in the store, where every
// worker's sends read it (internal/activities/control.go): paused, nothing is sent
// and cohorts hold where they are; resumed, messages held longer than
// policy.resume_grace are not sent (reason expired); stopped, nothing more
// is sent (reason stopped) and the canvas's running runs are cancelled.
// Schedules are paused while the canvas is paused or stopped; manual runs
// are refused; event-triggered runs of a paused canvas still start, so
// their users enter and wait with the rest until it is resumed.

// Pause pauses a canvas.
func (app *App) Pause(ctx context.Context, canvasID string) (server.Controlled, error) {
	return app.control(ctx, canvasID, store.CanvasPaused)
}

// Resume makes a paused or stopped canvas active again.
func (app *App) Resume(ctx context.Context, canvasID string) (server.Controlled, error) {
	return app.control(ctx, canvasID, store.CanvasActive)
}

// Stop stops a canvas: its running runs end.
func (app *App) Stop(ctx context.Context, canvasID string) (server.Controlled, error) {
	return app.control(ctx, canvasID, store.CanvasStopped)
}

func (app *App) control(ctx context.Context, canvasID, state string) (server.Controlled, error) {
	c, err := app.store.Canvas(ctx, canvasID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !c.Active {
		return server.Controlled{}, fmt.Errorf("%w: no deployed canvas %q", server.ErrNotFound, canvasID)
	}
	if err != nil {
		return server.Controlled{}, err
	}
	before, err := app.store.ControlOf(ctx, canvasID)
	if err != nil {
		return server.Controlled{}, err
	}
	if before.State == store.CanvasStopped && state == store.CanvasPaused {
		return server.Controlled{}, fmt.Errorf("%w: canvas %s is stopped; resume it first", server.ErrConflict, canvasID)
	}
	ctl, err := app.store.SetCanvasControl(ctx, canvasID, state, auth.ActorFrom(ctx).Name)
	if err != nil {
		return server.Controlled{}, err
	}
	out := server.Controlled{Canvas: canvasID, State: state, Was: before.State, Since: ctl.Since}
	if err := app.syncHold(ctx, canvasID); err != nil {
		return out, err
	}
	if state == store.CanvasStopped {
		if out.Cancelled, err = app.cancelRuns(ctx, canvasID); err != nil {
			return out, err
		}
	}
	action := map[string]string{store.CanvasPaused: "pause", store.CanvasActive: "resume", store.CanvasStopped: "stop"}[state]
	app.audit(ctx, action, canvasID, c.PlanHash, map[string]any{"was": before.State, "runs_cancelled": out.Cancelled})
	return out, nil
}

// cancelRuns ends the canvas's running runs and returns how many. Each
// run is told why (workflows.StopSignal, reason stopped) and cancelled: it
// ends at once, and every user it still held — asleep in a wait, waiting
// for an event, at a staff task, or in a step the cancellation interrupted
// — exits with reason stopped where they were. The run records itself as
// cancelled; once its workflow has closed it is marked stopped (waited for
// here up to stopWait, then in the background).
func (app *App) cancelRuns(ctx context.Context, canvasID string) (int, error) {
	runs, err := app.store.Runs(ctx, canvasID, 10000)
	if err != nil {
		return 0, err
	}
	actor := auth.ActorFrom(ctx).Name
	var stopping []store.Run
	for _, r := range runs {
		if r.State != store.RunRunning {
			continue
		}
		wf := r.TemporalWorkflowID()
		err := app.client.SignalWorkflow(ctx, wf, "", workflows.StopSignal, workflows.Stop{Reason: store.CanvasStopped, By: actor})
		if err == nil {
			err = app.client.CancelWorkflow(ctx, wf, "")
		}
		if isNotFound(err) {
			continue // it ended meanwhile
		}
		if err != nil {
			return len(stopping), fmt.Errorf("stopping run %d: %w", r.ID, err)
		}
		stopping = append(stopping, r)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		bg, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		for _, r := range stopping {
			app.markStopped(bg, r, actor)
		}
	}()
	select {
	case <-done:
	case <-time.After(stopWait):
	case <-ctx.Done():
	}
	return len(stopping), nil
}

// stopWait bounds how long a stop request waits for its runs to end.
const stopWait = 30 * time.Second

// markStopped waits for a stopped run's workflow to close, then records
// the run as stopped (it recorded itself cancelled).
func (app *App) markStopped(ctx context.Context, r store.Run, actor string) {
	_ = app.client.GetWorkflow(ctx, r.TemporalWorkflowID(), "").Get(ctx, nil) // cancelled: an error
	if ctx.Err() != nil {
		return
	}
	now, err := app.store.GetRun(ctx, r.ID)
	if err != nil || now.State != store.RunCancelled {
		return // failed on its own, or not recorded yet: leave it as it is
	}
	if err := app.store.FinishRun(ctx, r.ID, store.CanvasStopped, "stopped by "+actor); err != nil {
		app.log.Error("recording a stopped run", "run", r.ID, "err", err)
	}
}

// controlRefusal says why a canvas's control state refuses a run: manual
// runs need an active canvas; runs started otherwise (a schedule fired by
// hand, an event entry) only refuse a stopped one.
func (app *App) controlRefusal(ctx context.Context, canvasID string, manual bool) (string, error) {
	c, err := app.store.ControlOf(ctx, canvasID)
	if err != nil {
		return "", err
	}
	switch {
	case c.State == store.CanvasStopped:
		return fmt.Sprintf("canvas %s is stopped (by %s); `huabu resume %s` lets it run again", canvasID, c.Actor, canvasID), nil
	case c.State == store.CanvasPaused && manual:
		return fmt.Sprintf("canvas %s is paused (by %s); `huabu resume %s` first", canvasID, c.Actor, canvasID), nil
	}
	return "", nil
}
