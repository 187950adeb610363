package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/console"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
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

// consoleSampleSize is how many recipients a step's sample page shows.
const consoleSampleSize = 20

// StepRecipients is a page of the users who reached a step in a run of a
// canvas (its newest run for runID 0), keyed reads only.
func (app *App) StepRecipients(ctx context.Context, canvasID string, runID int64, stepID, after string) (console.RecipientPage, error) {
	if runID == 0 {
		runs, err := app.store.Runs(ctx, canvasID, 1)
		if err != nil {
			return console.RecipientPage{}, err
		}
		if len(runs) == 0 {
			return console.RecipientPage{}, fmt.Errorf("%w: canvas %q has no run", server.ErrNotFound, canvasID)
		}
		runID = runs[0].ID
	} else if run, err := app.store.GetRun(ctx, runID); errors.Is(err, store.ErrNotFound) || (err == nil && run.CanvasID != canvasID) {
		return console.RecipientPage{}, fmt.Errorf("%w: canvas %q has no run %d", server.ErrNotFound, canvasID, runID)
	} else if err != nil {
		return console.RecipientPage{}, err
	}
	rs, next, err := app.store.StepRecipients(ctx, runID, stepID, after, consoleSampleSize)
	if errors.Is(err, store.ErrBadCursor) {
		return console.RecipientPage{}, fmt.Errorf("%w: after: %v", server.ErrInvalid, err)
	}
	for i := range rs {
		rs[i].At = app.inZone(rs[i].At)
	}
	return console.RecipientPage{RunID: runID, Recipients: rs, Next: next}, err
}

// consoleVersions bounds the deployments a canvas page lists.
const consoleVersions = 50

// CanvasVersions lists a canvas's deployments, newest first.
func (app *App) CanvasVersions(ctx context.Context, canvasID string) ([]store.CanvasVersion, error) {
	list, err := app.store.CanvasVersions(ctx, canvasID, consoleVersions)
	for i := range list {
		list[i].DeployedAt = app.inZone(list[i].DeployedAt)
	}
	return list, err
}

// CanvasVersion is one deployment of a canvas with its YAML.
func (app *App) CanvasVersion(ctx context.Context, canvasID string, id int64) (store.CanvasVersion, error) {
	v, err := app.store.CanvasVersion(ctx, canvasID, id)
	if errors.Is(err, store.ErrNotFound) {
		return v, fmt.Errorf("%w: canvas %q has no version %d", server.ErrNotFound, canvasID, id)
	}
	v.DeployedAt = app.inZone(v.DeployedAt)
	return v, err
}

// consoleStaffLines is how many open or overdue task lines a staff page shows.
const consoleStaffLines = 50

// StaffTasks is a page of the customers staff members still have to reach
// in a canvas's open and overdue tasks, and the reminders and escalations
// its tasks sent.
func (app *App) StaffTasks(ctx context.Context, canvasID string, runID int64, after string) (console.StaffTaskPage, error) {
	lines, next, err := app.store.StaffTaskLines(ctx, canvasID, runID, after, consoleStaffLines)
	if errors.Is(err, store.ErrBadCursor) {
		return console.StaffTaskPage{}, fmt.Errorf("%w: after: %v", server.ErrInvalid, err)
	}
	if err != nil {
		return console.StaffTaskPage{}, err
	}
	for i := range lines {
		l := &lines[i]
		l.CreatedAt, l.Deadline, l.NotifiedAt, l.EscalatedAt = app.inZone(l.CreatedAt), app.inZone(l.Deadline), app.inZone(l.NotifiedAt), app.inZone(l.EscalatedAt)
		for j := range l.Reminders {
			l.Reminders[j] = app.inZone(l.Reminders[j])
		}
	}
	follow, err := app.store.StaffFollowUpsOf(ctx, canvasID, runID)
	return console.StaffTaskPage{Lines: lines, Next: next, FollowUps: follow}, err
}
