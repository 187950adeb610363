package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/console"
	"github.com/huabu/huabu/server"
	"github.com/huabu/huabu/store"
)

// withConsole serves the operator console's pages beside the admin API
// (at / of the admin listener), behind the same tokens.
func (app *App) withConsole(h *server.Handler) error {
	c, err := console.New(console.Options{Backend: app, Auth: app.authn, Log: app.log.With("component", "console"), Zone: app.zone()})
	if err != nil {
		return err
	}
	c.Register(h)
	return nil
}

// CanvasPlan is a version of a canvas, deployed or retired: the current
// one for plan "", else the one whose hash starts with plan.
func (app *App) CanvasPlan(ctx context.Context, canvasID, plan string) (*canvases.Plan, error) {
	c, err := app.store.Canvas(ctx, canvasID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no canvas %q", server.ErrNotFound, canvasID)
	}
	if err != nil {
		return nil, err
	}
	raw := c.Plan
	if plan != "" {
		hash, err := app.store.PlanHashOf(ctx, canvasID, plan)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: canvas %s has no version %s", server.ErrNotFound, canvasID, plan)
		}
		if err != nil {
			return nil, err
		}
		if raw, err = app.store.Plan(ctx, hash); err != nil {
			return nil, err
		}
	}
	return canvases.UnmarshalPlan(raw)
}
