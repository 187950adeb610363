package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/auth"
	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/server"
	"github.com/huabu/huabu/store"
)

// Governance: who did what (the audit log), and which canvas versions may
// run (approval). Every admin action goes through here with the actor the
// API put in its context (auth.ActorFrom); what Huabu does on its own is
// the system actor's.

// audit appends an entry for what the context's actor did. A failure to
// record is logged, not returned: the action has happened.
func (app *App) audit(ctx context.Context, action, canvasID, planHash string, detail any) {
	a := auth.ActorFrom(ctx)
	e := store.AuditEntry{Actor: a.Name, Role: string(a.Role), Remote: a.Remote, Action: action, CanvasID: canvasID, PlanHash: planHash}
	if detail != nil {
		e.Detail, _ = json.Marshal(detail)
	}
	if _, err := app.store.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		app.log.Error("audit log: cannot record", "action", action, "canvas", canvasID, "actor", a.Name, "err", err)
	}
}

// Audit lists audit entries (GET /api/v1/audit).
func (app *App) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	return app.store.Audit(ctx, q)
}

// needsApproval reports whether a plan version must be approved before it
// runs, under policy.approval.
func (app *App) needsApproval(p *canvases.Plan) bool {
	pol := app.cfg.Policy.Approval
	if !pol.On() {
		return false
	}
	if len(pol.Channels) == 0 {
		return true
	}
	for _, s := range p.Steps {
		if s.Push == nil {
			continue
		}
		if slices.Contains(pol.Channels, s.Push.Channel) || s.Push.Fallback != nil && slices.Contains(pol.Channels, s.Push.Fallback.Channel) {
			return true
		}
	}
	return false
}

// approvalState says whether a canvas version may run as far as approval
// goes: "" (not required), "approved" or "awaiting approval".
func (app *App) approvalState(ctx context.Context, canvasID string, p *canvases.Plan) (string, store.Approval, error) {
	if !app.needsApproval(p) {
		return "", store.Approval{}, nil
	}
	a, err := app.store.ApprovalOf(ctx, canvasID, p.Hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return approvalAwaiting, a, nil
	case err != nil:
		return "", a, err
	}
	return approvalApproved, a, nil
}

const (
	approvalApproved = "approved"
	approvalAwaiting = "awaiting approval"
)

// notApproved is the error runs of an unapproved version get.
func notApproved(canvasID string, p *canvases.Plan) error {
	return fmt.Errorf("%w: canvas %s version %s is awaiting approval (policy.approval); an approver other than its author must run `huabu approve %s --plan %s`",
		server.ErrConflict, canvasID, p.ShortHash(), canvasID, p.ShortHash())
}

// MayStart is the run gate every run passes through (its first activity):
// manual, scheduled and event-triggered runs of a version that needs
// approval and has none do not start.
func (app *App) MayStart(ctx context.Context, canvasID, planHash string) error {
	return app.mayStart(ctx, canvasID, planHash, true)
}

func (app *App) mayStart(ctx context.Context, canvasID, planHash string, manual bool) error {
	raw, err := app.store.Plan(ctx, planHash)
	if err != nil {
		return fmt.Errorf("plan %s: %w", planHash, err)
	}
	p, err := canvases.UnmarshalPlan(raw)
	if err != nil {
		return err
	}
	state, _, err := app.approvalState(ctx, canvasID, p)
	if err != nil {
		return err
	}
	if state == approvalAwaiting {
		return notApproved(canvasID, p)
	}
	why, err := app.controlRefusal(ctx, canvasID, manual)
	if err != nil {
		return err
	}
	if why != "" {
		return fmt.Errorf("%w: %s", server.ErrConflict, why)
	}
	return nil
}

// RunRefusal is the run gate of activities.BeginRun: a refusal as its
// message, other failures as errors. Runs of a paused canvas that do not
// come through the API (event entries) start and hold with the rest.
func (app *App) RunRefusal(ctx context.Context, canvasID, planHash string) (string, error) {
	err := app.mayStart(ctx, canvasID, planHash, false)
	if errors.Is(err, server.ErrConflict) {
		return strings.TrimPrefix(err.Error(), server.ErrConflict.Error()+": "), nil
	}
	return "", err
}

// Approve records the context's actor's approval of a canvas version: the
// current one, or the one whose hash starts with plan. The author of the
// version may not approve it.
func (app *App) Approve(ctx context.Context, canvasID, plan string) (server.Approved, error) {
	actor := auth.ActorFrom(ctx)
	c, err := app.store.Canvas(ctx, canvasID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !c.Active {
		return server.Approved{}, fmt.Errorf("%w: no deployed canvas %q", server.ErrNotFound, canvasID)
	}
	if err != nil {
		return server.Approved{}, err
	}
	hash := c.PlanHash
	if plan != "" && !strings.HasPrefix(c.PlanHash, plan) {
		// Approving an older version is allowed (it may be deployed again),
		// as long as it is this canvas's.
		if hash, err = app.store.PlanHashOf(ctx, canvasID, plan); err != nil {
			return server.Approved{}, fmt.Errorf("%w: canvas %s has no version %s", server.ErrNotFound, canvasID, plan)
		}
	}
	author, err := app.store.PlanAuthor(ctx, hash)
	if err != nil {
		return server.Approved{}, err
	}
	a, err := app.store.Approve(ctx, canvasID, hash, actor.Name)
	if errors.Is(err, store.ErrSelfApproval) {
		return server.Approved{}, fmt.Errorf("%w: %s deployed version %.12s of %s and may not approve it; another approver must", server.ErrForbidden, actor.Name, hash, canvasID)
	}
	if err != nil {
		return server.Approved{}, err
	}
	out := server.Approved{Canvas: canvasID, Plan: hash[:min(12, len(hash))], Author: author, Approver: a.Approver, ApprovedAt: a.ApprovedAt, Current: hash == c.PlanHash}
	if a.Approver == actor.Name {
		app.audit(ctx, "approve", canvasID, hash, map[string]any{"author": author, "current": out.Current})
	}
	if out.Current {
		if err := app.syncHold(ctx, canvasID); err != nil {
			return out, err
		}
	}
	return out, nil
}

// holdReason says why a canvas's current version may not start runs now,
// or "".
func (app *App) holdReason(ctx context.Context, canvasID string, p *canvases.Plan) (string, error) {
	state, _, err := app.approvalState(ctx, canvasID, p)
	if err != nil {
		return "", err
	}
	if state == approvalAwaiting {
		return "version " + p.ShortHash() + " is awaiting approval", nil
	}
	c, err := app.store.ControlOf(ctx, canvasID)
	if err != nil {
		return "", err
	}
	if c.State != store.CanvasActive {
		return "canvas " + c.State + " by " + c.Actor, nil
	}
	return "", nil
}

// syncHold pauses or unpauses a canvas's schedule as holdReason says.
func (app *App) syncHold(ctx context.Context, canvasID string) error {
	c, err := app.store.Canvas(ctx, canvasID)
	if err != nil {
		return err
	}
	p, err := canvases.UnmarshalPlan(c.Plan)
	if err != nil {
		return err
	}
	why, err := app.holdReason(ctx, canvasID, p)
	if err != nil {
		return err
	}
	return app.holdSchedule(ctx, canvasID, why)
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// holdSchedule pauses a scheduled canvas's Temporal Schedule with a note
// saying why (or unpauses it when why is ""). Canvases without a schedule
// have nothing to hold.
func (app *App) holdSchedule(ctx context.Context, canvasID, why string) error {
	h := app.client.ScheduleClient().GetHandle(ctx, schedulePrefix+canvasID)
	desc, err := h.Describe(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	paused := desc.Schedule.State != nil && desc.Schedule.State.Paused
	switch {
	case why != "" && !paused:
		return h.Pause(ctx, client.SchedulePauseOptions{Note: why})
	case why == "" && paused:
		return h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "may run"})
	}
	return nil
}
