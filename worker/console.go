package worker

import (
	"context"
	"encoding/json"
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

// consoleJourneyRuns bounds the runs a user page shows.
const consoleJourneyRuns = 20

// FindUser finds a user by user id, phone number or WeCom external userid.
func (app *App) FindUser(ctx context.Context, q string) (string, error) {
	if p, err := app.store.ProfileByID(ctx, q); err == nil {
		return p.ID, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	if p, err := app.store.ProfileByPhone(ctx, q); err == nil {
		return p.ID, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	id, err := app.store.CustomerByExternal(ctx, q)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: no user with id, phone or WeCom external id %q", server.ErrNotFound, q)
	}
	return id, err
}

// User is a user's profile, newest events and journey, times in the
// config's zone.
func (app *App) User(ctx context.Context, id string) (console.User, error) {
	p, err := app.store.ProfileByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return console.User{}, fmt.Errorf("%w: no user %q", server.ErrNotFound, id)
	}
	if err != nil {
		return console.User{}, err
	}
	u := console.User{ID: p.ID}
	if err := json.Unmarshal(p.Doc, &u.Doc); err != nil {
		return u, err
	}
	if u.Events, err = app.store.RecentUserEvents(ctx, p.UID, 50); err != nil {
		return u, err
	}
	for i := range u.Events {
		u.Events[i].Timestamp = app.inZone(u.Events[i].Timestamp)
	}
	if u.Journey, err = app.store.UserJourney(ctx, p.UID, consoleJourneyRuns); err != nil {
		return u, err
	}
	return u, nil
}

// Check compiles a canvas source with this Huabu's compiler (its profile
// schema and channels), as a deploy would, and deploys nothing.
func (app *App) Check(ctx context.Context, file string, src []byte) (*canvases.Plan, canvases.Problems) {
	return app.compiler.Compile(file, src)
}
