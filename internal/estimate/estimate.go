package estimate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// Store is what an estimate reads.
type Store interface {
	MaxUID(ctx context.Context) (int64, error)
	ProfilesBetween(ctx context.Context, lo, hi int64) ([]store.ProfileRow, error)
	EventsOfUsers(ctx context.Context, uids []int64, name string, since time.Time) ([]store.EventRow, error)
	LastEntries(ctx context.Context, canvasID string, exceptRun int64, uids []int64) (map[int64]time.Time, error)
	StaffByIDs(ctx context.Context, ids []string) (map[string]store.Staff, error)
}

// Policy is the engine's send-time policy (*activities.Activities).
type Policy interface {
	HeldBack(ctx context.Context, plan *canvases.Plan, channel string, now time.Time, rows []store.ProfileRow) (map[int64]activities.Verdict, error)
}

// Estimator estimates canvases against one store.
type Estimator struct {
	Store    Store
	Compiler *canvases.Compiler
	Policy   Policy
	// Parallel is how many pages are evaluated at once (default GOMAXPROCS).
	Parallel int
	// PageSpan is how many consecutive uids make one page (default 1024).
	PageSpan int64
	// Consent is the profile trait policy.require_consent names ("" when
	// none): read with the addresses, for the opt-out check.
	Consent string
}

// Options tune one estimate.
type Options struct {
	Now time.Time // default time.Now()
	// Budget bounds the time spent evaluating pages (default 800 ms); the
	// pages done by then are the sample. Exact evaluates every page.
	Budget time.Duration
	Exact  bool
	// TriggerWindow is how far back an event trigger's events are looked
	// at (default 7 days).
	TriggerWindow time.Duration
	// MaxPages, when set, stops after that many pages whatever the budget:
	// a sample of a fixed size (tests, and callers that want one).
	MaxPages int
}

// DefaultPageSpan is how many consecutive uids make one page.
const DefaultPageSpan = 1024

// minPages is the smallest sample taken even past the budget, so the
// margin of error means something.
const minPages = 30

// Samples is how many matching users an estimate shows.
const Samples = 10

// Result is an estimate. Counts are of profiles; when Exact is false they
// are scaled up from the pages evaluated and Margin says how far off they
// may be (95%).
type Result struct {
	CanvasID string    `json:"canvas"`
	Plan     string    `json:"plan"`
	Trigger  string    `json:"trigger"`
	At       time.Time `json:"at"`
	Exact    bool      `json:"exact"`
	// Evaluated profiles, of Profiles in the store.
	Evaluated int64 `json:"evaluated"`
	Profiles  int64 `json:"profiles"`
	// Matched the audience; Entering are those the re-entry rule lets in
	// now (the rest entered too recently).
	Matched       Count `json:"matched"`
	Entering      Count `json:"entering"`
	ReentryBlocks int64 `json:"reentry_blocked"`
	// Event is set for event triggers.
	Event    *EventEstimate    `json:"event,omitempty"`
	Channels []ChannelEstimate `json:"channels"`
	Sample   []SampleUser      `json:"sample"`
	// Elapsed is how long the estimate took, in milliseconds.
	Elapsed int64 `json:"elapsed_ms"`
}

// Count is a number of profiles and its 95% margin of error (0 when exact).
type Count struct {
	N      int64 `json:"n"`
	Margin int64 `json:"margin,omitempty"`
}

func (c Count) String() string {
	if c.Margin == 0 {
		return fmt.Sprint(c.N)
	}
	return fmt.Sprintf("≈%d ±%d", c.N, c.Margin)
}

// EventEstimate is what an event trigger would have done over the window.
type EventEstimate struct {
	Event string    `json:"event"`
	Since time.Time `json:"since"`
	// Sent: users who sent the event in the window. Entering: of those, the
	// ones one of whose events meets trigger.when while they match the
	// audience and the re-entry rule, so who would have entered.
	Sent     Count `json:"sent"`
	Entering Count `json:"entering"`
}

// ChannelEstimate is one channel the canvas sends on, counted over the
// entering users.
type ChannelEstimate struct {
	Channel string   `json:"channel"`
	To      string   `json:"to"`                // user | owner | owner.leader | staff
	Steps   []string `json:"steps"`             // the steps that use it
	Role    string   `json:"role,omitempty"`    // fallback, staff_task
	Reach   int64    `json:"reachable"`         // have an address for it
	Unreach int64    `json:"unreachable"`       // do not
	Reasons []Reason `json:"reasons,omitempty"` // why not, by reason
	// What the sending policy would do now to the reachable ones (messages
	// to users only: staff messages are exempt).
	Capped     int64    `json:"capped"`
	Suppressed []Reason `json:"suppressed,omitempty"` // by reason, caps excluded
	Delayed    int64    `json:"delayed"`              // quiet hours now: sent when they end
}

// Reason is a count by reason.
type Reason struct {
	Reason string `json:"reason"`
	N      int64  `json:"n"`
}

// SampleUser is one entering user and the fields the canvas's conditions read.
type SampleUser struct {
	ID     string         `json:"id"`
	Fields map[string]any `json:"fields,omitempty"`
}

// channelUse is one (channel, to) a canvas sends on.
type channelUse struct {
	channel, to, role string
	steps             []string
}

// channelsOf lists the channels of a plan's push and staff_task steps, in
// step order.
func channelsOf(p *canvases.Plan) []*channelUse {
	var out []*channelUse
	find := func(ch, to, role, step string) {
		for _, u := range out {
			if u.channel == ch && u.to == to && u.role == role {
				u.steps = append(u.steps, step)
				return
			}
		}
		out = append(out, &channelUse{channel: ch, to: to, role: role, steps: []string{step}})
	}
	for _, s := range p.Steps {
		switch {
		case s.Push != nil:
			find(s.Push.Channel, s.Push.To, "", s.ID)
			if fb := s.Push.Fallback; fb != nil {
				find(fb.Channel, s.Push.To, "fallback", s.ID)
			}
		case s.StaffTask != nil:
			// A customers task reaches a customer through the owner's WeCom
			// (mass-send); a staff brief goes to the staff member's WeCom.
			if s.StaffTask.To == "staff" {
				find("wecom.app", canvases.ToUser, "staff_task", s.ID)
			} else {
				find("wecom.customer", canvases.ToUser, "staff_task", s.ID)
			}
		}
	}
	return out
}

// Estimate estimates a plan.
func (e *Estimator) Estimate(ctx context.Context, plan *canvases.Plan, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Now.IsZero() {
		opts.Now = start
	}
	if opts.Budget <= 0 {
		opts.Budget = 800 * time.Millisecond
	}
	if opts.TriggerWindow <= 0 {
		opts.TriggerWindow = 7 * 24 * time.Hour
	}
	span := e.PageSpan
	if span <= 0 {
		span = DefaultPageSpan
	}
	job := &job{e: e, plan: plan, opts: opts, uses: channelsOf(plan), span: span}
	if err := job.compile(); err != nil {
		return nil, err
	}
	maxUID, err := e.Store.MaxUID(ctx)
	if err != nil {
		return nil, err
	}
	pages := int((maxUID + span - 1) / span)
	limit := pages
	if opts.MaxPages > 0 {
		limit = min(pages, opts.MaxPages)
	}
	// A fixed order: repeated estimates sample (mostly) the same pages, so
	// their numbers do not jump about.
	order := rand.New(rand.NewPCG(0x9e3779b97f4a7c15, uint64(pages))).Perm(pages)
	results := make([]*pageResult, pages)
	deadline := start.Add(opts.Budget)
	var next atomic.Int64
	var done atomic.Int64
	workers := e.Parallel
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if !opts.Exact && done.Load() >= minPages && time.Now().After(deadline) {
					return
				}
				i := int(next.Add(1)) - 1
				if i >= limit || ctx.Err() != nil {
					return
				}
				r, err := job.page(ctx, int64(order[i]))
				if err != nil {
					errs <- err
					cancel()
					return
				}
				results[i] = r
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	res := job.total(results, pages)
	res.At, res.Elapsed = opts.Now, time.Since(start).Milliseconds()
	return res, nil
}

// job is one estimate's compiled canvas.
type job struct {
	e        *Estimator
	plan     *canvases.Plan
	opts     Options
	uses     []*channelUse
	span     int64
	audience *canvases.Condition
	when     *canvases.Condition // trigger.event.when
	// fields are what a matching user is decoded to; audienceFields what
	// deciding whether they match needs.
	fields, audienceFields *userFields
	shown                  []string // user fields the samples show
}

func (j *job) compile() error {
	var err error
	c := j.e.Compiler
	if j.plan.Audience != "" {
		if j.audience, err = c.CompileCondition(j.plan.Audience, ""); err != nil {
			return fmt.Errorf("audience: %w", err)
		}
	}
	if t := j.plan.Trigger.Event; t != nil && t.When != "" {
		if j.when, err = c.CompileCondition(t.When, t.Event); err != nil {
			return fmt.Errorf("trigger.event.when: %w", err)
		}
	}
	// Addresses, the owner and the time zone are read for every user.
	j.fields = newUserFields("owner", "timezone", "push_registration_id")
	if j.e.Consent != "" {
		j.fields.keys[j.e.Consent] = true
	}
	for _, k := range canvases.ReservedAttributes {
		j.fields.keys[k] = true
	}
	j.fields.add(j.plan.Audience)
	j.audienceFields = newUserFields()
	j.audienceFields.add(j.plan.Audience)
	shown := newUserFields()
	shown.add(j.plan.Audience)
	if t := j.plan.Trigger.Event; t != nil {
		j.fields.add(t.When)
		shown.add(t.When)
	}
	for k := range shown.keys {
		j.shown = append(j.shown, k)
	}
	sort.Strings(j.shown)
	return nil
}

// pageResult is what one page of uids gave.
type pageResult struct {
	profiles, matched, entering, blocked int64
	sent, triggered                      int64
	channels                             []channelCount
	sample                               []SampleUser
}

type channelCount struct {
	reach, capped, delayed int64
	unreach, suppressed    map[string]int64
}

// member is a profile that matched, with the fields decoded.
type member struct {
	row store.ProfileRow
	doc map[string]any
}

// page evaluates the profiles with uids in page no.
func (j *job) page(ctx context.Context, no int64) (*pageResult, error) {
	lo, hi := no*j.span+1, (no+1)*j.span
	rows, err := j.e.Store.ProfilesBetween(ctx, lo, hi)
	if err != nil {
		return nil, err
	}
	r := &pageResult{profiles: int64(len(rows)), channels: make([]channelCount, len(j.uses))}
	var matched []member
	// Decoded twice: the audience's fields for everyone, then what the rest
	// reads (addresses, the owner, the time zone) only for those who match.
	for _, row := range rows {
		if j.audience != nil {
			doc, err := project(row.Doc, j.audienceFields.decodeKeys())
			if err != nil {
				continue // a corrupt profile never matches, as in Enter
			}
			// Evaluated as Enter does: a runtime error excludes the user.
			if ok, err := j.audience.Eval(doc, nil); err != nil || !ok {
				continue
			}
		}
		doc, err := project(row.Doc, j.fields.decodeKeys())
		if err != nil {
			continue
		}
		doc["id"] = row.ID
		matched = append(matched, member{row, doc})
	}
	r.matched = int64(len(matched))
	uids := make([]int64, len(matched))
	for i, u := range matched {
		uids[i] = u.row.UID
	}
	// The re-entry rule, as Enter applies it.
	entering := matched
	if entry := j.plan.Entry; entry.Reentry != canvases.ReentryAlways && len(uids) > 0 {
		last, err := j.e.Store.LastEntries(ctx, j.plan.ID, 0, uids)
		if err != nil {
			return nil, err
		}
		entering = slices.DeleteFunc(slices.Clone(matched), func(u member) bool {
			at, seen := last[u.row.UID]
			return seen && (entry.Reentry == canvases.ReentryNever || j.opts.Now.Sub(at) < entry.After.Std())
		})
	}
	r.entering = int64(len(entering))
	r.blocked = r.matched - r.entering
	if t := j.plan.Trigger.Event; t != nil {
		if err := j.triggered(ctx, t.Event, rows, entering, r); err != nil {
			return nil, err
		}
	}
	// Channels, over the entering users.
	owners, err := j.owners(ctx, entering)
	if err != nil {
		return nil, err
	}
	for ci, use := range j.uses {
		cc := &r.channels[ci]
		var reachable []store.ProfileRow
		for _, u := range entering {
			if why := activities.Reachable(use.channel, use.to, u.doc, owners); why != "" {
				if cc.unreach == nil {
					cc.unreach = map[string]int64{}
				}
				cc.unreach[why]++
				continue
			}
			cc.reach++
			reachable = append(reachable, store.ProfileRow{UID: u.row.UID, ID: u.row.ID, Doc: u.compact()})
		}
		if use.to != canvases.ToUser || len(reachable) == 0 {
			continue
		}
		verdicts, err := j.e.Policy.HeldBack(ctx, j.plan, use.channel, j.opts.Now, reachable)
		if err != nil {
			return nil, err
		}
		for _, v := range verdicts {
			switch {
			case v.Suppress == "frequency_cap":
				cc.capped++
			case v.Suppress != "":
				if cc.suppressed == nil {
					cc.suppressed = map[string]int64{}
				}
				cc.suppressed[v.Suppress]++
			case !v.DeferUntil.IsZero():
				cc.delayed++
			}
		}
	}
	for _, u := range entering[:min(len(entering), Samples)] {
		s := SampleUser{ID: u.row.ID}
		for _, k := range j.shown {
			if v, ok := u.doc[k]; ok {
				if s.Fields == nil {
					s.Fields = map[string]any{}
				}
				s.Fields[k] = v
			}
		}
		r.sample = append(r.sample, s)
	}
	return r, nil
}

// compact is the decoded part of a member's profile as a document: what
// the policy reads (time zone, addresses, consent), without the rest.
func (m member) compact() []byte {
	b, _ := json.Marshal(m.doc)
	return b
}

// triggered counts, of the page's users, who sent the trigger event within
// the window, and who of the entering users sent one that meets
// trigger.when (as the router evaluates it).
func (j *job) triggered(ctx context.Context, event string, rows []store.ProfileRow, entering []member, r *pageResult) error {
	uids := make([]int64, len(rows))
	for i, row := range rows {
		uids[i] = row.UID
	}
	evs, err := j.e.Store.EventsOfUsers(ctx, uids, event, j.opts.Now.Add(-j.opts.TriggerWindow))
	if err != nil {
		return err
	}
	byUser := map[int64][]store.EventRow{}
	for _, ev := range evs {
		if ev.Timestamp.After(j.opts.Now) {
			continue
		}
		byUser[ev.UID] = append(byUser[ev.UID], ev)
	}
	r.sent = int64(len(byUser))
	for _, u := range entering {
		for _, ev := range byUser[u.row.UID] {
			if j.when == nil {
				r.triggered++
				break
			}
			var props map[string]any
			_ = json.Unmarshal(ev.Properties, &props)
			if ok, err := j.when.Eval(u.doc, props); err == nil && ok {
				r.triggered++
				break
			}
		}
	}
	return nil
}

// owners looks up the staff directory entries of the users' owners (and
// their leaders), for owner and owner.leader recipients.
func (j *job) owners(ctx context.Context, users []member) (map[string]store.Staff, error) {
	leaders := false
	for _, u := range j.uses {
		if u.to == canvases.ToOwnerLeader {
			leaders = true
		}
	}
	if !leaders {
		return nil, nil
	}
	seen := map[string]bool{}
	var ids []string
	for _, u := range users {
		if o, _ := u.doc["owner"].(string); o != "" && !seen[o] {
			seen[o] = true
			ids = append(ids, o)
		}
	}
	owners, err := j.e.Store.StaffByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	return owners, nil
}

// total adds up the pages done and scales them to every page.
func (j *job) total(results []*pageResult, pages int) *Result {
	var done []*pageResult
	for _, r := range results {
		if r != nil {
			done = append(done, r)
		}
	}
	res := &Result{CanvasID: j.plan.ID, Plan: j.plan.ShortHash(), Trigger: j.plan.Trigger.Kind, Exact: len(done) == pages,
		Channels: make([]ChannelEstimate, len(j.uses)), Sample: []SampleUser{}}
	scale := 1.0
	if len(done) > 0 {
		scale = float64(pages) / float64(len(done))
	}
	n := func(f func(*pageResult) int64) Count {
		var sum int64
		xs := make([]float64, len(done))
		for i, r := range done {
			v := f(r)
			sum += v
			xs[i] = float64(v)
		}
		c := Count{N: int64(math.Round(float64(sum) * scale))}
		if !res.Exact {
			c.Margin = margin(xs, pages)
		}
		return c
	}
	scaled := func(v int64) int64 { return int64(math.Round(float64(v) * scale)) }
	for _, r := range done {
		res.Evaluated += r.profiles
	}
	res.Profiles = n(func(r *pageResult) int64 { return r.profiles }).N
	res.Matched = n(func(r *pageResult) int64 { return r.matched })
	res.Entering = n(func(r *pageResult) int64 { return r.entering })
	res.ReentryBlocks = n(func(r *pageResult) int64 { return r.blocked }).N
	if t := j.plan.Trigger.Event; t != nil {
		res.Event = &EventEstimate{Event: t.Event, Since: j.opts.Now.Add(-j.opts.TriggerWindow),
			Sent:     n(func(r *pageResult) int64 { return r.sent }),
			Entering: n(func(r *pageResult) int64 { return r.triggered })}
	}
	for ci, use := range j.uses {
		ce := ChannelEstimate{Channel: use.channel, To: use.to, Steps: use.steps, Role: use.role}
		unreach, suppressed := map[string]int64{}, map[string]int64{}
		for _, r := range done {
			cc := r.channels[ci]
			ce.Reach += cc.reach
			ce.Capped += cc.capped
			ce.Delayed += cc.delayed
			for k, v := range cc.unreach {
				unreach[k] += v
			}
			for k, v := range cc.suppressed {
				suppressed[k] += v
			}
		}
		ce.Reach, ce.Capped, ce.Delayed = scaled(ce.Reach), scaled(ce.Capped), scaled(ce.Delayed)
		ce.Reasons, ce.Suppressed = reasons(unreach, scaled), reasons(suppressed, scaled)
		for _, r := range ce.Reasons {
			ce.Unreach += r.N
		}
		res.Channels[ci] = ce
	}
	// The sample, from the pages in the order they were taken.
	for _, r := range results {
		if r == nil {
			continue
		}
		for _, s := range r.sample {
			if len(res.Sample) < Samples {
				res.Sample = append(res.Sample, s)
			}
		}
	}
	return res
}

func reasons(m map[string]int64, scaled func(int64) int64) []Reason {
	var out []Reason
	for k, v := range m {
		out = append(out, Reason{Reason: k, N: scaled(v)})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].N != out[b].N {
			return out[a].N > out[b].N
		}
		return out[a].Reason < out[b].Reason
	})
	return out
}

// margin is the 95% margin of error of a total estimated from a simple
// random sample of pages (per-page values xs) out of pages: 1.96 standard
// errors of N·mean, with the finite population correction.
func margin(xs []float64, pages int) int64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var mean float64
	for _, x := range xs {
		mean += x
	}
	mean /= n
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	variance := ss / (n - 1)
	N := float64(pages)
	se := N * math.Sqrt(variance/n*(1-n/N))
	return int64(math.Ceil(1.96 * se))
}
