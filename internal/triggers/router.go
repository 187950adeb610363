package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// Store is what the router reads and writes.
type Store interface {
	Canvases(ctx context.Context) ([]store.DeployedCanvas, error)
	Plan(ctx context.Context, hash string) ([]byte, error)
	PlanHashes(ctx context.Context) ([]string, error)
	Profiles(ctx context.Context, uids []int64) ([]store.ProfileRow, error)
	MembershipsOf(ctx context.Context, uids []int64, since time.Time) ([]store.Membership, error)
	WaitsIn(ctx context.Context, runIDs []int64, event string) ([]store.Wait, error)
	MembersAmong(ctx context.Context, cohortID int64, uids []int64) (map[int64]bool, error)
	RecordArrivals(ctx context.Context, cohortID int64, uids []int64, at time.Time) (int64, error)
	RecordExits(ctx context.Context, runID int64, stepID, reason string, uids []int64) error
	RecordConversions(ctx context.Context, runID int64, uids []int64, at time.Time) error
	WindowStore
}

// Runs is how the router starts and wakes canvas runs. The router declares
// it; the app implements it over Temporal (the interpreter workflow and its
// arrivals signal), huabu simulate in its test environment.
type Runs interface {
	// StartEventRun starts the run of an entry window under
	// run.WorkflowID. ErrRunStarted: a run was started under that id
	// before, running or finished (ids are never reused).
	StartEventRun(ctx context.Context, run EventRun) error
	// SignalArrivals tells the run workflowID that users arrived at its
	// waits (their arrivals are in the store). ErrNoRun: no such run is
	// running any more.
	SignalArrivals(ctx context.Context, workflowID string) error
}

// EventRun is the run of an entry window: the users who entered one version
// of an event-triggered canvas together.
type EventRun struct {
	WorkflowID string
	CanvasID   string
	PlanHash   string
	Users      []string // user ids, in entry order
}

// The answers of Runs the router acts on (wrapping what the implementation
// was told, if anything).
var (
	ErrRunStarted = errors.New("a run was already started under this workflow id")
	ErrNoRun      = errors.New("no run is running under this workflow id")
)

// Options configure a Router.
type Options struct {
	Store    Store
	Runs     Runs
	Compiler *canvases.Compiler
	Logger   *slog.Logger
	// Window is how long entries of an event-triggered canvas gather at
	// most before they start one run together.
	Window time.Duration
	// BackPressure (triggers.back_pressure) lets a window start before
	// Window is up, once the run
	// of its canvas's previous window has begun and it has gathered for an
	// eighth of Window (ADR 035): windows are as long as the canvas's runs
	// take to get going, between the two. Without it every window gathers
	// for Window (huabu simulate does: it replays events grouped by Window).
	BackPressure bool
	// MaxUsersPerRun closes a window early (default 10,000): a run's input
	// stays small; more entries start more runs.
	MaxUsersPerRun int
	// GoalLookback bounds how far back entries are searched for goals.
	GoalLookback time.Duration
	// Now is the clock windows open and close by (default time.Now).
	Now func() time.Time
	// Paused tells whether a canvas is paused (huabu pause); nil: never.
	// Event entries of a paused canvas whose trigger says while_paused:
	// drop enter nobody.
	Paused func(ctx context.Context, canvasID string) (bool, error)
}

// Router routes stored events (the event feed calls Route) and starts the
// runs of entry windows (Run).
type Router struct {
	opts Options
	// minWindow is how long a window gathers at least under BackPressure
	// (0 without it).
	minWindow time.Duration
	plans     sync.Map // hash → *plan

	mu        sync.Mutex
	triggers  map[string][]trigger // event name → canvases it starts
	readsUser map[string]bool      // event names whose conditions read the user document

	windows windows

	// routed caches RoutedEvents for the plan versions it was built from.
	routedMu     sync.Mutex
	routedHashes []string
	routed       []string
	needs        needs
}

// needs says, per event name, what routing it reads besides the event,
// over every stored plan version (runs of older ones included).
type needs struct {
	all     bool            // a plan could not be read: everything
	members map[string]bool // an exit, goal or wait event: the runs its users are in
	users   map[string]bool // some condition on it mentions user: the user documents
}

type trigger struct {
	canvasID string
	plan     *plan
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
	if opts.MaxUsersPerRun <= 0 {
		opts.MaxUsersPerRun = 10000
	}
	if opts.GoalLookback <= 0 {
		opts.GoalLookback = 90 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Router{opts: opts, triggers: map[string][]trigger{}}
	if opts.BackPressure {
		r.minWindow = max(opts.Window/8, time.Millisecond)
	}
	r.windows.init(r)
	return r
}

// Window is how long entries gather before their run starts (the
// simulation waits as long in virtual time).
func (r *Router) Window() time.Duration { return r.opts.Window }

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
	// Replaced whole, never changed in place: route matches a batch against
	// the maps it took under mu.
	r.mu.Lock()
	r.triggers, r.readsUser = byEvent, readsUser
	r.mu.Unlock()
	return nil
}

// ErrHandedOver, as the cause of Run's context, tells it another process
// routes now (a worker that lost the router lease, ADR 022): it stops
// without starting the windows still gathering, which the next router
// resumes from the store and may still add to.
var ErrHandedOver = errors.New("router: another process routes now")

// Run starts the runs of entry windows as they close, until ctx ends; then,
// unless ctx was cancelled with ErrHandedOver, it starts those still
// gathering (what it cannot start stays in the store for the next start). A window whose start fails is retried, with backoff,
// never dropped.
func (r *Router) Run(ctx context.Context) {
	if err := r.Refresh(ctx); err != nil {
		r.opts.Logger.Error("router: loading canvases", "err", err)
	}
	tick := time.NewTicker(max(r.opts.Window/4, 5*time.Millisecond))
	defer tick.Stop()
	refresh := time.NewTicker(30 * time.Second)
	defer refresh.Stop()
	// Starts run beside the loop and finish at shutdown, unless another
	// process routes now: then they stop where they are (a run started
	// but not recorded is found started by the next router).
	startCtx, stopStarts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStarts()
	// A timer for the next window to close: the tick alone started a
	// window up to a quarter of the window after it closed.
	closing := time.NewTimer(time.Hour)
	defer closing.Stop()
	launch := func() {
		r.launchDue(startCtx)
		if at, ok := r.windows.nextClose(); ok {
			closing.Reset(max(at.Sub(r.opts.Now()), 0))
		}
	}
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrHandedOver) {
				stopStarts()
				r.windows.starts.Wait()
				return // the next router resumes the windows from the store
			}
			r.windows.starts.Wait()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			r.StartWindows(sctx, true)
			cancel()
			return
		case <-r.windows.wake:
			launch()
		case <-closing.C:
			launch()
		case <-tick.C:
			launch()
		case <-refresh.C:
			if err := r.Refresh(ctx); err != nil {
				r.opts.Logger.Warn("router: reloading canvases", "err", err)
			}
		}
	}
}

// Route routes stored events, in id order, in the caller's goroutine. When
// it returns nil every effect of the events is in the store: exits,
// conversions and arrivals recorded (and their runs signalled), and entries
// of event-triggered canvases written into their entry windows, whose runs
// Run starts. Routing the same events again changes nothing, so the caller
// may retry a failed call, or route events again after a crash.
func (r *Router) Route(ctx context.Context, events []ingest.Event) error {
	if len(events) == 0 {
		return nil
	}
	return r.route(ctx, events)
}

// RoutedEvents names every event some stored plan version reacts to: its
// trigger event, exit event, goal event or the event of one of its waits.
// Any other event can change nothing in the engine, so the feed skips it.
// Plans are immutable and only added, so the list is rebuilt only when the
// stored versions change, and it covers runs of older versions and
// deactivated canvases too.
func (r *Router) RoutedEvents(ctx context.Context) ([]string, error) {
	names, _, err := r.routing(ctx)
	return names, err
}

// routing returns RoutedEvents and what routing each event reads, rebuilt
// when the stored plan versions change.
func (r *Router) routing(ctx context.Context) ([]string, needs, error) {
	hashes, err := r.opts.Store.PlanHashes(ctx)
	if err != nil {
		return nil, needs{}, err
	}
	r.routedMu.Lock()
	defer r.routedMu.Unlock()
	if r.routedHashes != nil && slices.Equal(hashes, r.routedHashes) {
		return r.routed, r.needs, nil
	}
	seen := map[string]bool{}
	nd := needs{members: map[string]bool{}, users: map[string]bool{}}
	for _, h := range hashes {
		p, err := r.plan(ctx, h)
		if err != nil {
			// A plan this build cannot read: route everything, reading
			// all (not cached: the next call tries again).
			return nil, needs{all: true}, nil
		}
		if p.Trigger.Kind == canvases.TriggerEvent {
			seen[p.Trigger.Event.Event] = true
			nd.users[p.Trigger.Event.Event] = nd.users[p.Trigger.Event.Event] || reads(p.trigger)
		}
		if p.Exit != nil {
			seen[p.Exit.Event], nd.members[p.Exit.Event] = true, true
			nd.users[p.Exit.Event] = nd.users[p.Exit.Event] || reads(p.exit)
		}
		if p.Goal != nil {
			seen[p.Goal.Event], nd.members[p.Goal.Event] = true, true
			nd.users[p.Goal.Event] = nd.users[p.Goal.Event] || reads(p.goal)
		}
		for ev, ws := range p.waits {
			seen[ev], nd.members[ev] = true, true
			for _, w := range ws {
				nd.users[ev] = nd.users[ev] || reads(w.when)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	r.routed, r.needs, r.routedHashes = names, nd, hashes
	return names, nd, nil
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
		arrivals: map[int64][]int64{}, signal: map[string]bool{}, users: map[int64]map[string]any{}}
	// Read only what some condition or run can use: at 2,000 events a
	// second of an event that only triggers, the user documents and the
	// runs of 2,000 users per page were read (and decoded) for nothing.
	_, nd, err := r.routing(ctx)
	if err != nil {
		return err
	}
	// The triggers this batch is matched against, and whether they read the
	// user, from one deploy: a Refresh landing after the needs were read
	// must not match a new trigger that reads user with no user loaded.
	r.mu.Lock()
	triggers, readsUser := r.triggers, r.readsUser
	r.mu.Unlock()
	usersNeeded, membersNeeded := nd.all, nd.all
	for _, e := range events {
		usersNeeded = usersNeeded || nd.users[e.Name] || readsUser[e.Name]
		membersNeeded = membersNeeded || nd.members[e.Name]
	}
	if usersNeeded {
		if err := b.loadUsers(ctx); err != nil {
			return err
		}
	}
	entries, err := r.dropPaused(ctx, b.entries(triggers))
	if err != nil {
		return err
	}
	if err := r.windows.enter(ctx, entries); err != nil {
		return fmt.Errorf("entry windows: %w", err)
	}
	if membersNeeded {
		if err := b.memberships(ctx); err != nil {
			return err
		}
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

// entries lists, in event order, the events that enter users into
// event-triggered canvases.
func (b *batch) entries(triggers map[string][]trigger) []entry {
	var out []entry
	for _, e := range b.events {
		for _, t := range triggers[e.Name] {
			if match(t.plan.trigger, b.users[e.UID], e) {
				out = append(out, entry{canvasID: t.canvasID, hash: t.plan.Hash, event: e})
			}
		}
	}
	return out
}

// dropPaused leaves out the entries of paused canvases whose trigger says
// while_paused: drop (the canvas's state is read once per batch and canvas).
func (r *Router) dropPaused(ctx context.Context, entries []entry) ([]entry, error) {
	if r.opts.Paused == nil {
		return entries, nil
	}
	paused := map[string]bool{}
	dropped := map[string]int{}
	out := entries[:0:0]
	for _, e := range entries {
		p, err := r.plan(ctx, e.hash)
		if err != nil {
			return nil, err
		}
		if p.DropsEntriesWhilePaused() {
			is, seen := paused[e.canvasID]
			if !seen {
				if is, err = r.opts.Paused(ctx, e.canvasID); err != nil {
					return nil, err
				}
				paused[e.canvasID] = is
			}
			if is {
				dropped[e.canvasID]++
				continue
			}
		}
		out = append(out, e)
	}
	for _, id := range slices.Sorted(maps.Keys(dropped)) {
		r.opts.Logger.Info("event entries dropped: the canvas is paused (trigger.event.while_paused: drop)", "canvas", id, "entries", dropped[id])
	}
	return out, nil
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
	ms, err := r.opts.Store.MembershipsOf(ctx, uids, r.opts.Now().Add(-r.opts.GoalLookback))
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
			var uids []int64
			for _, e := range waitUsers[k] {
				if match(cond, b.users[e.UID], e) {
					uids = append(uids, e.UID)
				}
			}
			slices.Sort(uids)
			uids = slices.Compact(uids)
			// One look at the cohort's pages for the whole batch.
			in, err := r.opts.Store.MembersAmong(ctx, w.CohortID, uids)
			if err != nil {
				return err
			}
			for _, uid := range uids {
				if in[uid] {
					b.arrivals[w.CohortID] = append(b.arrivals[w.CohortID], uid)
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
		if _, err := st.RecordArrivals(ctx, cohort, uids, b.r.opts.Now()); err != nil {
			return err
		}
	}
	for wf := range b.signal {
		// A run that ended since its arrivals were recorded has nobody to
		// wake; its waits are gone (FinishRun).
		err := b.r.opts.Runs.SignalArrivals(ctx, wf)
		if err != nil && !errors.Is(err, ErrNoRun) {
			return fmt.Errorf("signal %s: %w", wf, err)
		}
	}
	return nil
}
