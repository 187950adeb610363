package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/ingest"
	"github.com/huabu/huabu/store"
	"github.com/huabu/huabu/workflows"
)

// Store is what the router reads and writes.
type Store interface {
	Canvases(ctx context.Context) ([]store.DeployedCanvas, error)
	Plan(ctx context.Context, hash string) ([]byte, error)
	PlanHashes(ctx context.Context) ([]string, error)
	Profiles(ctx context.Context, uids []int64) ([]store.ProfileRow, error)
	MembershipsOf(ctx context.Context, uids []int64, since time.Time) ([]store.Membership, error)
	WaitsIn(ctx context.Context, runIDs []int64, event string) ([]store.Wait, error)
	InCohort(ctx context.Context, cohortID, uid int64) (bool, error)
	RecordArrivals(ctx context.Context, cohortID int64, uids []int64, at time.Time) (int64, error)
	RecordExits(ctx context.Context, runID int64, stepID, reason string, uids []int64) error
	RecordConversions(ctx context.Context, runID int64, uids []int64, at time.Time) error
}

// Temporal is the part of the client the router uses.
type Temporal interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow interface{}, args ...interface{}) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg interface{}) error
}

// Options configure a Router.
type Options struct {
	Store     Store
	Temporal  Temporal
	Compiler  *canvases.Compiler
	TaskQueue string
	Logger    *slog.Logger
	// Window is how long entries of an event-triggered canvas gather before
	// they start one run together.
	Window time.Duration
	// GoalLookback bounds how far back entries are searched for goals.
	GoalLookback time.Duration
}

// Router is the ingest.Sink of the engine.
type Router struct {
	opts  Options
	in    chan []ingest.Event
	plans sync.Map // hash → *plan

	mu        sync.Mutex
	triggers  map[string][]trigger // event name → canvases it starts
	pending   map[string]*entries  // canvas → users gathering for a run
	readsUser map[string]bool      // event names whose conditions read the user document

	// routed caches RoutedEvents for the plan versions it was built from.
	routedMu     sync.Mutex
	routedHashes []string
	routed       []string
}

type trigger struct {
	canvasID string
	plan     *plan
}

// entries gather for one event-triggered run.
type entries struct {
	hash    string
	since   time.Time
	firstID int64
	users   []string
	seen    map[string]bool
}

// plan is a plan with its event conditions compiled.
type plan struct {
	*canvases.Plan
	trigger, exit, goal *canvases.Condition
	waits               map[string][]waitStep // event → wait steps for it
}

type waitStep struct {
	stepID string
	when   *canvases.Condition
}

// New builds a router; Run starts it.
func New(opts Options) *Router {
	if opts.Window <= 0 {
		opts.Window = 200 * time.Millisecond
	}
	if opts.GoalLookback <= 0 {
		opts.GoalLookback = 90 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Router{opts: opts, in: make(chan []ingest.Event, 256), triggers: map[string][]trigger{}, pending: map[string]*entries{}}
}

// Events queues stored events for routing (ingest.Sink). It blocks briefly
// when the router is behind rather than dropping anything.
func (r *Router) Events(ctx context.Context, events []ingest.Event) {
	if len(events) == 0 {
		return
	}
	select {
	case r.in <- events:
	case <-ctx.Done():
	}
}

// Refresh reloads which canvases events trigger (after a deploy).
func (r *Router) Refresh(ctx context.Context) error {
	list, err := r.opts.Store.Canvases(ctx)
	if err != nil {
		return err
	}
	byEvent := map[string][]trigger{}
	readsUser := map[string]bool{}
	for _, c := range list {
		if !c.Active {
			continue
		}
		p, err := r.plan(ctx, c.PlanHash)
		if err != nil {
			r.opts.Logger.Warn("canvas not routable", "canvas", c.ID, "err", err)
			continue
		}
		if p.Trigger.Kind == canvases.TriggerEvent {
			byEvent[p.Trigger.Event.Event] = append(byEvent[p.Trigger.Event.Event], trigger{canvasID: c.ID, plan: p})
			if reads(p.trigger) {
				readsUser[p.Trigger.Event.Event] = true
			}
		}
		if p.Exit != nil && reads(p.exit) {
			readsUser[p.Exit.Event] = true
		}
		if p.Goal != nil && reads(p.goal) {
			readsUser[p.Goal.Event] = true
		}
		for ev, ws := range p.waits {
			for _, w := range ws {
				if reads(w.when) {
					readsUser[ev] = true
				}
			}
		}
	}
	r.mu.Lock()
	r.triggers, r.readsUser = byEvent, readsUser
	r.mu.Unlock()
	return nil
}

// Run routes events until ctx ends. Batches form while the previous one is
// processed, so the router keeps up with bursts.
func (r *Router) Run(ctx context.Context) {
	if err := r.Refresh(ctx); err != nil {
		r.opts.Logger.Error("router: loading canvases", "err", err)
	}
	tick := time.NewTicker(r.opts.Window / 4)
	defer tick.Stop()
	refresh := time.NewTicker(30 * time.Second)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush(context.WithoutCancel(ctx), true)
			return
		case evs := <-r.in:
			for more := true; more && len(evs) < 5000; { // take what else is waiting
				select {
				case next := <-r.in:
					evs = append(evs, next...)
				default:
					more = false
				}
			}
			if err := r.route(ctx, evs); err != nil {
				r.opts.Logger.Error("router: routing events", "events", len(evs), "err", err)
			}
			r.flush(ctx, false)
		case <-tick.C:
			r.flush(ctx, false)
		case <-refresh.C:
			if err := r.Refresh(ctx); err != nil {
				r.opts.Logger.Warn("router: reloading canvases", "err", err)
			}
		}
	}
}

// Route routes events in the caller's goroutine (their exits, conversions
// and arrivals are recorded when it returns) and starts the runs of entry
// windows that have closed; entries of open windows keep gathering and are
// started by Run. The engine's event feed calls it, so it can tell how far
// the stored events have been routed (see PendingFrom).
func (r *Router) Route(ctx context.Context, events []ingest.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := r.route(ctx, events)
	r.flush(ctx, false)
	return err
}

// RoutedEvents names every event some stored plan version reacts to: its
// trigger event, exit event, goal event or the event of one of its waits.
// Any other event can change nothing in the engine, so the feed skips it.
// Plans are immutable and only added, so the list is rebuilt only when the
// stored versions change, and it covers runs of older versions and
// deactivated canvases too.
func (r *Router) RoutedEvents(ctx context.Context) ([]string, error) {
	hashes, err := r.opts.Store.PlanHashes(ctx)
	if err != nil {
		return nil, err
	}
	r.routedMu.Lock()
	defer r.routedMu.Unlock()
	if r.routed != nil && slices.Equal(hashes, r.routedHashes) {
		return r.routed, nil
	}
	seen := map[string]bool{}
	for _, h := range hashes {
		p, err := r.plan(ctx, h)
		if err != nil {
			return nil, nil // a plan this build cannot read: route everything
		}
		if p.Trigger.Kind == canvases.TriggerEvent {
			seen[p.Trigger.Event.Event] = true
		}
		if p.Exit != nil {
			seen[p.Exit.Event] = true
		}
		if p.Goal != nil {
			seen[p.Goal.Event] = true
		}
		for ev := range p.waits {
			seen[ev] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	r.routed, r.routedHashes = names, hashes
	return names, nil
}

// ReadsUser reports whether routing any of the events evaluates a condition
// over the user document (a trigger, exit, goal or wait condition of a
// deployed canvas that mentions user), so the caller can bring computed
// traits up to date first; events whose conditions read only the event
// need not wait for them.
func (r *Router) ReadsUser(events []ingest.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		if r.readsUser[e.Name] {
			return true
		}
	}
	return false
}

var userRef = regexp.MustCompile(`\buser\b`)

func reads(c *canvases.Condition) bool { return c != nil && userRef.MatchString(c.Source) }

// PendingFrom is the id of the first event whose entries are still
// gathering in an open window (not yet started as a run), or 0 when none
// are: every event before it has had all its effects recorded or started.
func (r *Router) PendingFrom() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first int64
	for _, p := range r.pending {
		if first == 0 || p.firstID < first {
			first = p.firstID
		}
	}
	return first
}

// RouteNow routes events synchronously (tests, catch-up).
func (r *Router) RouteNow(ctx context.Context, events []ingest.Event) error {
	if err := r.route(ctx, events); err != nil {
		return err
	}
	r.flush(ctx, true)
	return nil
}

func (r *Router) plan(ctx context.Context, hash string) (*plan, error) {
	if p, ok := r.plans.Load(hash); ok {
		return p.(*plan), nil
	}
	raw, err := r.opts.Store.Plan(ctx, hash)
	if err != nil {
		return nil, err
	}
	cp, err := canvases.UnmarshalPlan(raw)
	if err != nil {
		return nil, err
	}
	p := &plan{Plan: cp, waits: map[string][]waitStep{}}
	compile := func(o *canvases.OnEvent) (*canvases.Condition, error) {
		if o == nil || o.When == "" {
			return nil, nil
		}
		return r.opts.Compiler.CompileCondition(o.When, o.Event)
	}
	if p.trigger, err = compile(cp.Trigger.Event); err != nil {
		return nil, err
	}
	if p.exit, err = compile(cp.Exit); err != nil {
		return nil, err
	}
	if cp.Goal != nil {
		if p.goal, err = compile(&cp.Goal.OnEvent); err != nil {
			return nil, err
		}
	}
	for _, s := range cp.Steps {
		if s.Wait == nil || s.Wait.Kind != canvases.WaitEvent {
			continue
		}
		w := waitStep{stepID: s.ID}
		if s.Wait.When != "" {
			if w.when, err = r.opts.Compiler.CompileCondition(s.Wait.When, s.Wait.Event); err != nil {
				return nil, err
			}
		}
		p.waits[s.Wait.Event] = append(p.waits[s.Wait.Event], w)
	}
	actual, _ := r.plans.LoadOrStore(hash, p)
	return actual.(*plan), nil
}

// batch is the routing of one group of events.
type batch struct {
	r        *Router
	events   []ingest.Event
	users    map[int64]map[string]any // user documents, loaded when a condition needs them
	exits    map[int64][]int64
	converts map[int64]map[int64]time.Time
	arrivals map[int64][]int64 // waiting cohort → users
	signal   map[string]bool   // workflow ids
}

func (r *Router) route(ctx context.Context, events []ingest.Event) error {
	b := &batch{r: r, events: events, exits: map[int64][]int64{}, converts: map[int64]map[int64]time.Time{},
		arrivals: map[int64][]int64{}, signal: map[string]bool{}}
	if err := b.loadUsers(ctx); err != nil {
		return err
	}
	b.triggers(ctx)
	if err := b.memberships(ctx); err != nil {
		return err
	}
	return b.write(ctx)
}

// loadUsers fetches the documents of the batch's users, for conditions.
func (b *batch) loadUsers(ctx context.Context) error {
	var uids []int64
	seen := map[int64]bool{}
	for _, e := range b.events {
		if !seen[e.UID] {
			seen[e.UID] = true
			uids = append(uids, e.UID)
		}
	}
	slices.Sort(uids)
	rows, err := b.r.opts.Store.Profiles(ctx, uids)
	if err != nil {
		return err
	}
	b.users = make(map[int64]map[string]any, len(rows))
	for _, row := range rows {
		var doc map[string]any
		if json.Unmarshal(row.Doc, &doc) == nil {
			doc["id"] = row.ID
			b.users[row.UID] = doc
		}
	}
	return nil
}

func match(c *canvases.Condition, user map[string]any, e ingest.Event) bool {
	if c == nil {
		return true
	}
	ok, err := c.Eval(user, e.Properties)
	return err == nil && ok
}

// triggers gathers users entering event-triggered canvases.
func (b *batch) triggers(ctx context.Context) {
	r := b.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range b.events {
		for _, t := range r.triggers[e.Name] {
			if !match(t.plan.trigger, b.users[e.UID], e) {
				continue
			}
			p := r.pending[t.canvasID]
			if p == nil || p.hash != t.plan.Hash {
				if p != nil {
					r.start(ctx, t.canvasID, p) // a new version arrived mid-window
				}
				p = &entries{hash: t.plan.Hash, since: time.Now(), firstID: e.ID, seen: map[string]bool{}}
				r.pending[t.canvasID] = p
			}
			if !p.seen[e.UserID] {
				p.seen[e.UserID] = true
				p.users = append(p.users, e.UserID)
			}
		}
	}
}

// maxUsersPerRun keeps a run's input small; more entries start more runs.
const maxUsersPerRun = 10000

// flush starts runs for windows that have closed (or all, at shutdown).
func (r *Router) flush(ctx context.Context, all bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.pending))
	for id := range r.pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := r.pending[id]
		if all || time.Since(p.since) >= r.opts.Window || len(p.users) >= maxUsersPerRun {
			r.start(ctx, id, p)
			delete(r.pending, id)
		}
	}
}

// start runs a canvas for gathered entries. The workflow id comes from the
// first event, so routing the same events again never starts a second run.
func (r *Router) start(ctx context.Context, canvasID string, p *entries) {
	for i := 0; i < len(p.users); i += maxUsersPerRun {
		users := p.users[i:min(i+maxUsersPerRun, len(p.users))]
		id := fmt.Sprintf("huabu-%s-event-%d-%d", canvasID, p.firstID, i/maxUsersPerRun)
		_, err := r.opts.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.opts.TaskQueue},
			workflows.RunName, workflows.RunInput{CanvasID: canvasID, PlanHash: p.hash, Trigger: canvases.TriggerEvent, UserIDs: users, ApplyAudience: true})
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if err != nil && !errors.As(err, &started) {
			r.opts.Logger.Error("router: starting an event-triggered run", "canvas", canvasID, "users", len(users), "err", err)
		}
	}
}

// memberships routes events to the runs their users are in: exits, goals
// and waits for the event.
func (b *batch) memberships(ctx context.Context) error {
	r := b.r
	byUser := map[int64][]ingest.Event{}
	var uids []int64
	for _, e := range b.events {
		if _, ok := byUser[e.UID]; !ok {
			uids = append(uids, e.UID)
		}
		byUser[e.UID] = append(byUser[e.UID], e)
	}
	slices.Sort(uids)
	ms, err := r.opts.Store.MembershipsOf(ctx, uids, time.Now().Add(-r.opts.GoalLookback))
	if err != nil {
		return err
	}
	type waitKey struct {
		run   int64
		event string
	}
	waitUsers := map[waitKey][]ingest.Event{}
	var waitKeys []waitKey
	for _, m := range ms {
		p, err := r.plan(ctx, m.PlanHash)
		if err != nil {
			r.opts.Logger.Warn("router: plan of a run", "run", m.RunID, "err", err)
			continue
		}
		running := m.State == store.RunRunning
		for _, e := range byUser[m.UID] {
			user := b.users[m.UID]
			if running && p.Exit != nil && p.Exit.Event == e.Name && match(p.exit, user, e) {
				b.exits[m.RunID] = append(b.exits[m.RunID], m.UID)
			}
			if g := p.Goal; g != nil && g.Event == e.Name && !e.Timestamp.Before(m.EnteredAt) &&
				e.Timestamp.Sub(m.EnteredAt) <= g.Within.Std() && match(p.goal, user, e) {
				if b.converts[m.RunID] == nil {
					b.converts[m.RunID] = map[int64]time.Time{}
				}
				if _, done := b.converts[m.RunID][m.UID]; !done {
					b.converts[m.RunID][m.UID] = e.Timestamp
				}
			}
			if running && len(p.waits[e.Name]) > 0 {
				k := waitKey{m.RunID, e.Name}
				if _, ok := waitUsers[k]; !ok {
					waitKeys = append(waitKeys, k)
				}
				waitUsers[k] = append(waitUsers[k], e)
			}
		}
	}
	for _, k := range waitKeys {
		waits, err := r.opts.Store.WaitsIn(ctx, []int64{k.run}, k.event)
		if err != nil {
			return err
		}
		for _, w := range waits {
			p, err := r.plan(ctx, w.PlanHash)
			if err != nil {
				continue
			}
			var cond *canvases.Condition
			for _, ws := range p.waits[k.event] {
				if ws.stepID == w.StepID {
					cond = ws.when
				}
			}
			for _, e := range waitUsers[k] {
				if !match(cond, b.users[e.UID], e) {
					continue
				}
				in, err := r.opts.Store.InCohort(ctx, w.CohortID, e.UID)
				if err != nil {
					return err
				}
				if in {
					b.arrivals[w.CohortID] = append(b.arrivals[w.CohortID], e.UID)
					b.signal[w.WorkflowID] = true
				}
			}
		}
	}
	return nil
}

// write records what the batch decided and signals the runs it concerns.
func (b *batch) write(ctx context.Context) error {
	st := b.r.opts.Store
	for run, uids := range b.exits {
		if err := st.RecordExits(ctx, run, "", "exit_event", uids); err != nil {
			return err
		}
	}
	for run, users := range b.converts {
		// Conversions of a batch share the earliest time; per-user times
		// matter little next to the window they fell in.
		var uids []int64
		var at time.Time
		for u, t := range users {
			uids = append(uids, u)
			if at.IsZero() || t.Before(at) {
				at = t
			}
		}
		slices.Sort(uids)
		if err := st.RecordConversions(ctx, run, uids, at); err != nil {
			return err
		}
	}
	for cohort, uids := range b.arrivals {
		if _, err := st.RecordArrivals(ctx, cohort, uids, time.Now()); err != nil {
			return err
		}
	}
	for wf := range b.signal {
		err := b.r.opts.Temporal.SignalWorkflow(ctx, wf, "", workflows.ArrivalsSignal, nil)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("signal %s: %w", wf, err)
		}
	}
	return nil
}
