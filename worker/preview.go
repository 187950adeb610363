package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/huabu/huabu/activities"
	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/config"
	"github.com/huabu/huabu/estimate"
	"github.com/huabu/huabu/ingest"
	"github.com/huabu/huabu/server"
	"github.com/huabu/huabu/store"
)

// Knowing before sending: audience estimates of deployed canvases and of
// canvas sources, over this process's store and with its policy.

// PolicyOf is the sending policy of a config, as the worker's activities
// apply it (the simulation runs the same).
func PolicyOf(p config.PolicyConfig) activities.Policy { return policyOf(p) }

func (app *App) estimator() *estimate.Estimator {
	return &estimate.Estimator{Store: app.store, Compiler: app.compiler, Policy: app.acts}
}

// deployedPlan is the current version of a deployed canvas.
func (app *App) deployedPlan(ctx context.Context, canvasID string) (*canvases.Plan, error) {
	c, err := app.store.Canvas(ctx, canvasID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.Active) {
		return nil, fmt.Errorf("%w: no deployed canvas %q", server.ErrNotFound, canvasID)
	}
	if err != nil {
		return nil, err
	}
	return canvases.UnmarshalPlan(c.Plan)
}

// Estimate estimates a deployed canvas (GET /api/v1/canvases/{id}/estimate).
func (app *App) Estimate(ctx context.Context, canvasID string, opts estimate.Options) (*estimate.Result, error) {
	p, err := app.deployedPlan(ctx, canvasID)
	if err != nil {
		return nil, err
	}
	return app.estimator().Estimate(ctx, p, opts)
}

// EstimateSource estimates a canvas that is not deployed (POST
// /api/v1/estimate): a file's YAML, checked like a deploy checks it. A
// canvas with errors is ErrInvalid with its problems.
func (app *App) EstimateSource(ctx context.Context, file string, src []byte, opts estimate.Options) (*estimate.Result, canvases.Problems, error) {
	p, problems := app.compiler.Compile(file, src)
	if problems.HasErrors() {
		return nil, problems, server.ErrInvalid
	}
	res, err := app.estimator().Estimate(ctx, p, opts)
	return res, problems, err
}

// EventsOf turns stored event rows into what the router takes, as the
// event feed does (the simulation routes the events it replays so).
func EventsOf(rows []store.EventRow) []ingest.Event { return toEvents(rows) }
