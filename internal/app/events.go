package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// The event feed: how stored events reach the router.
//
// Accepted means stored, so the store's events table is the queue. The
// ingestion API (and the WeCom callback) store a request's events and then
// poke the feed (it is their ingest.Sink); the feed reads the events after
// its cursor from the store, in id order, routes them, and persists the
// cursor (setting routerCursorKey) every feedSaveEvery, never past the first
// event of an entry window whose run is not started yet. After a crash
// between storing and routing, the next start resumes from the cursor, so
// no stored event is lost; events routed after the last save are routed
// again, which changes nothing (exits, conversions and arrivals are
// idempotent; entries were written into their windows, which the router
// resumes from the store). A page the router cannot route is retried, with
// backoff, until it can: no event is ever skipped.

const (
	routerCursorKey = "router.cursor"
	feedPage        = 2000
	feedPoll        = time.Second            // a safety net: pokes do the real work
	feedSaveEvery   = 250 * time.Millisecond // how often the cursor is written under load
	// feedTraitsWait bounds how long the feed waits for the traits of the
	// events' users to be recomputed before routing them (conditions read
	// user.traits, user.rfm and user.tags).
	feedTraitsWait = 300 * time.Millisecond
	// feedMaxBackoff bounds the wait between attempts at a page the router
	// keeps failing on (Temporal or the store down).
	feedMaxBackoff = 30 * time.Second
)

// eventRouter is what the feed drives (*triggers.Router).
type eventRouter interface {
	Route(ctx context.Context, events []ingest.Event) error
	PendingFrom() int64
	ReadsUser(events []ingest.Event) bool
	// RoutedEvents names the events any stored plan reacts to (nil: all).
	RoutedEvents(ctx context.Context) ([]string, error)
}

// feedStore is what the feed reads and writes.
type feedStore interface {
	EventsToRoute(ctx context.Context, after int64, limit int, names []string) ([]store.EventRow, int64, error)
	LastEventID(ctx context.Context) (int64, error)
	Setting(ctx context.Context, key string, v any) (bool, error)
	SetSetting(ctx context.Context, key string, v any) error
}

// traitWaiter is the traits engine, when it has anything to compute.
type traitWaiter interface {
	WaitCurrent(ctx context.Context) error
}

type eventFeed struct {
	st     feedStore
	router eventRouter
	traits traitWaiter // nil: nothing to wait for
	log    *slog.Logger
	poke   chan struct{}
	poll   time.Duration // feedPoll (tests change it while run is not running)

	mu      sync.Mutex
	cursor  int64 // every routable event with id <= cursor has been routed
	saved   int64 // the cursor as last persisted
	savedAt time.Time
	// failures counts consecutive failed attempts at the same page (run's goroutine only).
	failures int
}

func newEventFeed(st feedStore, router eventRouter, traits traitWaiter, log *slog.Logger) *eventFeed {
	return &eventFeed{st: st, router: router, traits: traits, log: log, poke: make(chan struct{}, 1), poll: feedPoll}
}

// Events is the ingest.Sink the API calls after a commit: the events are in
// the store, so a poke is all the feed needs. It never blocks.
func (f *eventFeed) Events(ctx context.Context, events []ingest.Event) {
	select {
	case f.poke <- struct{}{}:
	default:
	}
}

// load reads the persisted cursor. A store that has none (a new one, or one
// from before the feed) starts at its newest event: there is nothing to
// catch up on.
func (f *eventFeed) load(ctx context.Context) error {
	var c int64
	ok, err := f.st.Setting(ctx, routerCursorKey, &c)
	if err != nil {
		return err
	}
	if !ok {
		if c, err = f.st.LastEventID(ctx); err != nil {
			return err
		}
		if err := f.st.SetSetting(ctx, routerCursorKey, c); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.cursor, f.saved, f.savedAt = c, c, time.Now()
	f.mu.Unlock()
	return nil
}

// Cursor is the last event id routed.
func (f *eventFeed) Cursor() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursor
}

// run routes stored events until ctx ends. After a failure it waits
// (doubling up to feedMaxBackoff, pokes notwithstanding) and tries the same
// events again.
func (f *eventFeed) run(ctx context.Context) {
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	for {
		var backoff <-chan time.Time
		if _, err := f.drain(ctx); err != nil && ctx.Err() == nil {
			f.failures++
			wait := min(feedPoll<<min(f.failures-1, 6), feedMaxBackoff)
			f.log.Error("routing stored events; retrying the same events", "after", f.Cursor(), "attempts", f.failures, "retry_in", wait, "err", err)
			backoff = time.After(wait)
		} else {
			f.failures = 0
		}
		f.save(ctx, false)
		if backoff != nil {
			select {
			case <-ctx.Done():
				return
			case <-backoff:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-f.poke:
		case <-tick.C:
		}
	}
}

// drain routes every stored event after the cursor, page by page, and
// returns how many it routed.
func (f *eventFeed) drain(ctx context.Context) (int, error) {
	routed := 0
	names, err := f.router.RoutedEvents(ctx)
	if err != nil {
		return 0, err
	}
	for ctx.Err() == nil {
		rows, next, err := f.st.EventsToRoute(ctx, f.Cursor(), feedPage, names)
		if err != nil {
			return routed, err
		}
		if len(rows) > 0 {
			events := toEvents(rows)
			if f.traits != nil && f.router.ReadsUser(events) {
				// A condition reads user.traits, .rfm or .tags, maybe:
				// recompute those of the events' users first, but not for
				// long (late traits are better than late events).
				wctx, cancel := context.WithTimeout(ctx, feedTraitsWait)
				_ = f.traits.WaitCurrent(wctx)
				cancel()
			}
			if err := f.router.Route(ctx, events); err != nil {
				// The cursor stays before these events: the caller tries
				// them again. Skipping them would lose entries, exits and
				// arrivals for good.
				return routed, fmt.Errorf("events %d to %d: %w", rows[0].ID, rows[len(rows)-1].ID, err)
			}
			routed += len(rows)
		}
		f.mu.Lock()
		f.cursor = max(f.cursor, next)
		f.mu.Unlock()
		f.save(ctx, false)
		if len(rows) < feedPage {
			return routed, nil
		}
	}
	return routed, ctx.Err()
}

// save persists the cursor, held back to before the first event of a
// window whose run is not started yet, at most every feedSaveEvery unless
// final.
func (f *eventFeed) save(ctx context.Context, final bool) {
	f.mu.Lock()
	c := f.cursor
	due := final || time.Since(f.savedAt) >= feedSaveEvery
	f.mu.Unlock()
	if p := f.router.PendingFrom(); p > 0 && p-1 < c {
		c = p - 1
	}
	if !due || c <= f.saved {
		return
	}
	if err := f.st.SetSetting(ctx, routerCursorKey, c); err != nil {
		if ctx.Err() == nil {
			f.log.Warn("saving the router cursor", "err", err)
		}
		return
	}
	f.mu.Lock()
	f.saved, f.savedAt = c, time.Now()
	f.mu.Unlock()
}

// toEvents turns stored rows into what the router reads.
func toEvents(rows []store.EventRow) []ingest.Event {
	out := make([]ingest.Event, len(rows))
	for i, r := range rows {
		var props map[string]any
		if len(r.Properties) > 0 {
			_ = json.Unmarshal(r.Properties, &props)
		}
		out[i] = ingest.Event{ID: r.ID, UID: r.UID, UserID: r.UserID, Name: r.Name, Properties: props,
			Timestamp: r.Timestamp, ReceivedAt: r.ReceivedAt, FromRealtime: r.Realtime}
	}
	return out
}
