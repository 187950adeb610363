package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConcurrentIngestsStayAllOrNothing: concurrent requests share group
// transactions, yet a request that fails stores nothing and takes nothing
// of the others with it.
func TestConcurrentIngestsStayAllOrNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		const requests = 40
		var wg sync.WaitGroup
		errs := make([]error, requests)
		for i := range requests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msgs := make([]Message, 50)
				for j := range msgs {
					msgs[j] = Message{Type: "track", MessageID: fmt.Sprintf("r%d-%d", i, j), UserID: fmt.Sprintf("u%d", j), Name: "app_open", Properties: []byte(`{}`), Timestamp: time.Now()}
				}
				if i%10 == 3 {
					// identify traits that are not JSON make json_patch fail
					// inside the request's savepoint, after its events went in.
					msgs[49] = Message{Type: "identify", MessageID: fmt.Sprintf("r%d-bad", i), UserID: "u1", Properties: []byte(`{not json`), Timestamp: time.Now()}
				}
				_, errs[i] = s.Ingest(ctx, msgs, IngestOptions{Realtime: true, MarkDue: true})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if i%10 == 3 {
				require.Error(t, err, "request %d", i)
			} else {
				require.NoError(t, err, "request %d", i)
			}
		}
		n, err := s.CountEvents(ctx)
		require.NoError(t, err)
		require.Equal(t, int64((requests-4)*50), n, "the failed requests stored nothing, the others everything")
		var bad int
		require.NoError(t, s.r.QueryRow(`SELECT count(*) FROM events WHERE message_id LIKE 'r3-%' OR message_id LIKE 'r13-%'`).Scan(&bad))
		require.Zero(t, bad)
	})
}

// TestEventsToRouteByName: the feed reads only the events some plan reacts
// to, and still moves past the others.
func TestEventsToRouteByName(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, s *SQLite) {
		now := time.Now()
		var msgs []Message
		for i, name := range []string{"app_open", "purchase", "app_open", "coupon_used", "app_open"} {
			msgs = append(msgs, Message{Type: "track", MessageID: fmt.Sprint("m", i), UserID: "u1", Name: name, Properties: []byte(`{}`), Timestamp: now})
		}
		_, err := s.Ingest(ctx, msgs, IngestOptions{Realtime: true})
		require.NoError(t, err)
		last, err := s.LastEventID(ctx)
		require.NoError(t, err)

		rows, next, err := s.EventsToRoute(ctx, 0, 100, []string{"coupon_used", "purchase"})
		require.NoError(t, err)
		require.Equal(t, last, next)
		var names []string
		for _, r := range rows {
			names = append(names, r.Name)
		}
		require.Equal(t, []string{"purchase", "coupon_used"}, names)

		rows, next, err = s.EventsToRoute(ctx, 0, 100, []string{})
		require.NoError(t, err)
		require.Empty(t, rows)
		require.Equal(t, last, next, "no plan reacts to events: all are passed over")

		rows, _, err = s.EventsToRoute(ctx, 0, 100, nil)
		require.NoError(t, err)
		require.Len(t, rows, 5, "nil: every event")
	})
}

// TestIngestAllStoresRequestsAsIfOneByOne: the applier's group transaction
// stores runs of requests in one pass (statements per run, not per
// request); every request's result and everything stored must be what
// storing the requests one at a time gives — duplicates across requests,
// identify order, new users, and anonymous ids that a later request in the
// group aliases.
func TestIngestAllStoresRequestsAsIfOneByOne(t *testing.T) {
	ctx := context.Background()
	t0 := time.UnixMilli(1_700_000_000_000)
	track := func(id, user, anon, name string) Message {
		return Message{Type: "track", MessageID: id, UserID: user, AnonymousID: anon, Name: name, Properties: []byte(`{"n":1}`), Timestamp: t0}
	}
	identify := func(id, user, anon, traits string) Message {
		return Message{Type: "identify", MessageID: id, UserID: user, AnonymousID: anon, Properties: []byte(traits), Timestamp: t0}
	}
	reqs := []IngestRequest{
		{Messages: []Message{track("m1", "u1", "", "app_open")}},
		{Messages: []Message{track("m2", "u2", "", "purchase"), identify("m3", "u1", "", `{"city":"杭州","level":"gold"}`)}},
		{Messages: []Message{track("m1", "u1", "", "app_open"), track("m4", "u3", "", "app_open")}}, // m1 again: a duplicate
		{Messages: []Message{track("m5", "", "anon-1", "app_open"), identify("m6", "", "anon-1", `{"city":"上海","plan":"trial"}`)}},
		{Messages: []Message{identify("m7", "u1", "", `{"level":"silver"}`)}},
		{Messages: []Message{{Type: "alias", MessageID: "m8", UserID: "u4", PreviousID: "anon-1", Timestamp: t0}}}, // adopts m5 and m6
		{Messages: []Message{track("m9", "", "anon-1", "purchase"), track("m10", "u5", "", "app_open")}},
		{Messages: []Message{track("m11", "u6", "anon-2", "app_open")}}, // both ids: maps anon-2
		{Messages: []Message{track("m12", "", "anon-2", "app_open"), track("m13", "u2", "", "app_open")}},
	}
	for i := range reqs {
		reqs[i].Options = IngestOptions{Realtime: i%2 == 0, MarkDue: true, ReceivedAt: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	type event struct {
		MessageID, UserID, Anon, Name string
		ReceivedAt, Realtime          int64
	}
	stored := func(t *testing.T, s *SQLite) (events []event, docs map[string]map[string]any, dirty int) {
		rows, err := s.r.QueryContext(ctx, `SELECT message_id, user_id, anonymous_id, name, received_at, realtime FROM events ORDER BY id`)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var e event
			require.NoError(t, rows.Scan(&e.MessageID, &e.UserID, &e.Anon, &e.Name, &e.ReceivedAt, &e.Realtime))
			events = append(events, e)
		}
		require.NoError(t, rows.Err())
		docs = map[string]map[string]any{}
		prof, err := s.r.QueryContext(ctx, `SELECT id, doc FROM profiles ORDER BY id`)
		require.NoError(t, err)
		defer prof.Close()
		for prof.Next() {
			var id string
			var doc []byte
			require.NoError(t, prof.Scan(&id, &doc))
			docs[id] = docOf(t, doc)
		}
		require.NoError(t, s.r.QueryRowContext(ctx, `SELECT count(*) FROM trait_dirty`).Scan(&dirty))
		return events, docs, dirty
	}
	// userIDs are what a result names (uids differ between stores).
	type result struct {
		Stored, Duplicates int
		Events             []string // index:user
		Touched            int
	}
	summarize := func(res IngestResult) result {
		r := result{Stored: res.Stored, Duplicates: res.Duplicates, Touched: len(res.Touched)}
		for _, e := range res.Events {
			r.Events = append(r.Events, fmt.Sprintf("%d:%s", e.Index, e.UserID))
		}
		return r
	}
	eachStore(t, func(t *testing.T, s *SQLite) {
		one := openLike(t, s)
		var want []result
		for i, r := range reqs {
			res, errs, err := one.IngestAll(ctx, []IngestRequest{r}, "applied", i)
			require.NoError(t, err)
			require.NoError(t, errs[0])
			want = append(want, summarize(res[0]))
		}
		res, errs, err := s.IngestAll(ctx, reqs, "applied", len(reqs))
		require.NoError(t, err)
		var got []result
		for i := range reqs {
			require.NoError(t, errs[i])
			got = append(got, summarize(res[i]))
		}
		require.Equal(t, want, got)
		wantEvents, wantDocs, wantDirty := stored(t, one)
		gotEvents, gotDocs, gotDirty := stored(t, s)
		require.Equal(t, wantEvents, gotEvents)
		require.Equal(t, wantDocs, gotDocs)
		require.Equal(t, wantDirty, gotDirty)
		require.Equal(t, "u4", wantEvents[4].UserID, "the alias adopted anon-1's earlier event (the test covers adoption)")
	})
}

// openLike opens another empty store of the same kind as s.
func openLike(t *testing.T, s *SQLite) *SQLite {
	if s.Postgres() {
		return openPostgres(t)
	}
	return open(t)
}

// TestIngestedEventsNameTheirRows: the ids an ingest reports are the rows
// that hold each new event — whether every message was new (the ids are
// then known without reading them back) or some were stored already or
// repeated within the request — across more messages than one INSERT
// statement carries.
func TestIngestedEventsNameTheirRows(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	msg := func(id int) Message {
		return Message{Type: "track", MessageID: fmt.Sprint("m", id), UserID: fmt.Sprint("u", id%7), Name: "app_open", Properties: []byte(`{"n":1}`), Timestamp: t0}
	}
	var first, second []Message
	for i := range 3*eventRows + 5 {
		first = append(first, msg(i))
	}
	for i := 2 * eventRows; i < 5*eventRows; i++ { // the first eventRows+5 are stored already
		second = append(second, msg(i))
		if i%9 == 0 {
			second = append(second, msg(i)) // and some repeat within the request
		}
	}
	eachStore(t, func(t *testing.T, s *SQLite) {
		stored := map[string]bool{}
		for round, msgs := range [][]Message{first, second, second} {
			res, err := s.Ingest(ctx, msgs, IngestOptions{Realtime: true})
			require.NoError(t, err)
			var wantNew []int
			for i, m := range msgs {
				var n int
				require.NoError(t, s.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE message_id = ?`, m.MessageID).Scan(&n))
				require.Equal(t, 1, n)
				if !stored[m.MessageID] {
					stored[m.MessageID] = true
					wantNew = append(wantNew, i)
				}
			}
			require.Equal(t, len(wantNew), res.Stored, "round %d", round)
			require.Equal(t, len(msgs)-len(wantNew), res.Duplicates, "round %d", round)
			require.Len(t, res.Events, len(wantNew))
			for k, e := range res.Events {
				require.Equal(t, wantNew[k], e.Index)
				var mid, user string
				require.NoError(t, s.r.QueryRowContext(ctx, `SELECT message_id, user_id FROM events WHERE id = ?`, e.ID).Scan(&mid, &user))
				require.Equal(t, msgs[e.Index].MessageID, mid, "round %d: event %d", round, k)
				require.Equal(t, msgs[e.Index].UserID, user)
				require.Equal(t, user, e.UserID)
			}
		}
	})
}
