package triggers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// Entry windows (ADR 009, ADR 031, ADR 035). Entries of an event-triggered
// canvas gather in a window and then start one run: for Options.Window at
// most; with Options.BackPressure, only until the run of the canvas's
// previous window has begun, and for minWindow at least — a window's time
// follows how fast the canvas's runs get going (back-pressure), not a
// constant. The store is the truth:
// a window and every user entering it are written before Route returns (so
// before the feed's cursor passes their events), and the run is started
// from the stored window, under a workflow id derived from the window's
// first event. After a crash nothing is regrouped: a window that was open
// is resumed as it was, and an event routed again enters nobody when its
// id is not above its canvas's mark (the newest event any window of the
// canvas took), because it was grouped before. What this process keeps in
// memory is a cache of the store, loaded on first use; a router elected
// among several workers (issue 15) loads it when it takes over.

// WindowStore is the part of the store entry windows live in.
type WindowStore interface {
	SaveWindowEntries(ctx context.Context, writes []store.WindowWrite) ([]int64, error)
	OpenWindows(ctx context.Context) ([]store.EntryWindow, error)
	WindowMarks(ctx context.Context) (map[string]int64, error)
	WindowUsers(ctx context.Context, windowID int64) ([]string, error)
	MarkWindowStarted(ctx context.Context, windowID int64, closed time.Time) error
	// RunBegun: the run started under workflowID has begun (recorded by
	// its BeginRun).
	RunBegun(ctx context.Context, canvasID, workflowID string) (bool, error)
}

// entry is an event entering its user into an event-triggered canvas.
type entry struct {
	canvasID, hash string
	event          ingest.Event
}

// window is a stored window whose run is not started yet.
type window struct {
	store.EntryWindow
	seen     map[int64]bool
	starting bool      // a start is in flight: nobody joins
	closed   time.Time // when it was last found due (its start decided)
	joining  int       // writes of entries into it in flight: it does not start before they land
	retryAt  time.Time // after a failed start
	failures int
	// opened is when this router opened it; for a window resumed from the
	// store, its closing time less the window (what it was before ADR 054,
	// at most when it really opened).
	opened time.Time
}

// maxStartsInFlight bounds the windows whose runs start at once. A start
// is a store read, a workflow start and a store write, mostly waiting on
// the Temporal server and the store's writer: one at a time, due windows
// queued behind each other for seconds at 2,000 events/s (ADR 031).
const maxStartsInFlight = 8

// windows are the router's unstarted windows and marks, cached from the store.
type windows struct {
	r    *Router
	wake chan struct{}

	// enterMu lets one batch's entries in at a time: they are written to
	// the store outside mu, so that starting windows never waits for a
	// write of entries into other windows.
	enterMu sync.Mutex

	slots  chan struct{}  // one per start running (maxStartsInFlight)
	starts sync.WaitGroup // starts Run launched

	mu     sync.Mutex
	loaded bool
	open   map[string][]*window // canvas → unstarted windows, oldest first
	marks  map[string]int64     // canvas → newest event grouped into a window
	// unbegun: canvas → its last started window while that window's run
	// is not known to have begun (BackPressure).
	unbegun map[string]*window
}

func (ws *windows) init(r *Router) {
	ws.r, ws.wake, ws.slots = r, make(chan struct{}, 1), make(chan struct{}, maxStartsInFlight)
	ws.unbegun = map[string]*window{}
}

// load reads the windows from the store (ws.mu held).
func (ws *windows) load(ctx context.Context) error {
	if ws.loaded {
		return nil
	}
	st := ws.r.opts.Store
	marks, err := st.WindowMarks(ctx)
	if err != nil {
		return err
	}
	stored, err := st.OpenWindows(ctx)
	if err != nil {
		return err
	}
	open := map[string][]*window{}
	for _, w := range stored {
		cw := &window{EntryWindow: w, seen: make(map[int64]bool, len(w.UIDs)), opened: w.ClosesAt.Add(-ws.r.opts.Window)}
		for _, u := range w.UIDs {
			cw.seen[u] = true
		}
		cw.UIDs = nil
		open[w.CanvasID] = append(open[w.CanvasID], cw)
	}
	ws.open, ws.marks, ws.loaded = open, marks, true
	if len(stored) > 0 {
		ws.r.opts.Logger.Info("router: resuming entry windows from the store", "windows", len(stored))
	}
	return nil
}

// Load reads the unstarted windows and the marks from the store. Call it
// before routing (Route and StartWindows load lazily too, but PendingFrom
// cannot): a router elected among several workers calls it on taking over.
func (r *Router) Load(ctx context.Context) error {
	ws := &r.windows
	ws.enterMu.Lock()
	defer ws.enterMu.Unlock()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.loaded = false
	return ws.load(ctx)
}

// workflowID names the run of a window. It is derived from the window's
// first event, which the store keeps unique per canvas, so a start that is
// repeated (after a crash between starting and recording it) finds the run
// already there.
func workflowID(canvasID string, firstEvent int64) string {
	return fmt.Sprintf("huabu-%s-event-%d", canvasID, firstEvent)
}

// closesAt is when a window opened now by an event accepted at received
// closes (ADR 054): Window after the event was accepted, so that the time
// the event spent being accepted, stored and fed to the router counts
// against its window and not on top of it — an event waits at most Window
// for company, from its acceptance, not from the router's seeing it. A
// window gathers for windowFloor at least. An event that comes later than
// that (a backlog being caught up, a restart, a clock that disagrees with
// this process's: received in the future or unset) opens a whole window
// from now, as every window did before: a backlog then forms few big runs
// rather than many small ones, which is what ADR 031 found it needs.
func closesAt(received, now time.Time, window time.Duration) time.Time {
	at := received.Add(window)
	if received.IsZero() || received.After(now) || at.Before(now.Add(windowFloor(window))) {
		return now.Add(window)
	}
	return at
}

// windowFloor is the shortest a window gathers when it is anchored at its
// first event's acceptance: an eighth of the window, as ADR 035's floor.
func windowFloor(window time.Duration) time.Duration { return window / 8 }

// draft is what one batch does to one window, before it is stored.
type draft struct {
	w       *window // w.ID == 0: opened by this batch
	entries []store.WindowEntry
	last    int64
	added   map[int64]bool
}

func (d *draft) has(uid int64) bool { return d.w.seen[uid] || d.added[uid] }
func (d *draft) users() int         { return d.w.Users + len(d.entries) }

// enter writes entries (in event order) into windows: the newest window of
// the canvas while it is open, a new one otherwise. The store is written
// first; the cache changes only when that succeeded.
func (ws *windows) enter(ctx context.Context, entries []entry) error {
	if len(entries) == 0 {
		return nil
	}
	ws.enterMu.Lock()
	defer ws.enterMu.Unlock()
	ws.mu.Lock()
	if err := ws.load(ctx); err != nil {
		ws.mu.Unlock()
		return err
	}
	opts := ws.r.opts
	now := opts.Now()
	var drafts []*draft
	current := map[string]*draft{}
	marks := map[string]int64{}
	for _, en := range entries {
		c, e := en.canvasID, en.event
		if e.ID <= max(ws.marks[c], marks[c]) {
			continue // grouped before this (a catch-up after a crash)
		}
		marks[c] = e.ID
		d := current[c]
		if d == nil {
			if list := ws.open[c]; len(list) > 0 {
				d = &draft{w: list[len(list)-1]}
			}
		}
		if d == nil || d.w.PlanHash != en.hash || d.w.starting || !now.Before(d.w.ClosesAt) || d.users() >= opts.MaxUsersPerRun {
			d = &draft{w: &window{EntryWindow: store.EntryWindow{
				CanvasID: c, PlanHash: en.hash, FirstEvent: e.ID, LastEvent: e.ID,
				WorkflowID: workflowID(c, e.ID), ClosesAt: closesAt(e.ReceivedAt, now, opts.Window),
			}, seen: map[int64]bool{}, opened: now}}
		}
		if current[c] != d {
			current[c] = d
			drafts = append(drafts, d)
		}
		d.last = e.ID
		if !d.has(e.UID) {
			if d.added == nil {
				d.added = map[int64]bool{}
			}
			d.added[e.UID] = true
			d.entries = append(d.entries, store.WindowEntry{UID: e.UID, UserID: e.UserID, EventID: e.ID})
		}
	}
	if len(drafts) == 0 {
		ws.mu.Unlock()
		return nil
	}
	writes := make([]store.WindowWrite, len(drafts))
	for i, d := range drafts {
		writes[i] = store.WindowWrite{Window: d.w.EntryWindow, Entries: d.entries, LastEvent: d.last}
		if d.w.ID != 0 {
			d.w.joining++ // not started before its new entries are stored
		}
	}
	ws.mu.Unlock()

	// The write goes without mu: windows of other canvases (and of this
	// one, if not written to now) start meanwhile.
	ids, err := opts.Store.SaveWindowEntries(ctx, writes)

	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, d := range drafts {
		if d.w.ID != 0 {
			d.w.joining--
		}
	}
	if err != nil {
		return err
	}
	for i, d := range drafts {
		if d.w.ID == 0 {
			d.w.ID = ids[i]
			ws.open[d.w.CanvasID] = append(ws.open[d.w.CanvasID], d.w)
		}
		for u := range d.added {
			d.w.seen[u] = true
		}
		d.w.Users += len(d.entries)
		d.w.LastEvent = max(d.w.LastEvent, d.last)
	}
	for c, m := range marks {
		ws.marks[c] = max(ws.marks[c], m)
	}
	select {
	case ws.wake <- struct{}{}:
	default:
	}
	return nil
}

// PendingFrom is the first event of the oldest window whose run is not
// started yet, or 0 when every window's run is: the event feed keeps its
// saved cursor before it, so events are passed over only once their runs
// are started (the windows are stored anyway; this is the second line).
func (r *Router) PendingFrom() int64 {
	ws := &r.windows
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var first int64
	for _, list := range ws.open {
		for _, w := range list {
			if first == 0 || w.FirstEvent < first {
				first = w.FirstEvent
			}
		}
	}
	return first
}

// due reports whether a window's run should start now: its time is up, it
// is full, a newer window of its canvas took over (a new plan version), or
// its canvas's pipeline is free (early). A window being written to waits
// for its write.
func (ws *windows) due(list []*window, i int, now time.Time, all bool) bool {
	w := list[i]
	if w.starting || w.joining > 0 || (!all && now.Before(w.retryAt)) {
		return false
	}
	return all || i < len(list)-1 || !now.Before(w.ClosesAt) || w.Users >= ws.r.opts.MaxUsersPerRun || ws.early(list, now)
}

// early reports whether a canvas's only unstarted window may start before
// its time is up (ADR 035): it has gathered for minWindow, and the run of
// the canvas's previous window has begun — nothing of the canvas is
// starting, and its last run got past Temporal's queue and the store's
// writer to BeginRun. A quiet canvas's entries so wait about as long as
// the pipeline takes, a busy one's gather for as long as its runs take to
// begin, into bigger runs: how many runs start early follows how fast
// they begin (an early start never puts a second run of a canvas between
// start and BeginRun), and no window gathers longer than Window. A
// window's start alone measured no such thing (ADR 031).
func (ws *windows) early(list []*window, now time.Time) bool {
	if ws.r.minWindow <= 0 || len(list) != 1 {
		return false
	}
	w := list[0]
	return ws.unbegun[w.CanvasID] == nil && !now.Before(ws.gathered(w, ws.r.minWindow))
}

// gathered is when a window will have gathered for d: d after it opened,
// and no sooner than d after its first event's acceptance — since ADR 054
// its closing time counts from that, which may be well before the router
// opened it (review-s9 M3: a late event's window was early-due at once).
func (ws *windows) gathered(w *window, d time.Duration) time.Time {
	anchored := w.ClosesAt.Add(d - ws.r.opts.Window)
	if opened := w.opened.Add(d); opened.After(anchored) {
		return opened
	}
	return anchored
}

// beginPoll is how often the router looks whether a canvas's last run has
// begun while a window of the canvas waits for it.
func (r *Router) beginPoll() time.Duration { return max(r.minWindow/2, time.Millisecond) }

// checkBegun asks the store whether the last started run of each canvas
// whose window waits only for it has begun, and forgets the runs that have.
func (r *Router) checkBegun(ctx context.Context) {
	if r.minWindow <= 0 {
		return
	}
	ws := &r.windows
	var asks []*window
	ws.mu.Lock()
	now := r.opts.Now()
	for c, last := range ws.unbegun {
		if list := ws.open[c]; len(list) == 1 && !list[0].starting && !now.Before(ws.gathered(list[0], r.minWindow)) {
			asks = append(asks, last)
		}
	}
	ws.mu.Unlock()
	for _, last := range asks {
		begun, err := r.opts.Store.RunBegun(ctx, last.CanvasID, last.WorkflowID)
		if err != nil {
			// The window waits for its full time, as without back-pressure.
			r.opts.Logger.Warn("router: has the last run begun?", "canvas", last.CanvasID, "workflow", last.WorkflowID, "err", err)
			continue
		}
		if begun {
			ws.mu.Lock()
			if ws.unbegun[last.CanvasID] == last {
				delete(ws.unbegun, last.CanvasID)
			}
			ws.mu.Unlock()
		}
	}
}

// StartWindows starts the runs of windows that are due (every unstarted
// one with all, at shutdown), up to maxStartsInFlight at once, and returns
// how many it started once they are. A start that fails is retried later
// with backoff; the window stays in the store.
func (r *Router) StartWindows(ctx context.Context, all bool) int {
	r.checkBegun(ctx)
	var started atomic.Int64
	var wg sync.WaitGroup
	for _, w := range r.dueWindows(ctx, all) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.startWindow(ctx, w) {
				started.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(started.Load())
}

// launchDue starts the due windows in the background (Run's way: the
// loop goes on while they start, and waits for them before it returns).
func (r *Router) launchDue(ctx context.Context) {
	ws := &r.windows
	r.checkBegun(ctx)
	for _, w := range r.dueWindows(ctx, false) {
		ws.starts.Add(1)
		go func() {
			defer ws.starts.Done()
			r.startWindow(ctx, w)
		}()
	}
}

// nextClose is when the next unstarted window closes, may start early,
// should look again whether its canvas's last run has begun, or may be
// retried.
func (ws *windows) nextClose() (time.Time, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	opts := ws.r.opts
	now := opts.Now()
	var next time.Time
	for c, list := range ws.open {
		for _, w := range list {
			// A window being written to is not due before its write lands,
			// and enter wakes the loop then (the tick, should the write
			// fail): counting it here spun the loop for as long as the
			// write took once the window was due by time.
			if w.starting || w.joining > 0 {
				continue
			}
			at := w.ClosesAt
			if ws.r.minWindow > 0 && len(list) == 1 {
				early := ws.gathered(w, ws.r.minWindow)
				if ws.unbegun[c] != nil {
					early = later(early, now.Add(ws.r.beginPoll()))
				}
				if early.Before(at) {
					at = early
				}
			}
			if at = later(at, w.retryAt); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next, !next.IsZero()
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// dueWindows marks the windows due now as starting and returns them
// (each then waits for a free start).
func (r *Router) dueWindows(ctx context.Context, all bool) []*window {
	ws := &r.windows
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if err := ws.load(ctx); err != nil {
		r.opts.Logger.Error("router: loading entry windows", "err", err)
		return nil
	}
	now := r.opts.Now()
	var todo []*window
	canvases := make([]string, 0, len(ws.open))
	for c := range ws.open {
		canvases = append(canvases, c)
	}
	sort.Strings(canvases)
	for _, c := range canvases {
		list := ws.open[c]
		for i, w := range list {
			if ws.due(list, i, now, all) {
				w.starting, w.closed = true, now
				todo = append(todo, w)
			}
		}
	}
	return todo
}

// startWindow starts a window marked starting and settles the cache:
// started windows leave it, failed ones wait for their retry.
func (r *Router) startWindow(ctx context.Context, w *window) bool {
	ws := &r.windows
	var err error
	select {
	case ws.slots <- struct{}{}:
		err = r.start(ctx, w)
		<-ws.slots
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.starting = false
	if err != nil {
		w.failures++
		w.retryAt = r.opts.Now().Add(min(250*time.Millisecond<<min(w.failures-1, 7), 30*time.Second))
		r.opts.Logger.Error("router: starting an event-triggered run; retrying", "canvas", w.CanvasID, "workflow", w.WorkflowID,
			"users", w.Users, "attempts", w.failures, "err", err)
		return false
	}
	list := ws.open[w.CanvasID]
	for i := range list {
		if list[i] == w {
			ws.open[w.CanvasID] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(ws.open[w.CanvasID]) == 0 {
		delete(ws.open, w.CanvasID)
	}
	if r.minWindow > 0 {
		// The canvas's next window waits for this run to begin; Run's
		// loop looks again when it may start.
		if prev := ws.unbegun[w.CanvasID]; prev == nil || prev.FirstEvent < w.FirstEvent {
			ws.unbegun[w.CanvasID] = w
		}
		select {
		case ws.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// start starts a window's run and records that it did. A run already
// started under the window's id is this window's run (started before a
// crash or by a router that lost its lease), so that counts as started.
func (r *Router) start(ctx context.Context, w *window) error {
	users, err := r.opts.Store.WindowUsers(ctx, w.ID)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = r.opts.Runs.StartEventRun(sctx, EventRun{WorkflowID: w.WorkflowID, CanvasID: w.CanvasID, PlanHash: w.PlanHash, Users: users})
	if err != nil && !errors.Is(err, ErrRunStarted) {
		return err
	}
	return r.opts.Store.MarkWindowStarted(ctx, w.ID, w.closed)
}
