package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The applier copies in the rows its probe found missing, with no conflict
// clause (postgres_ingest.go). A row of the same key that another
// transaction inserts between the probe and the COPY — a writer outside the
// locks — fails the COPY with a unique violation; the group is applied again,
// stored once, with the other transaction's profile and event.
func TestAppliedGroupAgainAfterAUniqueViolation(t *testing.T) {
	s := openPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()

	// The other writer: a new profile u1 and the event m1, not committed yet.
	other, err := s.w.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = other.Rollback() }()
	_, err = other.ExecContext(ctx, pgRaw+`INSERT INTO profiles (id, doc, updated_at) VALUES ('u1', '{"id":"u1","by":"other"}', 1)`)
	require.NoError(t, err)
	_, err = other.ExecContext(ctx, pgRaw+`INSERT INTO events (message_id, uid, user_id, type, name, ts, received_at) VALUES ('m1', 0, '', 'track', 'opened', 1, 1)`)
	require.NoError(t, err)

	type result struct {
		res  []IngestResult
		errs []error
		err  error
	}
	done := make(chan result, 1)
	go func() {
		reqs := []IngestRequest{{Messages: []Message{
			{Type: "track", MessageID: "m1", UserID: "u1", Name: "opened", Timestamp: now},
			{Type: "track", MessageID: "m2", UserID: "u1", Name: "opened", Timestamp: now},
		}, Options: IngestOptions{Realtime: true, MarkDue: true}}}
		res, errs, err := s.IngestAll(ctx, reqs, "test.applied", 1)
		done <- result{res, errs, err}
	}()
	// The applier's COPY waits for the other transaction's uncommitted row.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, s.r.QueryRowContext(ctx, pgRaw+`SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query ILIKE 'copy "profiles"%'`).Scan(&n))
		return n > 0
	}, 20*time.Second, 20*time.Millisecond, "the applier never waited for the other writer's profile")
	require.NoError(t, other.Commit())

	r := <-done
	require.NoError(t, r.err)
	require.NoError(t, r.errs[0])
	require.Equal(t, 1, r.res[0].Stored, "m2 stored, m1 already stored by the other writer")
	require.Equal(t, 1, r.res[0].Duplicates)
	events, err := s.UserEvents(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, "u1", events[0].UserID)
	var profiles int
	var doc string
	require.NoError(t, s.r.QueryRowContext(ctx, pgRaw+`SELECT count(*), min(doc::text) FROM profiles WHERE id = 'u1'`).Scan(&profiles, &doc))
	require.Equal(t, 1, profiles)
	require.JSONEq(t, `{"id":"u1","by":"other"}`, doc, "the other writer's profile kept")
	var total int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&total))
	require.Equal(t, 2, total)
}
