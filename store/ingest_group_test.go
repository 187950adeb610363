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
