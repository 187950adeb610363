package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// What the engine would do, without doing it: the audience estimate, the
// message preview and test sends (package preview, estimate) call these so
// that what they show is what Send does — the same recipient resolution,
// owner lookup, templates and policy — rather than a copy of it.

// Rendered is a push step's message for one user, as Send would hand it to
// a channel.
type Rendered struct {
	UID    int64
	UserID string
	// Channel is the channel it would go through: the step's, or its
	// fallback's when the user has no address on the step's channel.
	Channel   string
	Recipient channels.Recipient
	Message   *canvases.Message
	// Unsent says why nothing would be sent (no_address, no_owner,
	// render_error, ...); empty when it would be.
	Unsent string
}

// Render renders a push step of plan for the profiles the way Send prepares
// a page — opt-outs (suppression list, consent) included — and sends
// nothing. Quiet hours and caps are not applied (HeldBack says what they
// would do); a provider's own refusal cannot be known.
func (a *Activities) Render(ctx context.Context, plan *canvases.Plan, stepID string, rows []store.ProfileRow) ([]Rendered, error) {
	step := plan.Step(stepID)
	if step == nil || step.Push == nil {
		return nil, fmt.Errorf("canvas %s has no push step %q", plan.ID, stepID)
	}
	cp := &compiledPlan{plan: plan, templates: newTemplateCache()}
	s := &sender{a: a, cp: cp, in: SendInput{CanvasID: plan.ID, PlanHash: plan.Hash, StepID: stepID}, push: step.Push}
	users, owners, err := s.load(ctx, rows)
	if err != nil {
		return nil, err
	}
	uids := make([]int64, len(rows))
	ids := make(map[int64]string, len(rows))
	for i, r := range rows {
		uids[i], ids[r.UID] = r.UID, r.ID
	}
	out := make(map[int64]Rendered, len(rows))
	good, bad := s.prepare(step.Push.Channel, &step.Push.Message, users, owners, uids)
	// Opted out (the suppression list, consent), as Send finds them.
	good, optedOut, err := s.optOut(ctx, step.Push.Channel, good, users)
	if err != nil {
		return nil, err
	}
	bad = append(bad, optedOut...)
	for _, g := range good {
		out[g.uid] = Rendered{UID: g.uid, Channel: step.Push.Channel, Recipient: g.delivery.Recipient, Message: g.delivery.Message}
	}
	var fallback []int64
	for _, b := range bad {
		if fb := step.Push.Fallback; fb != nil && b.Reason == channels.ReasonNoAddress {
			fallback = append(fallback, b.UID)
			continue
		}
		out[b.UID] = Rendered{UID: b.UID, Channel: step.Push.Channel, Unsent: b.Reason}
	}
	if fb := step.Push.Fallback; fb != nil && len(fallback) > 0 {
		good, bad := s.prepare(fb.Channel, &fb.Message, users, owners, fallback)
		good, optedOut, err := s.optOut(ctx, fb.Channel, good, users)
		if err != nil {
			return nil, err
		}
		bad = append(bad, optedOut...)
		for _, g := range good {
			out[g.uid] = Rendered{UID: g.uid, Channel: fb.Channel, Recipient: g.delivery.Recipient, Message: g.delivery.Message}
		}
		for _, b := range bad {
			out[b.UID] = Rendered{UID: b.UID, Channel: fb.Channel, Unsent: b.Reason}
		}
	}
	list := make([]Rendered, 0, len(rows))
	for _, u := range uids {
		r := out[u]
		r.UserID = ids[u]
		list = append(list, r)
	}
	return list, nil
}

// Reachable reports why a user (a JSON-shaped profile with its "id") could
// not be reached on a channel when messages go to `to` (user, owner, ...),
// or "" when they could; owners are the staff directory entries of the
// user's owner and, for owner.leader, of the owner's leader.
func Reachable(channel, to string, user map[string]any, owners map[string]store.Staff) string {
	s := &sender{push: &canvases.Push{Channel: channel, To: to}}
	_, reason := s.recipient(channel, user, owners)
	return reason
}

// Verdict is the send-time policy's decision for one user: send later
// (quiet hours with action delay) or not at all (Suppress is the reason).
type Verdict struct {
	DeferUntil time.Time
	Suppress   string
}

// HeldBack applies the canvas's sending policy — quiet hours and frequency
// caps, as configured and overridden by the canvas — at now to profiles on a
// channel, as Send does for each page, and returns the users it would hold
// back. Messages to staff (to: owner, owner.leader) are exempt in Send, so
// callers ask only for messages to users.
func (a *Activities) HeldBack(ctx context.Context, plan *canvases.Plan, channel string, now time.Time, rows []store.ProfileRow) (map[int64]Verdict, error) {
	out := map[int64]Verdict{}
	if e := a.policyFor(plan); e.active() {
		vs, err := a.judge(ctx, e, channel, now, rows, nil)
		if err != nil {
			return nil, err
		}
		for u, v := range vs {
			out[u] = Verdict{DeferUntil: v.deferUntil, Suppress: v.suppress}
		}
	}
	// Opt-outs (the suppression list, consent) hold marketing back too.
	if plan.Policy.Kind == "transactional" {
		return out, nil
	}
	s := &sender{push: &canvases.Push{Channel: channel, To: canvases.ToUser}}
	cands := make([]optCandidate, 0, len(rows))
	for _, r := range rows {
		if _, held := out[r.UID]; held {
			continue
		}
		var doc map[string]any
		_ = json.Unmarshal(r.Doc, &doc)
		if doc == nil {
			doc = map[string]any{}
		}
		doc["id"] = r.ID
		rec, _ := s.recipient(channel, doc, nil)
		cands = append(cands, optCandidate{uid: r.UID, userID: r.ID, address: rec.Address, doc: doc})
	}
	reasons, err := a.optOutReasons(ctx, channel, cands)
	if err != nil {
		return nil, err
	}
	for u, why := range reasons {
		out[u] = Verdict{Suppress: why}
	}
	return out, nil
}

// RenderStaffTask renders a staff_task step's text for a staff member (the
// owner of the customers it goes to, or the staff member it asks), as the
// staff loop does.
func (a *Activities) RenderStaffTask(plan *canvases.Plan, stepID string, staff store.Staff) (*canvases.Message, error) {
	step := plan.Step(stepID)
	if step == nil || step.StaffTask == nil {
		return nil, fmt.Errorf("canvas %s has no staff_task step %q", plan.ID, stepID)
	}
	cp := &compiledPlan{plan: plan, templates: newTemplateCache()}
	t := store.StaffTask{StaffTaskKey: store.StaffTaskKey{StepID: stepID, Staff: staff.UserID}, Name: staff.Name, Grid: staff.Grid, Leader: staff.Leader}
	return a.staffText(cp, step.StaffTask, t)
}
