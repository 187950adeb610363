package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
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
// runs, under policy.approval. Each of channels and above narrows it; a run
// that names its users (users > 0) counts those, others the estimate.
func (app *App) needsApproval(ctx context.Context, p *canvases.Plan, users int64, fresh bool) (bool, error) {
	pol := app.cfg.Policy.Approval
	if !pol.On() {
		return false, nil
	}
	if len(pol.Channels) > 0 && !sendsOn(p, pol.Channels) {
		return false, nil
	}
	if pol.Above <= 0 {
		return true, nil
	}
	if users > 0 {
		return users > pol.Above, nil
	}
	reach, err := app.reach(ctx, p, fresh)
	if err != nil {
		return false, err
	}
	return reach > pol.Above, nil
}

func sendsOn(p *canvases.Plan, chans []string) bool {
	for _, s := range p.Steps {
		if s.Push == nil {
			continue
		}
		if slices.Contains(chans, s.Push.Channel) || s.Push.Fallback != nil && slices.Contains(chans, s.Push.Fallback.Channel) {
			return true
		}
	}
	return false
}

// reachLife is how long an estimate decides policy.approval.above for a
// version's listing and its event-triggered runs; manual runs, schedules
// and deploys estimate afresh.
const reachLife = time.Minute

type reachEstimate struct {
	n  int64
	at time.Time
}

// reach is how many users a version's run would reach, by the audience
// estimate: its upper bound (n + margin), so a sampled estimate errs on
// the side of asking; for event triggers, those who would have entered
// over the estimate's trigger window (7 days).
func (app *App) reach(ctx context.Context, p *canvases.Plan, fresh bool) (int64, error) {
	app.reachMu.Lock()
	r, ok := app.reaches[p.Hash]
	app.reachMu.Unlock()
	if ok && !fresh && time.Since(r.at) < reachLife {
		return r.n, nil
	}
	res, err := app.estimator().Estimate(ctx, p, estimate.Options{Budget: 300 * time.Millisecond})
	if err != nil {
		return 0, fmt.Errorf("estimating %s for policy.approval.above: %w", p.ID, err)
	}
	c := res.Entering
	if p.Trigger.Kind == canvases.TriggerEvent && res.Event != nil {
		c = res.Event.Entering
	}
	n := c.N + c.Margin
	app.reachMu.Lock()
	if app.reaches == nil {
		app.reaches = map[string]reachEstimate{}
	}
	app.reaches[p.Hash] = reachEstimate{n: n, at: time.Now()}
	app.reachMu.Unlock()
	return n, nil
}

// approvalState says whether a canvas version may run as far as approval
// goes: "" (not required), "approved" or "awaiting approval".
func (app *App) approvalState(ctx context.Context, canvasID string, p *canvases.Plan) (string, store.Approval, error) {
	return app.approvalStateFor(ctx, canvasID, p, 0, false)
}

// approvalStateFor is approvalState for a run of users users (0: the
// audience), estimated afresh when fresh.
func (app *App) approvalStateFor(ctx context.Context, canvasID string, p *canvases.Plan, users int64, fresh bool) (string, store.Approval, error) {
	need, err := app.needsApproval(ctx, p, users, fresh)
	if err != nil || !need {
		return "", store.Approval{}, err
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

// mayStart is the run gate every run passes through (the API's manual
// runs, then every run's first activity): manual, scheduled and
// event-triggered runs of a version that needs approval and has none do
// not start. users is how many users the run names (0: its audience).
func (app *App) mayStart(ctx context.Context, canvasID, planHash string, manual bool, users int64) error {
	raw, err := app.store.Plan(ctx, planHash)
	if err != nil {
		return fmt.Errorf("plan %s: %w", planHash, err)
	}
	p, err := canvases.UnmarshalPlan(raw)
	if err != nil {
		return err
	}
	// Manual runs and schedules are rare: their reach is estimated afresh;
	// event-triggered runs (every entry window) use a recent estimate.
	fresh := manual || p.Trigger.Kind != canvases.TriggerEvent
	state, _, err := app.approvalStateFor(ctx, canvasID, p, users, fresh)
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
func (app *App) RunRefusal(ctx context.Context, canvasID, planHash string, users int64) (string, error) {
	err := app.mayStart(ctx, canvasID, planHash, false, users)
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
