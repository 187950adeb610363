package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/channels"
	"github.com/huabu/huabu/store"
)

// SendInput sends a push step's message to the pages [From, To) of a cohort.
type SendInput struct {
	RunID    int64     `json:"run_id"`
	CanvasID string    `json:"canvas_id"`
	PlanHash string    `json:"plan_hash"`
	StepID   string    `json:"step_id"`
	Cohort   CohortRef `json:"cohort"`
	From     int64     `json:"from"`
	To       int64     `json:"to"`
}

// SendResult counts what happened to the recipients of the pages.
type SendResult struct {
	Recipients int64 `json:"recipients"`
	Sent       int64 `json:"sent"`
	Failed     int64 `json:"failed"`
	Suppressed int64 `json:"suppressed"`
	Unknown    int64 `json:"unknown"`
	Skipped    int64 `json:"skipped"` // decided by an earlier attempt, or exited
}

func (r *SendResult) add(o SendResult) {
	r.Recipients += o.Recipients
	r.Sent += o.Sent
	r.Failed += o.Failed
	r.Suppressed += o.Suppressed
	r.Unknown += o.Unknown
	r.Skipped += o.Skipped
}

type sendCursor struct {
	NextPage int64      `json:"next_page"`
	Result   SendResult `json:"result"`
}

// Send delivers a push step to a range of cohort pages, through the ledger.
func (a *Activities) Send(ctx context.Context, in SendInput) (SendResult, error) {
	cp, err := a.compiled(ctx, in.PlanHash)
	if err != nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "PlanUnavailable", err)
	}
	step := cp.plan.Step(in.StepID)
	if step == nil || step.Push == nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("no push step "+in.StepID, "PlanMismatch", nil)
	}
	cur := sendCursor{NextPage: in.From}
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &cur)
	}
	info := activity.GetInfo(ctx)
	attempt := fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt)
	s := &sender{a: a, cp: cp, in: in, push: step.Push}
	for cur.NextPage < in.To {
		pages, err := a.Store.Pages(ctx, in.Cohort.ID, cur.NextPage, min(cur.NextPage+8, in.To))
		if err != nil {
			return cur.Result, err
		}
		if len(pages) == 0 {
			cur.NextPage = min(cur.NextPage+8, in.To)
			continue
		}
		for _, p := range pages {
			res, err := s.page(ctx, p, fmt.Sprintf("%s/%d", attempt, p.No))
			cur.Result.add(res)
			if err != nil {
				activity.RecordHeartbeat(ctx, cur)
				return cur.Result, err
			}
			cur.NextPage = p.No + 1
			activity.RecordHeartbeat(ctx, cur)
		}
	}
	return cur.Result, nil
}

// sender is one Send activity's state.
type sender struct {
	a    *Activities
	cp   *compiledPlan
	in   SendInput
	push *canvases.Push
}

// outgoing is one recipient's delivery on its way to a channel.
type outgoing struct {
	uid      int64
	delivery channels.Delivery
	key      string // content identity, for grouping
}

// page sends one page: claim ledger rows, render, group, send, settle.
func (s *sender) page(ctx context.Context, p store.Page, batch string) (SendResult, error) {
	var res SendResult
	members := p.Members
	if s.cp.exitEvents {
		exited, err := s.a.Store.ExitedAmong(ctx, s.in.RunID, members)
		if err != nil {
			return res, err
		}
		if len(exited) > 0 {
			kept := make([]int64, 0, len(members))
			for _, u := range members {
				if !exited[u] {
					kept = append(kept, u)
				}
			}
			res.Skipped += int64(len(members) - len(kept))
			members = kept
		}
	}
	if len(members) == 0 {
		return res, nil
	}
	claim, err := s.a.Store.ClaimDeliveries(ctx, s.in.RunID, s.in.StepID, s.push.Channel, batch, members)
	if err != nil {
		return res, err
	}
	res.Skipped += int64(len(claim.Done))
	if len(claim.Mine) == 0 {
		return res, nil
	}
	res.Recipients = int64(len(claim.Mine))
	rows, err := s.a.Store.Profiles(ctx, claim.Mine)
	if err != nil {
		return res, err
	}
	users, owners, err := s.load(ctx, rows)
	if err != nil {
		return res, err
	}
	var settle []store.Settlement
	var fallback []int64
	primary, bad := s.prepare(s.push.Channel, &s.push.Message, users, owners, claim.Mine)
	for _, b := range bad {
		if s.push.Fallback != nil && b.Reason == "no_address" {
			fallback = append(fallback, b.UID)
			continue
		}
		settle = append(settle, b)
	}
	out, retry := s.deliver(ctx, s.push.Channel, primary, batch)
	for _, st := range out {
		if s.push.Fallback != nil && st.State == store.DeliveryFailed && permanentReason(st.Reason) {
			fallback = append(fallback, st.UID)
			continue
		}
		settle = append(settle, st)
	}
	if len(fallback) > 0 {
		fb := s.push.Fallback
		fbOut, fbBad := s.prepare(fb.Channel, &fb.Message, users, owners, fallback)
		settle = append(settle, withChannel(fbBad, fb.Channel)...)
		sent, fbRetry := s.deliver(ctx, fb.Channel, fbOut, batch+"/fallback")
		settle = append(settle, withChannel(sent, fb.Channel)...)
		retry = errors.Join(retry, fbRetry)
	}
	if err := s.a.Store.SettleDeliveries(ctx, s.in.RunID, s.in.StepID, settle); err != nil {
		return res, err
	}
	for _, st := range settle {
		switch st.State {
		case store.DeliverySent:
			res.Sent++
		case store.DeliveryFailed:
			res.Failed++
		case store.DeliverySuppressed:
			res.Suppressed++
		case store.DeliveryUnknown:
			res.Unknown++
		}
	}
	return res, retry
}

func withChannel(sts []store.Settlement, ch string) []store.Settlement {
	for i := range sts {
		sts[i].Channel = ch
	}
	return sts
}

// permanentReason says whether a failure means this channel cannot reach the
// user, so a fallback channel should try.
func permanentReason(reason string) bool {
	switch reason {
	case "render_error", "invalid_template":
		return false
	}
	return true
}

// load decodes the page's user documents and looks up their owners.
func (s *sender) load(ctx context.Context, rows []store.ProfileRow) (map[int64]map[string]any, map[string]store.Staff, error) {
	users := make(map[int64]map[string]any, len(rows))
	var ownerIDs []string
	seen := map[string]bool{}
	for _, r := range rows {
		var doc map[string]any
		if err := json.Unmarshal(r.Doc, &doc); err != nil {
			doc = map[string]any{}
		}
		doc["id"] = r.ID
		users[r.UID] = doc
		if o, _ := doc["owner"].(string); o != "" && !seen[o] {
			seen[o] = true
			ownerIDs = append(ownerIDs, o)
		}
	}
	owners, err := s.a.Store.StaffByIDs(ctx, ownerIDs)
	if err != nil {
		return nil, nil, err
	}
	if s.push.To == canvases.ToOwnerLeader {
		var leaders []string
		for _, o := range owners {
			if o.Leader != "" && !seen[o.Leader] {
				seen[o.Leader] = true
				leaders = append(leaders, o.Leader)
			}
		}
		more, err := s.a.Store.StaffByIDs(ctx, leaders)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range more {
			owners[k] = v
		}
	}
	return users, owners, nil
}

// userAddress names, per catalogue channel, the profile attribute a user is
// reached at. It belongs to the engine, not the provider: the outbox records
// the same address the real provider would use.
var userAddress = map[string]string{
	"wecom.app":      "wecom_userid",
	"wecom.customer": "wecom_external_userid",
	"sms":            "phone",
	"push":           "push_alias",
	"email":          "email",
}

// prepare resolves each user's recipient and renders their message. Users
// who cannot be reached come back as suppressed settlements.
func (s *sender) prepare(channel string, msg *canvases.Message, users map[int64]map[string]any, owners map[string]store.Staff, uids []int64) ([]outgoing, []store.Settlement) {
	out := make([]outgoing, len(uids))
	bad := make([]store.Settlement, len(uids))
	ok := make([]bool, len(uids))
	personal := needsRendering(msg)
	env := s.a.Compiler.Env()
	var wg sync.WaitGroup
	per := (len(uids) + s.a.parallel() - 1) / s.a.parallel()
	for lo := 0; lo < len(uids); lo += per {
		hi := min(lo+per, len(uids))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &renderer{cache: s.cp.templates}
			for i := lo; i < hi; i++ {
				uid := uids[i]
				user := users[uid]
				if user == nil {
					bad[i] = store.Settlement{UID: uid, State: store.DeliverySuppressed, Reason: "no_profile"}
					continue
				}
				rec, reason := s.recipient(channel, user, owners)
				if reason != "" {
					bad[i] = store.Settlement{UID: uid, State: store.DeliverySuppressed, Reason: reason}
					continue
				}
				m := msg
				if personal {
					owner := owners[str(user["owner"])]
					r.data = map[string]any{
						"user":  env.Normalize("user", user),
						"owner": env.Normalize("owner", staffDoc(owner)),
					}
					r.err = nil
					rendered, err := r.message(msg)
					if err != nil {
						bad[i] = store.Settlement{UID: uid, State: store.DeliveryFailed, Reason: "render_error"}
						continue
					}
					m = rendered
				}
				out[i] = outgoing{uid: uid, delivery: channels.Delivery{Recipient: rec, Message: m}}
				if personal {
					out[i].key = contentKey(m)
				}
				ok[i] = true
			}
		}()
	}
	wg.Wait()
	var good []outgoing
	var fails []store.Settlement
	for i := range uids {
		if ok[i] {
			good = append(good, out[i])
		} else {
			fails = append(fails, bad[i])
		}
	}
	return good, fails
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func staffDoc(m store.Staff) map[string]any {
	return map[string]any{"userid": m.UserID, "name": m.Name, "grid": m.Grid, "leader": m.Leader}
}

func contentKey(m *canvases.Message) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// recipient resolves who a user's message goes to on a channel.
func (s *sender) recipient(channel string, user map[string]any, owners map[string]store.Staff) (channels.Recipient, string) {
	rec := channels.Recipient{UserID: str(user["id"])}
	switch s.push.To {
	case canvases.ToOwner, canvases.ToOwnerLeader:
		owner := str(user["owner"])
		if owner == "" {
			return rec, "no_owner"
		}
		staffID := owner
		if s.push.To == canvases.ToOwnerLeader {
			staffID = owners[owner].Leader
			if staffID == "" {
				return rec, "no_leader"
			}
		}
		rec.UserID, rec.Address = staffID, staffID
		return rec, ""
	}
	switch channel {
	case "wecom.customer":
		rec.Address, rec.Sender = str(user["wecom_external_userid"]), str(user["owner"])
		if rec.Sender == "" {
			return rec, "no_owner"
		}
	case "wecom.group":
		rec.Address, rec.Sender = str(user["owner"]), str(user["owner"])
	case "push":
		rec.Address = str(user["push_alias"])
		if rec.Address == "" {
			rec.Address = str(user["push_registration_id"])
		}
	case "webhook", "outbox":
		rec.Address = rec.UserID
	default:
		rec.Address = str(user[userAddress[channel]])
	}
	if rec.Address == "" {
		return rec, "no_address"
	}
	return rec, ""
}

// deliver groups deliveries into batches the channel accepts and sends them,
// a few at a time. It returns a settlement per delivery it decided, and a
// retryable error when a batch must be tried again (its rows are released).
func (s *sender) deliver(ctx context.Context, channel string, out []outgoing, batch string) ([]store.Settlement, error) {
	if len(out) == 0 {
		return nil, nil
	}
	ch, ok := s.a.Channels.Get(channel)
	if !ok {
		sts := make([]store.Settlement, len(out))
		for i, o := range out {
			sts[i] = store.Settlement{UID: o.uid, State: store.DeliveryFailed, Reason: "no_channel"}
		}
		return sts, nil
	}
	batches := group(ch.Spec(), out)
	results := make([][]store.Settlement, len(batches))
	errs := make([]error, len(batches))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i], errs[i] = s.sendBatch(ctx, ch, b, fmt.Sprintf("%s/%d", batch, i))
		}()
	}
	wg.Wait()
	var all []store.Settlement
	for _, r := range results {
		all = append(all, r...)
	}
	return all, errors.Join(errs...)
}

// group splits deliveries into batches that fit a channel's spec: same
// sender where required, identical content where the channel groups it.
func group(spec channels.Spec, out []outgoing) [][]outgoing {
	max := spec.MaxRecipients
	if max <= 0 {
		max = 1
	}
	type gkey struct{ sender, content string }
	index := map[gkey]int{}
	var groups [][]outgoing
	for _, o := range out {
		k := gkey{}
		if spec.SameSender {
			k.sender = o.delivery.Recipient.Sender
		}
		if spec.Groupable {
			k.content = o.key
		}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], o)
	}
	var batches [][]outgoing
	for _, g := range groups {
		for start := 0; start < len(g); start += max {
			batches = append(batches, g[start:min(start+max, len(g))])
		}
	}
	return batches
}

func (s *sender) sendBatch(ctx context.Context, ch channels.Channel, b []outgoing, key string) ([]store.Settlement, error) {
	deliveries := make([]channels.Delivery, len(b))
	for i, o := range b {
		deliveries[i] = o.delivery
	}
	outcomes, err := ch.Send(ctx, channels.Batch{
		Key: key, CanvasID: s.in.CanvasID, RunID: fmt.Sprint(s.in.RunID), StepID: s.in.StepID, Deliveries: deliveries,
	})
	sts := make([]store.Settlement, len(b))
	if err != nil {
		ce := channels.Classify(err)
		switch ce.Class {
		case channels.RetryLater, channels.RetryNow:
			uids := make([]int64, len(b))
			for i, o := range b {
				uids[i] = o.uid
			}
			// Certainly not sent: free the rows so the retry claims them.
			if rerr := s.a.Store.ReleaseDeliveries(ctx, s.in.RunID, s.in.StepID, batchOf(key), uids); rerr != nil {
				return nil, rerr
			}
			var delay time.Duration
			if ce.Class == channels.RetryLater {
				delay = ce.RetryAfter
			}
			return nil, temporal.NewApplicationErrorWithOptions(ce.Error(), string(ce.Class), temporal.ApplicationErrorOptions{NextRetryDelay: delay})
		case channels.Ambiguous:
			for i, o := range b {
				sts[i] = store.Settlement{UID: o.uid, State: store.DeliveryUnknown, Reason: ce.Reason}
			}
		default:
			for i, o := range b {
				sts[i] = store.Settlement{UID: o.uid, State: store.DeliveryFailed, Reason: ce.Reason}
			}
		}
		return sts, nil
	}
	for i, o := range b {
		var oc channels.Outcome
		if i < len(outcomes) {
			oc = outcomes[i]
		} else {
			oc = channels.Outcome{Status: channels.Unknown, Reason: "no_outcome"}
		}
		st := store.Settlement{UID: o.uid, Reason: oc.Reason, ProviderRef: oc.ProviderRef}
		switch oc.Status {
		case channels.Sent:
			st.State = store.DeliverySent
		case channels.Failed:
			st.State = store.DeliveryFailed
			if oc.Class == channels.Permanent && (oc.Reason == "unsubscribed" || oc.Reason == "blacklisted") {
				st.State = store.DeliverySuppressed
			}
		default:
			st.State = store.DeliveryUnknown
		}
		sts[i] = st
	}
	return sts, nil
}

// batchOf recovers the ledger batch id (the page's) from a send key, which
// adds the group index and a fallback marker.
func batchOf(key string) string {
	// key = attempt/page[/fallback]/group
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			key = key[:i]
			break
		}
	}
	if len(key) > len("/fallback") && key[len(key)-len("/fallback"):] == "/fallback" {
		key = key[:len(key)-len("/fallback")]
	}
	return key
}

// SendOneInput sends a push step to one user.
type SendOneInput struct {
	RunID    int64  `json:"run_id"`
	CanvasID string `json:"canvas_id"`
	PlanHash string `json:"plan_hash"`
	StepID   string `json:"step_id"`
	UID      int64  `json:"uid"`
}

// SendOne is Send for a single user, for the per-user workflow comparison.
func (a *Activities) SendOne(ctx context.Context, in SendOneInput) (SendResult, error) {
	cp, err := a.compiled(ctx, in.PlanHash)
	if err != nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "PlanUnavailable", err)
	}
	step := cp.plan.Step(in.StepID)
	if step == nil || step.Push == nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("no push step "+in.StepID, "PlanMismatch", nil)
	}
	info := activity.GetInfo(ctx)
	s := &sender{a: a, cp: cp, in: SendInput{RunID: in.RunID, CanvasID: in.CanvasID, PlanHash: in.PlanHash, StepID: in.StepID}, push: step.Push}
	return s.page(ctx, store.Page{Members: []int64{in.UID}}, fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt))
}
