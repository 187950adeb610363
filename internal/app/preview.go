package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/preview"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// Knowing before sending: audience estimates of deployed canvases and of
// canvas sources, over this process's store and with its policy.

// PolicyOf is the sending policy of a config, as the worker's activities
// apply it (the simulation runs the same).
func PolicyOf(p config.PolicyConfig) activities.Policy { return policyOf(p) }

func (app *App) estimator() *estimate.Estimator {
	return &estimate.Estimator{Store: app.store, Compiler: app.compiler, Policy: app.acts, Consent: app.cfg.Policy.RequireConsent}
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

// Preview renders every message of a canvas for users (POST
// /api/v1/preview): a deployed canvas, or a canvas source checked as a
// deploy checks it.
func (app *App) Preview(ctx context.Context, req server.PreviewRequest) (*server.PreviewResult, canvases.Problems, error) {
	var p *canvases.Plan
	var problems canvases.Problems
	if req.Source != "" {
		if p, problems = app.compiler.Compile(req.File, []byte(req.Source)); problems.HasErrors() {
			return nil, problems, server.ErrInvalid
		}
	} else {
		var err error
		if p, err = app.deployedPlan(ctx, req.Canvas); err != nil {
			return nil, nil, err
		}
	}
	msgs, err := preview.Render(ctx, app.acts, app.store, p, req.Users)
	if err != nil {
		return nil, problems, usersError("users", err)
	}
	if msgs == nil {
		msgs = []preview.Message{}
	}
	return &server.PreviewResult{Canvas: p.ID, Plan: p.Hash, Messages: msgs}, problems, nil
}

// usersError names the field of users the store does not know.
func usersError(field string, err error) error {
	var unknown preview.ErrUnknownUsers
	if errors.As(err, &unknown) {
		return server.InField(field, fmt.Errorf("%w: %s", server.ErrNotFound, unknown.Error()))
	}
	return err
}

// TestSend sends one push step of a deployed canvas (a draft awaiting
// approval too) to test users through the real channel, marked [TEST]
// where the channel shows text, and records it in the audit log. It runs
// outside any run: no ledger row, no frequency-cap touch, so it is in no
// report, cap or quota. Opt-outs still apply.
func (app *App) TestSend(ctx context.Context, canvasID string, req server.TestSendRequest) (*server.TestSendResult, error) {
	p, err := app.deployedPlan(ctx, canvasID)
	if err != nil {
		return nil, err
	}
	step := p.Step(req.Step)
	switch {
	case step == nil:
		return nil, server.InField("step", fmt.Errorf("%w: canvas %s has no step %q", server.ErrNotFound, p.ID, req.Step))
	case step.Push == nil:
		return nil, server.InField("step", fmt.Errorf("%w: step %s is a %s step; only push steps send a message to test", server.ErrInvalid, req.Step, step.Kind))
	}
	to := req.To
	if len(to) == 0 {
		to = app.cfg.TestUsers
	}
	switch {
	case len(to) == 0:
		return nil, server.InField("to", fmt.Errorf("%w: name the test users (--to) or list them in test_users in the config", server.ErrInvalid))
	case len(to) > server.MaxTestRecipients:
		return nil, server.InField("to", fmt.Errorf("%w: at most %d recipients per test send", server.ErrInvalid, server.MaxTestRecipients))
	}
	sender := &preview.TestSender{Engine: app.acts, Store: app.store, Channels: app.channels}
	sent, err := sender.Send(ctx, p, req.Step, to)
	if err != nil {
		return nil, usersError("to", err)
	}
	outcomes := make(map[string]string, len(sent))
	for _, s := range sent {
		outcomes[s.User] = s.Outcome
	}
	app.audit(ctx, "test-send", p.ID, p.Hash, map[string]any{"step": req.Step, "to": to, "outcomes": outcomes})
	return &server.TestSendResult{Canvas: p.ID, Plan: p.Hash, Step: req.Step, Sent: sent}, nil
}
