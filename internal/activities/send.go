package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// LedgerStore is the delivery ledger Send claims and settles (ADR 003,
// 007, 010).
type LedgerStore interface {
	ClaimDeliveries(ctx context.Context, key store.LedgerKey, channel, batch string, uids []int64, lives store.KeyLives) (store.Claim, error)
	RecordDeliveryKeys(ctx context.Context, key store.LedgerKey, batch string, keys map[int64]string) error
	SettleDeliveries(ctx context.Context, key store.LedgerKey, batch string, settlements []store.Settlement) error
	ReleaseDeliveries(ctx context.Context, key store.LedgerKey, batch string, uids []int64) error
}

// SendInput sends a push step's message to the pages [From, To) of a cohort.
type SendInput struct {
	RunID    int64     `json:"run_id"`
	CanvasID string    `json:"canvas_id"`
	PlanHash string    `json:"plan_hash"`
	StepID   string    `json:"step_id"`
	Cohort   CohortRef `json:"cohort"`
	From     int64     `json:"from"`
	To       int64     `json:"to"`
	// Visit counts the cohort's earlier visits to the step (a loop): each
	// visit is delivered once.
	Visit int `json:"visit,omitempty"`
	// HoldKey, when set, names this send in the store's held sends (a
	// pause, and whether it expired) instead of its activity: a send that
	// runs first as a local activity and then, failing, as a regular one
	// (a run of named users) is one send, and a local activity re-run after
	// a crash starts at attempt 1 with no heartbeat, so every attempt
	// looks its hold up.
	HoldKey string `json:"hold_key,omitempty"`
}

func (in SendInput) ledger() store.LedgerKey {
	return store.LedgerKey{RunID: in.RunID, StepID: in.StepID, Visit: in.Visit}
}

// SendResult counts what happened to the recipients of the pages.
type SendResult struct {
	Recipients int64 `json:"recipients"`
	Sent       int64 `json:"sent"`
	Failed     int64 `json:"failed"`
	Suppressed int64 `json:"suppressed"`
	Unknown    int64 `json:"unknown"`
	// Skipped are members who left the run (exit event) before the send.
	// Recipients an earlier attempt decided are counted by what it decided,
	// so a retried Send reports the same totals as one that never failed.
	Skipped int64 `json:"skipped"`
	// Deferred are users held back by quiet hours, as cohorts to send this
	// step to at their wake times.
	Deferred []CohortRef `json:"deferred,omitempty"`
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
	// Deferred maps wake times (RFC 3339) to the cohorts deferred users
	// were written into, so a resumed attempt seals the same ones.
	Deferred map[string]int64 `json:"deferred,omitempty"`
	// HeldSince is when this send first found its canvas paused: the
	// planned time of its remaining messages, for resume_grace.
	HeldSince time.Time `json:"held_since,omitzero"`
}

// Send delivers a push step to a range of cohort pages, through the ledger.
func (a *Activities) Send(ctx context.Context, in SendInput) (SendResult, error) {
	cp, err := a.compiled(ctx, in.PlanHash)
	if err != nil {
		return SendResult{}, err
	}
	step := cp.plan.Step(in.StepID)
	if step == nil || step.Push == nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("no push step "+in.StepID, "PlanMismatch", nil)
	}
	cur := sendCursor{NextPage: in.From}
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &cur)
	}
	attempt := sendAttempt(activity.GetInfo(ctx))
	s := &sender{a: a, cp: cp, in: in, push: step.Push, policy: a.policyFor(cp.plan), cur: &cur}
	for cur.NextPage < in.To {
		if err := s.checkControl(ctx, &cur); err != nil {
			return cur.Result, err
		}
		pages, err := a.Store.Pages(ctx, in.Cohort.ID, cur.NextPage, min(cur.NextPage+8, in.To))
		if err != nil {
			return cur.Result, err
		}
		if len(pages) == 0 {
			cur.NextPage = min(cur.NextPage+8, in.To)
			continue
		}
		for _, p := range pages {
			stop := heartbeatWhile(ctx, cur)
			res, err := s.pageWithRetries(ctx, p, fmt.Sprintf("%s/%d", attempt, p.No), &cur)
			stop()
			cur.Result.add(res)
			if err != nil {
				activity.RecordHeartbeat(ctx, cur)
				return cur.Result, err
			}
			cur.NextPage = p.No + 1
			activity.RecordHeartbeat(ctx, cur)
		}
	}
	for _, wake := range sortedKeys(cur.Deferred) {
		c, err := a.Store.SealCohort(ctx, cur.Deferred[wake], in.Cohort.PageSpan)
		if err != nil {
			return cur.Result, err
		}
		cur.Result.Deferred = append(cur.Result.Deferred, refOf(c))
	}
	return cur.Result, nil
}

// Deliveries a provider certainly did not send (rate limited, a 5xx) are
// retried inside the activity, paced by what the provider asked for:
// Temporal's activity backoff grows with every attempt whatever the
// progress, so at a 20% rate-limit rate a cohort of many pages would slow to
// its maximum interval, and each attempt would start the page over. The
// activity keeps going as long as each try decides something; a wait longer
// than maxInActivityWait (an hourly or daily quota) or pageTries tries in a
// row that decide nothing become a Temporal retry, with the provider's wait
// as its delay.
const (
	pageTries = 6
	// maxInActivityWait covers per-minute windows: WeCom's 45009 and
	// JPush's X-Rate-Limit-Reset are at most a minute away.
	maxInActivityWait = 65 * time.Second
)

// pageWithRetries sends a page, retrying what was certainly not sent.
func (s *sender) pageWithRetries(ctx context.Context, p store.Page, batch string, cur *sendCursor) (SendResult, error) {
	var total SendResult
	stalled := 0
	for try := 0; ; try++ {
		res, prior, err := s.page(ctx, p, batch)
		total.Sent += res.Sent
		total.Failed += res.Failed
		total.Suppressed += res.Suppressed
		total.Unknown += res.Unknown
		if try == 0 {
			// Later tries find what the first decided: count it once.
			total.Skipped = res.Skipped
			total.add(prior)
		}
		if res.Sent+res.Failed+res.Suppressed+res.Unknown > 0 {
			stalled = 0
		} else {
			stalled++
		}
		var re *retryError
		if !errors.As(err, &re) || stalled >= pageTries || re.after > maxInActivityWait {
			total.Recipients = total.Sent + total.Failed + total.Suppressed + total.Unknown
			if re != nil {
				return total, re.err()
			}
			return total, err
		}
		wait := re.after
		if wait == 0 {
			wait = min(200*time.Millisecond<<max(stalled-1, 0), 5*time.Second)
		}
		if err := sleepHeartbeating(ctx, wait, *cur); err != nil {
			return total, err
		}
	}
}

// heartbeatWhile heartbeats the cursor as it was when a page began, every
// few seconds until stop: a page of a slow or throttled provider may take
// longer than the heartbeat timeout, and a retry resumes at that page.
func heartbeatWhile(ctx context.Context, at sendCursor) (stop func()) {
	if len(at.Deferred) > 0 { // the page adds to the live map
		at.Deferred = maps.Clone(at.Deferred)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, at)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// sleepHeartbeating waits, heartbeating so the activity is not timed out.
func sleepHeartbeating(ctx context.Context, d time.Duration, details any) error {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, 5*time.Second)):
			activity.RecordHeartbeat(ctx, details)
		}
	}
}

// sender is one Send activity's state.
type sender struct {
	a      *Activities
	cp     *compiledPlan
	in     SendInput
	push   *canvases.Push
	policy effective
	cur    *sendCursor // nil for SendOne
	// held, when set, is the reason the rest of this send is suppressed:
	// stopped, or expired after a pause longer than resume_grace.
	held string
	// spare are address maps of pages already sent, for load to reuse.
	spare []map[string]any
}

// outgoing is one recipient's delivery on its way to a channel.
type outgoing struct {
	uid      int64
	delivery channels.Delivery
	key      string // content identity, for grouping
}

// page sends one page: claim ledger rows, render, group, send, settle. It
// returns what it settled, and, apart, what earlier attempts had settled.
func (s *sender) page(ctx context.Context, p store.Page, batch string) (res, prior SendResult, err error) {
	members := p.Members
	if s.cp.exitEvents {
		exited, err := s.a.Store.ExitedAmong(ctx, s.in.RunID, members)
		if err != nil {
			return res, prior, err
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
		return res, prior, nil
	}
	// Policy first: quiet hours hold users back (or drop them), caps drop
	// those who had enough. Staff notices are operational and exempt.
	var verdicts map[int64]verdict
	var preloaded []store.ProfileRow
	if s.held == "" && s.policy.active() && s.push.To == canvases.ToUser {
		rows, err := s.a.Store.Profiles(ctx, members)
		if err != nil {
			return res, prior, err
		}
		key := s.in.ledger()
		if verdicts, err = s.a.judge(ctx, s.policy, s.push.Channel, s.a.now(), rows, &key); err != nil {
			return res, prior, err
		}
		if members, err = s.deferQuiet(ctx, p.No, members, verdicts); err != nil {
			return res, prior, err
		}
		preloaded = rows
	}
	claim, err := s.a.Store.ClaimDeliveries(ctx, s.in.ledger(), s.push.Channel, batch, members, s.keyLives())
	if err != nil {
		return res, prior, err
	}
	for _, state := range claim.Done {
		switch state {
		case store.DeliverySent:
			prior.Sent++
		case store.DeliveryFailed:
			prior.Failed++
		case store.DeliverySuppressed:
			prior.Suppressed++
		case store.DeliveryUnknown:
			prior.Unknown++
		}
	}
	prior.Recipients = int64(len(claim.Done))
	if len(claim.Mine) == 0 {
		return res, prior, nil
	}
	res.Recipients = int64(len(claim.Mine))
	settle := make([]store.Settlement, 0, len(claim.Mine)) // one per recipient: not grown by appends
	mine := claim.Mine[:0:0]
	for _, u := range claim.Mine {
		reason := verdicts[u].suppress
		if s.held != "" {
			reason = s.held // the canvas was stopped, or resumed too late for this message
		}
		if reason != "" {
			settle = append(settle, store.Settlement{UID: u, State: store.DeliverySuppressed, Reason: reason})
		} else {
			mine = append(mine, u)
		}
	}
	rows, err := s.profilesOf(ctx, mine, preloaded)
	if err != nil {
		return res, prior, err
	}
	users, owners, err := s.load(ctx, rows)
	if err != nil {
		return res, prior, err
	}
	defer s.recycle(users)
	keyBase := fmt.Sprintf("%d/%s/%d%s", s.in.RunID, s.in.StepID, p.No, visitKey(s.in.Visit))
	var fallback []int64
	if fb := s.push.Fallback; fb != nil {
		// A delivery an earlier attempt handed to the fallback channel, and
		// recorded its key for, goes there again, with that key.
		kept := mine[:0:0]
		for _, u := range mine {
			if ch, _, _ := strings.Cut(claim.Keys[u], ":"); ch == fb.Channel && ch != s.push.Channel {
				fallback = append(fallback, u)
			} else {
				kept = append(kept, u)
			}
		}
		mine = kept
	}
	primary, bad := s.prepare(s.push.Channel, &s.push.Message, users, owners, mine)
	withKeys(primary, s.push.Channel, claim.Keys)
	primary, optedOut, err := s.optOut(ctx, s.push.Channel, primary, users)
	if err != nil {
		return res, prior, err
	}
	settle = append(settle, optedOut...)
	for _, b := range bad {
		if s.push.Fallback != nil && b.Reason == channels.ReasonNoAddress {
			fallback = append(fallback, b.UID)
			continue
		}
		settle = append(settle, b)
	}
	decided, retry := s.deliver(ctx, s.push.Channel, primary, batch, keyBase)
	if err := s.recordRefusals(ctx, s.push.Channel, primary, decided); err != nil {
		return res, prior, err
	}
	for _, d := range decided {
		if s.push.Fallback != nil && d.class == channels.Permanent && d.State != store.DeliverySent {
			fallback = append(fallback, d.UID)
			continue
		}
		settle = append(settle, d.Settlement)
	}
	if len(fallback) > 0 {
		fb := s.push.Fallback
		fbOut, fbBad := s.prepare(fb.Channel, &fb.Message, users, owners, fallback)
		withKeys(fbOut, fb.Channel, claim.Keys)
		settle = append(settle, withChannel(fbBad, fb.Channel)...)
		fbOut, fbOptedOut, err := s.optOut(ctx, fb.Channel, fbOut, users)
		if err != nil {
			return res, prior, err
		}
		settle = append(settle, fbOptedOut...)
		fbDecided, fbRetry := s.deliver(ctx, fb.Channel, fbOut, batch, keyBase+"/fallback")
		if err := s.recordRefusals(ctx, fb.Channel, fbOut, fbDecided); err != nil {
			return res, prior, err
		}
		for _, d := range fbDecided {
			d.Channel = fb.Channel
			settle = append(settle, d.Settlement)
		}
		retry = joinRetry(retry, fbRetry)
	}
	if err := s.a.Store.SettleDeliveries(ctx, s.in.ledger(), batch, settle); err != nil {
		return res, prior, err
	}
	if len(s.policy.caps) > 0 && verdicts != nil {
		if err := s.touch(ctx, settle, claim.Done); err != nil {
			return res, prior, err
		}
	}
	s.a.Metrics.settled(s.push.Channel, settle)
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
	if retry != nil {
		return res, prior, &retryError{retry}
	}
	return res, prior, nil
}

// keyLives are how long the keys of the step's channels (its fallback's
// too) dedupe a resend: the ledger hands rows with younger keys back to be
// sent again, with them.
func (s *sender) keyLives() store.KeyLives {
	var lives store.KeyLives
	names := []string{s.push.Channel}
	if s.push.Fallback != nil {
		names = append(names, s.push.Fallback.Channel)
	}
	for _, name := range names {
		if ch, ok := s.a.Channels.Get(name); ok && ch.Spec().IdempotencyKey != "" {
			if lives == nil {
				lives = store.KeyLives{}
			}
			lives[name] = ch.Spec().KeyLife
		}
	}
	return lives
}

// withKeys gives deliveries the keys the ledger holds for them on channel
// (recorded as "CHANNEL:KEY").
func withKeys(out []outgoing, channel string, keys map[int64]string) {
	if len(keys) == 0 {
		return
	}
	for i := range out {
		if k, ok := strings.CutPrefix(keys[out[i].uid], channel+":"); ok {
			out[i].delivery.Key = k
		}
	}
}

// retryError carries a retryable out of page, so the caller can retry in
// the activity or turn it into a Temporal retry.
type retryError struct{ *retryable }

func (e *retryError) Error() string { return e.why }

// retryable collects deliveries that were certainly not sent and may be
// tried again: the activity fails with a retryable error after settling
// everything else, and the next attempt claims them afresh.
type retryable struct {
	after time.Duration // the longest wait a provider asked for
	why   string
	class channels.Class
}

func joinRetry(a, b *retryable) *retryable {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	if b.after > a.after {
		return b
	}
	return a
}

func (r *retryable) err() error {
	return temporal.NewApplicationErrorWithOptions(r.why, string(r.class), temporal.ApplicationErrorOptions{NextRetryDelay: r.after})
}

func withChannel(sts []store.Settlement, ch string) []store.Settlement {
	for i := range sts {
		sts[i].Channel = ch
	}
	return sts
}

// readsWholeProfiles says whether the send reads more of a profile than
// its addresses: a message with templates, or a consent trait to check.
func (s *sender) readsWholeProfiles() bool {
	return needsRendering(&s.push.Message) || (s.push.Fallback != nil && needsRendering(&s.push.Fallback.Message)) ||
		s.a.Policy.RequireConsent != "" // the consent trait is read from the document
}

// recycle keeps a sent page's address maps for the next page's load: they
// are read only while their page is sent (prepare, optOut), and a map per
// recipient was ~360 MB of a million-recipient broadcast's garbage (ADR
// 051). Whole profiles (templates) are not kept: a rendered message may
// hold their values.
func (s *sender) recycle(users map[int64]map[string]any) {
	if s.readsWholeProfiles() {
		return
	}
	for _, doc := range users {
		s.spare = append(s.spare, doc)
	}
}

// load decodes the page's user documents and looks up their owners.
func (s *sender) load(ctx context.Context, rows []store.ProfileRow) (map[int64]map[string]any, map[string]store.Staff, error) {
	users := make(map[int64]map[string]any, len(rows))
	var ownerIDs []string
	seen := map[string]bool{}
	// A message without templates needs only the addresses: decoding those
	// into a struct is several times cheaper than the whole document.
	personal := s.readsWholeProfiles()
	for _, r := range rows {
		var doc map[string]any
		if personal {
			if err := json.Unmarshal(r.Doc, &doc); err != nil || doc == nil { // null leaves doc nil
				doc = map[string]any{}
			}
		} else {
			// Only the members a recipient is resolved from, found by the
			// audience scan's field walk (no reflection, nothing else
			// built), into a map an earlier page used (recycle); a
			// malformed profile has no address: suppressed.
			var reuse map[string]any
			if n := len(s.spare); n > 0 {
				reuse, s.spare = s.spare[n-1], s.spare[:n-1]
			}
			if d, err := decodeFieldsInto(reuse, r.Doc, addressFields); err == nil && d != nil {
				doc = d
			} else if reuse != nil {
				clear(reuse)
				doc = reuse
			} else {
				doc = make(map[string]any, 1)
			}
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
	ok := make([]bool, len(uids))
	personal := needsRendering(msg)
	env := s.a.Compiler.Env()
	var wg sync.WaitGroup
	per := max((len(uids)+s.a.parallel()-1)/s.a.parallel(), 1)
	// Each worker collects the settlements of its own users who cannot be
	// reached, in uid order: usually none, not a settlement per user.
	bads := make([][]store.Settlement, (len(uids)+per-1)/per)
	for w := range bads {
		lo, hi := w*per, min((w+1)*per, len(uids))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &renderer{cache: s.cp.templates}
			bad := func(st store.Settlement) { bads[w] = append(bads[w], st) }
			for i := lo; i < hi; i++ {
				uid := uids[i]
				user := users[uid]
				if user == nil {
					bad(store.Settlement{UID: uid, State: store.DeliverySuppressed, Reason: "no_profile"})
					continue
				}
				rec, reason := s.recipient(channel, user, owners)
				if reason != "" {
					bad(store.Settlement{UID: uid, State: store.DeliverySuppressed, Reason: reason})
					continue
				}
				m := msg
				if personal {
					owner, ownerRaw := ownerOf(user, owners)
					r.data = map[string]any{
						"user":  env.Normalize("user", user),
						"owner": env.Normalize("owner", staffDoc(owner)),
					}
					r.raw = map[string]any{"user": user, "owner": ownerRaw}
					r.err = nil
					rendered, err := r.message(msg)
					if missingData(err) {
						// Never a message with a hole in it.
						bad(store.Settlement{UID: uid, State: store.DeliverySuppressed, Reason: canvases.ReasonMissingData})
						continue
					}
					if err != nil {
						bad(store.Settlement{UID: uid, State: store.DeliveryFailed, Reason: "render_error"})
						continue
					}
					m = rendered
				}
				out[i] = outgoing{uid: uid, delivery: channels.Delivery{Recipient: rec, Message: m}}
				if personal {
					out[i].key = channels.MessageKey(m)
				}
				ok[i] = true
			}
		}()
	}
	wg.Wait()
	// Compact in place: a page's deliveries are not copied again.
	good := out[:0]
	for i := range uids {
		if ok[i] {
			good = append(good, out[i])
		}
	}
	fails := slices.Concat(bads...)
	clear(out[len(good):]) // no stale recipients behind the slice's end
	return good, fails
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// ownerOf returns a user's owner from the staff directory, and the owner's
// document as it is known: nil without an owner, only the userid when the
// owner is not in the directory.
func ownerOf(user map[string]any, owners map[string]store.Staff) (store.Staff, map[string]any) {
	id := str(user["owner"])
	if id == "" {
		return store.Staff{}, nil
	}
	o, ok := owners[id]
	if !ok {
		return store.Staff{UserID: id}, map[string]any{"userid": id}
	}
	return o, staffDoc(o)
}

func staffDoc(m store.Staff) map[string]any {
	return map[string]any{"userid": m.UserID, "name": m.Name, "grid": m.Grid, "leader": m.Leader}
}

// recipient resolves who a user's message goes to on a channel.
func (s *sender) recipient(channel string, user map[string]any, owners map[string]store.Staff) (channels.Recipient, string) {
	rec := channels.Recipient{UserID: str(user["id"])}
	for _, attr := range channels.ReservedAttrs {
		if v := str(user[attr]); v != "" {
			if rec.Attrs == nil {
				rec.Attrs = make(map[string]string, 4)
			}
			rec.Attrs[attr] = v
		}
	}
	switch s.push.To {
	case canvases.ToOwner, canvases.ToOwnerLeader:
		owner := str(user["owner"])
		if owner == "" {
			return rec, channels.ReasonNoOwner
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
			return rec, channels.ReasonNoOwner
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
		return rec, channels.ReasonNoAddress
	}
	return rec, ""
}

// decided is the outcome of one delivery, with its failure class.
type decided struct {
	store.Settlement
	class channels.Class
	// resend: maybe sent under a provider key that dedupes; the row stays
	// pending with its key and is sent again with it.
	resend bool
}

// deliver groups deliveries into batches the channel accepts and sends them,
// a few at a time. It returns what was decided; deliveries that may be
// retried are released from the ledger and reported as a retryable.
func (s *sender) deliver(ctx context.Context, channel string, out []outgoing, ledgerBatch, keyBase string) ([]decided, *retryable) {
	if len(out) == 0 {
		return nil, nil
	}
	ch, ok := s.a.Channels.Get(channel)
	if !ok {
		ds := make([]decided, len(out))
		for i, o := range out {
			ds[i] = decided{Settlement: store.Settlement{UID: o.uid, State: store.DeliveryFailed, Reason: "no_channel"}, class: channels.Permanent}
		}
		return ds, nil
	}
	if ch.Spec().IdempotencyKey == "" && len(s.keyLives()) > 0 {
		// The rows carry the keyed channel's mark ("nothing sent yet"):
		// clear it before a call that has no key, or a crash after it
		// would look like nothing was sent and the ledger would resend.
		unmark := make(map[int64]string, len(out))
		for _, o := range out {
			unmark[o.uid] = ""
		}
		if err := s.a.Store.RecordDeliveryKeys(ctx, s.in.ledger(), ledgerBatch, unmark); err != nil {
			ds := make([]decided, len(out))
			for i, o := range out {
				ds[i] = decided{Settlement: store.Settlement{UID: o.uid, State: store.DeliveryPending}, class: channels.RetryNow}
			}
			kept, retry := s.release(ctx, ds, ledgerBatch)
			return kept, joinRetry(retry, &retryable{why: "unmark deliveries: " + err.Error(), class: channels.RetryNow})
		}
	}
	batches := group(ch.Spec(), out)
	results := make([][]decided, len(batches))
	retries := make([]*retryable, len(batches))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i], retries[i] = s.sendBatch(ctx, channel, ch, b, fmt.Sprintf("%s/%d", keyBase, i), ledgerBatch)
		}()
	}
	wg.Wait()
	all := make([]decided, 0, len(out))
	var retry *retryable
	for i, r := range results {
		all = append(all, r...)
		if retries[i] != nil {
			retry = joinRetry(retry, retries[i])
		}
	}
	kept, err := s.release(ctx, all, ledgerBatch)
	return kept, joinRetry(retry, err)
}

// release frees the rows of deliveries that certainly were not sent, so the
// next attempt claims them afresh, and returns the decided rest. Rows maybe
// sent under a key the provider dedupes stay pending, with their keys, for
// the resend.
func (s *sender) release(ctx context.Context, all []decided, ledgerBatch string) ([]decided, *retryable) {
	var release []int64
	kept := all[:0]
	for _, d := range all {
		switch {
		case d.State == store.DeliveryPending && d.resend:
		case d.State == store.DeliveryPending:
			release = append(release, d.UID)
		default:
			kept = append(kept, d)
		}
	}
	if len(release) > 0 {
		if err := s.a.Store.ReleaseDeliveries(ctx, s.in.ledger(), ledgerBatch, release); err != nil {
			return kept, &retryable{why: "release deliveries: " + err.Error(), class: channels.RetryNow}
		}
	}
	return kept, nil
}

// group splits deliveries into batches that fit a channel's spec: the same
// sender where required; deliveries sharing content together (up to
// MaxRecipients); the rest packed into mixed batches (up to MaxMixed).
func group(spec channels.Spec, out []outgoing) [][]outgoing {
	if spec.Groupable && sameGroup(spec, out) {
		// The usual broadcast: one message, no provider keys yet. Its
		// batches are slices of out, not a copy of it.
		uniform := max(spec.BatchLimit(true), 1)
		batches := make([][]outgoing, 0, (len(out)+uniform-1)/uniform)
		for start := 0; start < len(out); start += uniform {
			batches = append(batches, out[start:min(start+uniform, len(out)):min(start+uniform, len(out))])
		}
		return batches
	}
	return groupByKey(spec, out)
}

// groupByKey is group for any deliveries.
func groupByKey(spec channels.Spec, out []outgoing) [][]outgoing {
	type gkey struct{ sender, content string }
	index := map[gkey]int{}
	var groups [][]outgoing
	for _, o := range out {
		k := gkey{content: o.key}
		if o.delivery.Key != "" {
			// One provider call under one key: it is repeated whole.
			k.content = "\x00key\x00" + o.delivery.Key
		}
		if spec.SameSender {
			k.sender = o.delivery.Recipient.Sender
		}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], o)
	}
	uniform, mixedMax := max(spec.BatchLimit(true), 1), max(spec.BatchLimit(false), 1)
	var batches [][]outgoing
	mixed := map[string][]outgoing{} // by sender
	var senders []string
	for _, g := range groups {
		if spec.Groupable && len(g) > 1 {
			for start := 0; start < len(g); start += uniform {
				batches = append(batches, g[start:min(start+uniform, len(g))])
			}
			continue
		}
		sender := ""
		if spec.SameSender {
			sender = g[0].delivery.Recipient.Sender
		}
		if _, ok := mixed[sender]; !ok {
			senders = append(senders, sender)
		}
		mixed[sender] = append(mixed[sender], g...)
	}
	for _, sender := range senders {
		g := mixed[sender]
		for start := 0; start < len(g); start += mixedMax {
			batches = append(batches, g[start:min(start+mixedMax, len(g))])
		}
	}
	return batches
}

// sameGroup says whether group would put all of out, more than one, in one
// group: the same content and no provider keys, and the same sender where
// the channel needs one.
func sameGroup(spec channels.Spec, out []outgoing) bool {
	if len(out) < 2 {
		return false
	}
	first := out[0]
	for _, o := range out {
		if o.key != first.key || o.delivery.Key != "" || spec.SameSender && o.delivery.Recipient.Sender != first.delivery.Recipient.Sender {
			return false
		}
	}
	return true
}

func (s *sender) sendBatch(ctx context.Context, channel string, ch channels.Channel, b []outgoing, key, ledgerBatch string) ([]decided, *retryable) {
	deliveries := make([]channels.Delivery, len(b))
	for i, o := range b {
		deliveries[i] = o.delivery
	}
	keyed := ch.Spec().IdempotencyKey != ""
	batch := channels.Batch{
		Key: key, CanvasID: s.in.CanvasID, RunID: fmt.Sprint(s.in.RunID), StepID: s.in.StepID, Visit: s.in.Visit, Deliveries: deliveries,
	}
	if keyed {
		// The provider's keys go on the ledger rows before it is called, so
		// a resend after a crash, on any worker, carries them (ADR 010).
		batch.RecordKeys = func(ctx context.Context, keys []string) error {
			byUID := make(map[int64]string, len(keys))
			for i, k := range keys {
				if k != "" {
					byUID[b[i].uid] = channel + ":" + k
				}
			}
			return s.a.Store.RecordDeliveryKeys(ctx, s.in.ledger(), ledgerBatch, byUID)
		}
	}
	outcomes, err := ch.Send(ctx, batch)
	ds := make([]decided, len(b))
	if err != nil {
		ce := channels.Classify(err)
		state := store.DeliveryFailed
		var retry *retryable
		resend := false
		switch ce.Class {
		case channels.RetryLater, channels.RetryNow:
			state = store.DeliveryPending // released by deliver
			retry = &retryable{after: ce.RetryAfter, why: ce.Error(), class: ce.Class}
		case channels.Ambiguous:
			state = store.DeliveryUnknown
			if keyed {
				// The provider drops a resend under the same key: resending
				// cannot duplicate.
				state, resend = store.DeliveryPending, true
				retry = &retryable{why: ce.Error(), class: channels.RetryNow}
			}
		}
		for i, o := range b {
			ds[i] = decided{Settlement: store.Settlement{UID: o.uid, State: state, Reason: ce.Reason}, class: ce.Class, resend: resend}
		}
		return ds, retry
	}
	var retry *retryable
	for i, o := range b {
		oc := channels.Outcome{Status: channels.Unknown, Class: channels.Ambiguous, Reason: "no_outcome"}
		if i < len(outcomes) {
			oc = outcomes[i]
		}
		d := decided{Settlement: store.Settlement{UID: o.uid, Reason: oc.Reason, ProviderRef: oc.ProviderRef}, class: oc.Class}
		switch {
		case oc.Status == channels.Sent:
			d.State, d.Reason = store.DeliverySent, ""
		case oc.Status == channels.Unknown && keyed:
			d.State, d.resend = store.DeliveryPending, true
			retry = joinRetry(retry, &retryable{why: oc.Reason + ": " + oc.Detail, class: channels.RetryNow})
		case oc.Status == channels.Failed && (oc.Class == channels.RetryNow || oc.Class == channels.RetryLater):
			d.State = store.DeliveryPending // not sent: released, retried by the next attempt
			retry = joinRetry(retry, &retryable{after: oc.RetryAfter, why: oc.Reason + ": " + oc.Detail, class: oc.Class})
		case oc.Status == channels.Failed:
			// The provider refused it: a failure by its reason (invalid_address,
			// unsubscribed, blacklisted ... included — reports show them as
			// failed; suppressed is for users Huabu held back itself).
			d.State = store.DeliveryFailed
		default:
			d.State = store.DeliveryUnknown
		}
		ds[i] = d
	}
	return ds, retry
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
		return SendResult{}, err
	}
	step := cp.plan.Step(in.StepID)
	if step == nil || step.Push == nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("no push step "+in.StepID, "PlanMismatch", nil)
	}
	info := activity.GetInfo(ctx)
	s := &sender{a: a, cp: cp, in: SendInput{RunID: in.RunID, CanvasID: in.CanvasID, PlanHash: in.PlanHash, StepID: in.StepID}, push: step.Push}
	res, prior, err := s.page(ctx, store.Page{Members: []int64{in.UID}}, fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt))
	res.add(prior)
	return res, err
}

// addressFields are the profile members a send without templates reads:
// the reserved attributes a recipient is reached at, and its owner.
var addressFields = append([]string{"owner"}, channels.ReservedAttrs...)

// profilesOf returns the profiles of uids, from rows already loaded if any.
func (s *sender) profilesOf(ctx context.Context, uids []int64, loaded []store.ProfileRow) ([]store.ProfileRow, error) {
	if loaded == nil {
		return s.a.Store.Profiles(ctx, uids)
	}
	want := make(map[int64]bool, len(uids))
	for _, u := range uids {
		want[u] = true
	}
	out := make([]store.ProfileRow, 0, len(uids))
	for _, r := range loaded {
		if want[r.UID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// deferQuiet writes users held back by quiet hours into cohorts by wake
// time (keyed by this activity's page range, so a retry writes the same
// pages) and returns the members to send to now.
func (s *sender) deferQuiet(ctx context.Context, page int64, members []int64, verdicts map[int64]verdict) ([]int64, error) {
	byWake := map[string][]int64{}
	kept := members[:0:0]
	for _, u := range members {
		if w := verdicts[u].deferUntil; !w.IsZero() {
			key := w.UTC().Truncate(time.Minute).Format(time.RFC3339)
			byWake[key] = append(byWake[key], u)
		} else {
			kept = append(kept, u)
		}
	}
	if len(byWake) > 0 && s.cur == nil {
		return members, nil // a single-user send has nowhere to defer to: send now
	}
	for _, wake := range sortedKeys(byWake) {
		at, _ := time.Parse(time.RFC3339, wake)
		id, ok := s.cur.Deferred[wake]
		if !ok {
			c, err := s.a.Store.CreateCohort(ctx, fmt.Sprintf("%d/%s/%d/%d/defer/%d%s", s.in.RunID, s.in.StepID, s.in.Cohort.ID, s.in.From, at.Unix(), visitKey(s.in.Visit)), s.in.RunID, s.in.StepID, s.in.Cohort.ID, at)
			if err != nil {
				return nil, err
			}
			if s.cur.Deferred == nil {
				s.cur.Deferred = map[string]int64{}
			}
			id = c.ID
			s.cur.Deferred[wake] = id
		}
		if err := s.a.Store.WritePages(ctx, id, []store.Page{{No: page, Members: byWake[wake]}}); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// touch settles the touches judge reserved for the page's users (ADR 023):
// users sent to keep theirs, on the channel they were sent on; users not
// sent to — now or by an earlier attempt (done) — drop theirs. A delivery
// whose outcome is unknown keeps its touch: it may have been sent.
func (s *sender) touch(ctx context.Context, settled []store.Settlement, done map[int64]string) error {
	sentOn := map[int64]string{}
	var notSent []int64
	for _, st := range settled {
		switch st.State {
		case store.DeliverySent:
			ch := st.Channel
			if ch == "" {
				ch = s.push.Channel
			}
			sentOn[st.UID] = ch
		case store.DeliveryUnknown:
		default:
			notSent = append(notSent, st.UID)
		}
	}
	for uid, state := range done {
		if state == store.DeliveryFailed || state == store.DeliverySuppressed {
			notSent = append(notSent, uid)
		}
	}
	return s.a.Store.SettleTouches(ctx, s.in.ledger(), sentOn, notSent)
}

// sendAttempt names an attempt of Send: its ledger claims are made under
// it, and a pending row claimed under another attempt's name is one a dead
// attempt left (ClaimDeliveries). A workflow task retried after its worker
// died runs a local activity again with the same id and attempt number, so
// a local attempt's name also carries a nonce: it must not take the dead
// one's pending rows for its own and send them again.
func sendAttempt(info activity.Info) string {
	attempt := fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt)
	if info.IsLocalActivity {
		attempt += "/" + nonce()
	}
	return attempt
}

// nonce is 16 random hex digits.
func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
