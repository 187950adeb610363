package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/huabu/huabu/auth"
	"github.com/huabu/huabu/server"
	"github.com/huabu/huabu/store"
	"github.com/huabu/huabu/workflows"
)

// Pause, resume and stop a canvas. The state is in the store, where every
// worker's sends read it (activities/control.go): paused, nothing is sent
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

// cancelRuns ends the canvas's running runs and returns how many. The
// users still in them (cohorts waiting for a time or an event) exit with
// reason stopped; the run is recorded as stopped. Runs are terminated, not
// cancelled: the interpreter does not act on a cancellation yet.
// TODO(i12): once the interpreter handles cancellation (issue 11, defect
// 10), cancel and let the run record its own exits, in-flight cohorts too.
func (app *App) cancelRuns(ctx context.Context, canvasID string) (int, error) {
	runs, err := app.store.Runs(ctx, canvasID, 10000)
	if err != nil {
		return 0, err
	}
	actor := auth.ActorFrom(ctx).Name
	n := 0
	for _, r := range runs {
		if r.State != "running" {
			continue
		}
		wf, _, _ := strings.Cut(r.WorkflowID, "/") // stored as workflow id / run id
		var waiting []workflows.Waiting
		if v, err := app.client.QueryWorkflow(ctx, wf, "", workflows.StatusQuery); err == nil {
			var st workflows.Status
			if v.Get(&st) == nil {
				waiting = st.Waiting
			}
		}
		if err := app.client.TerminateWorkflow(ctx, wf, "", "canvas stopped by "+actor); err != nil && !isNotFound(err) {
			return n, fmt.Errorf("ending run %d: %w", r.ID, err)
		}
		for i, w := range waiting {
			step := w.Step
			if step == "" {
				step = "end"
			}
			// One row per waiting cohort; its id is not in the status, so
			// a negative index stands for it.
			if err := app.store.RecordCohortExit(ctx, r.ID, step, -int64(i+1), store.CanvasStopped, w.Users); err != nil {
				return n, err
			}
		}
		if err := app.store.FinishRun(ctx, r.ID, store.CanvasStopped, "stopped by "+actor); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
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
