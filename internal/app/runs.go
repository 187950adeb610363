package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// ErrUnknownCanvas means no deployed canvas has the id.
var ErrUnknownCanvas = errors.New("no deployed canvas with that id")

// StartRun starts a run of a canvas's current version now: for its whole
// audience, or for the named users only.
func (app *App) StartRun(ctx context.Context, canvasID string, userIDs []string) (server.RunStarted, error) {
	c, err := app.store.Canvas(ctx, canvasID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.Active) {
		return server.RunStarted{}, fmt.Errorf("%w: %q", ErrUnknownCanvas, canvasID)
	}
	if err != nil {
		return server.RunStarted{}, err
	}
	plan, err := canvases.UnmarshalPlan(c.Plan)
	if err != nil {
		return server.RunStarted{}, err
	}
	if plan.Trigger.Kind == canvases.TriggerEvent && len(userIDs) == 0 {
		// Its audience is who may enter when the event happens, not who
		// should get the message now: the purchase thank-you would go to
		// every customer who bought nothing.
		return server.RunStarted{}, fmt.Errorf("%w: %s starts when %s happens; a run now must name the users it is for (user_ids), or it would send to everyone in its audience",
			server.ErrInvalid, canvasID, plan.Trigger.Event.Event)
	}
	if err := app.mayStart(ctx, canvasID, c.PlanHash, true, int64(len(userIDs))); err != nil {
		return server.RunStarted{}, err
	}
	id := fmt.Sprintf("huabu-%s-manual-%d", canvasID, time.Now().UnixNano())
	// Eager, as event runs (ADR 045): this process's worker takes the
	// run's first workflow task from the start's answer.
	run, err := app.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: app.cfg.Temporal.TaskQueue, EnableEagerStart: true},
		workflows.RunName, workflows.RunInput{CanvasID: canvasID, PlanHash: c.PlanHash, Trigger: canvases.TriggerManual, UserIDs: userIDs})
	if err != nil {
		return server.RunStarted{}, err
	}
	detail := map[string]any{"workflow_id": run.GetID()}
	if userIDs != nil {
		detail["users"] = len(userIDs)
	}
	app.audit(ctx, "run", canvasID, c.PlanHash, detail)
	return server.RunStarted{WorkflowID: run.GetID(), Plan: c.PlanHash}, nil
}

// WaitRun waits for a run's workflow to finish and returns its result.
func (app *App) WaitRun(ctx context.Context, workflowID string) (workflows.RunResult, error) {
	var res workflows.RunResult
	err := app.client.GetWorkflow(ctx, workflowID, "").Get(ctx, &res)
	return res, err
}

// RunStatus reports a run by its number or its workflow id: the
// workflow's state, the cohorts at work and asleep, and every step's counts
// so far.
func (app *App) RunStatus(ctx context.Context, id string) (server.RunStatus, error) {
	run, err := app.runByID(ctx, id)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return server.RunStatus{}, err
	}
	workflowID := id
	if known {
		workflowID = run.TemporalWorkflowID()
	}
	st := server.RunStatus{WorkflowID: workflowID, Steps: []server.StepProgress{}}
	var waiting []workflows.Waiting
	desc, err := app.client.DescribeWorkflowExecution(ctx, workflowID, "")
	switch {
	case err != nil && !known:
		return server.RunStatus{}, err
	case err != nil:
		// Temporal no longer has it (retention): the store still does.
		st.Status = "Unknown"
		if run.State != "" {
			st.Status = strings.ToUpper(run.State[:1]) + run.State[1:]
		}
	default:
		st.Status = desc.WorkflowExecutionInfo.Status.String()
	}
	if st.Status == "Running" && err == nil {
		if v, err := app.client.QueryWorkflow(ctx, workflowID, "", workflows.StatusQuery); err == nil {
			var q workflows.Status
			if v.Get(&q) == nil {
				st.RunID, st.Stats, st.Active = q.RunID, q.Stats, q.Active
				if len(q.Waiting) > 0 {
					for i := range q.Waiting {
						q.Waiting[i].WakeAt, q.Waiting[i].Deadline = app.inZone(q.Waiting[i].WakeAt), app.inZone(q.Waiting[i].Deadline)
					}
					st.Waiting, waiting = q.Waiting, q.Waiting
				}
			}
		} else {
			st.Active = 1 // not answering yet: it is starting
		}
	}
	if st.Status == "Completed" && err == nil {
		var res workflows.RunResult
		if err := app.client.GetWorkflow(ctx, workflowID, "").Get(ctx, &res); err == nil {
			st.RunID, st.Stats = res.RunID, &res.Stats
		}
	}
	if !known && st.RunID > 0 {
		run, err = app.store.GetRun(ctx, st.RunID)
		known = err == nil
	}
	if known {
		st.RunID, st.Canvas = run.ID, run.CanvasID
		st.StartedAt, st.FinishedAt = app.inZonePtr(run.StartedAt), app.inZonePtr(run.FinishedAt)
		if st.Steps, err = app.stepProgress(ctx, run, waiting); err != nil {
			return server.RunStatus{}, err
		}
	}
	return st, nil
}

// Canvases lists deployed canvases for the API.
func (app *App) Canvases(ctx context.Context) ([]server.CanvasInfo, error) {
	list, err := app.store.Canvases(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]server.CanvasInfo, 0, len(list))
	for _, c := range list {
		p, err := canvases.UnmarshalPlan(c.Plan)
		if err != nil {
			return nil, err
		}
		info := server.CanvasInfo{ID: c.ID, Name: p.Name, Plan: p.ShortHash(), Trigger: p.Trigger.Kind, Active: c.Active,
			DeployedAt: app.inZone(c.DeployedAt), Source: app.displaySource(c.Source)}
		if info.Author, err = app.store.PlanAuthor(ctx, c.PlanHash); err != nil {
			return nil, err
		}
		var appr store.Approval
		if info.Approval, appr, err = app.approvalState(ctx, c.ID, p); err != nil {
			return nil, err
		}
		info.Approver = appr.Approver
		ctl, err := app.store.ControlOf(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		info.State = ctl.State
		if s := p.Trigger.Schedule; s != nil && s.Cron != "" {
			info.Schedule = s.Cron + " (" + s.Timezone + ")"
			if loc, err := canvases.LoadLocation(s.Timezone); err == nil {
				if sched, err := canvases.CronParser.Parse(s.Cron); err == nil {
					next := app.inZone(sched.Next(time.Now().In(loc)))
					info.NextRun = &next
				}
			}
		}
		if p.Trigger.Event != nil {
			info.Event = p.Trigger.Event.Event
		}
		out = append(out, info)
	}
	return out, nil
}

// Report builds a canvas report, its times in the config's zone and its
// push steps marked where they go to the outbox.
func (app *App) Report(ctx context.Context, canvasID string, runID int64) (*reports.Report, error) {
	rep, err := reports.Build(ctx, app.store, canvasID, runID)
	if err != nil {
		return nil, err
	}
	rep.MarkOutbox(app.cfg.ChannelProviders())
	for i := range rep.Runs {
		rep.Runs[i].StartedAt = app.inZone(rep.Runs[i].StartedAt)
		if rep.Runs[i].FinishedAt != nil {
			rep.Runs[i].FinishedAt = app.inZonePtr(*rep.Runs[i].FinishedAt)
		}
	}
	return rep, nil
}

// DeploySources compiles uploaded canvas files and deploys them.
func (app *App) DeploySources(ctx context.Context, files map[string][]byte) (server.DeployOutcome, error) {
	var compiled []canvases.File
	var problems canvases.Problems
	for path, src := range files {
		plan, probs := app.compiler.Compile(path, src)
		problems = append(problems, probs...)
		compiled = append(compiled, canvases.File{Path: path, Plan: plan, Problems: probs, Source: src})
	}
	problems.Sort()
	res, err := app.Deploy(ctx, compiled, problems, false)
	out := server.DeployOutcome{Problems: res.Problems}
	for _, d := range res.Canvases {
		out.Canvases = append(out.Canvases, server.DeployedCanvas{ID: d.ID, Plan: d.Plan, Changed: d.Changed, Schedule: d.Schedule, Approval: d.Approval})
	}
	if errors.Is(err, ErrInvalidCanvases) {
		return out, server.ErrInvalid
	}
	return out, err
}
