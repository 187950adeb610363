package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/version"
	"github.com/huabu/huabu/internal/workflows"
)

// What the admin API reads (server.Reader), with every time in the
// config's zone so that what the CLI prints carries it.

// zone is the config's time zone.
func (app *App) zone() *time.Location {
	if loc, err := canvases.LoadLocation(app.cfg.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

func (app *App) inZone(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.In(app.zone())
}

func (app *App) inZonePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	z := app.inZone(t)
	return &z
}

// Outbox lists what the outbox channel recorded, newest first.
func (app *App) Outbox(ctx context.Context, canvasID string, limit int) ([]store.OutboxMessage, error) {
	msgs, err := app.store.Outbox(ctx, canvasID, limit)
	for i := range msgs {
		msgs[i].CreatedAt = app.inZone(msgs[i].CreatedAt)
	}
	return msgs, err
}

// Runs lists runs, newest first: of one canvas, or of all.
func (app *App) Runs(ctx context.Context, canvasID string, limit int) ([]server.RunInfo, error) {
	var runs []store.Run
	var err error
	if canvasID == "" {
		runs, err = app.store.RecentRuns(ctx, limit)
	} else {
		if _, err := app.store.Canvas(ctx, canvasID); errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w %q", reports.ErrNoCanvas, canvasID)
		}
		runs, err = app.store.Runs(ctx, canvasID, limit)
	}
	if err != nil {
		return nil, err
	}
	out := make([]server.RunInfo, 0, len(runs))
	for _, r := range runs {
		out = append(out, app.runInfo(r))
	}
	return out, nil
}

func (app *App) runInfo(r store.Run) server.RunInfo {
	plan := r.PlanHash
	if len(plan) > 12 {
		plan = plan[:12]
	}
	return server.RunInfo{ID: r.ID, WorkflowID: r.TemporalWorkflowID(), Canvas: r.CanvasID, Plan: plan, Trigger: r.Trigger, State: r.State,
		Entered: r.Entered, StartedAt: app.inZone(r.StartedAt), FinishedAt: app.inZonePtr(r.FinishedAt), Error: r.Error}
}

// Status says which Huabu this is.
func (app *App) Status(ctx context.Context) (server.Status, error) {
	id, err := app.store.StoreID(ctx)
	if err != nil {
		return server.Status{}, err
	}
	temporal := app.TemporalAddress()
	if app.embedded != nil {
		temporal = "embedded " + temporal
	}
	return server.Status{Service: server.ServiceName, Version: version.String(), PID: os.Getpid(), StartedAt: app.inZone(app.startedAt),
		Timezone: app.cfg.Timezone, StoreID: id, Temporal: temporal}, nil
}

// runByID finds a run by its number or its workflow id.
func (app *App) runByID(ctx context.Context, id string) (store.Run, error) {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		r, err := app.store.GetRun(ctx, n)
		if errors.Is(err, store.ErrNotFound) {
			return r, fmt.Errorf("run %d not found", n)
		}
		return r, err
	}
	return app.store.RunByWorkflow(ctx, id)
}

// stepProgress is each step of a run's plan with its counts so far and
// how many users wait to reach it.
func (app *App) stepProgress(ctx context.Context, run store.Run, waiting []workflows.Waiting) ([]server.StepProgress, error) {
	rep, err := app.Report(ctx, run.CanvasID, run.ID)
	if err != nil {
		return nil, err
	}
	asleep := map[string]int64{}
	for _, w := range waiting {
		asleep[w.Step] += w.Users
	}
	out := make([]server.StepProgress, 0, len(rep.Steps))
	for _, s := range rep.Steps {
		out = append(out, server.StepProgress{StepReport: s, Waiting: asleep[s.StepID]})
	}
	return out, nil
}

// displaySource names a canvas file for the API without the server's
// directories: relative to the config's canvases directory.
func (app *App) displaySource(src string) string {
	if src == "" || !filepath.IsAbs(src) {
		return filepath.ToSlash(src)
	}
	for _, base := range []string{app.cfg.Path(app.cfg.Canvases), app.cfg.Dir} {
		if base == "" {
			continue
		}
		if rel, err := filepath.Rel(base, src); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.Base(src)
}
