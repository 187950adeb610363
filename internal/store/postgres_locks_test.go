package store

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store/storetest"
)

// The PostgreSQL lock plan (ADR 039): appliers hold the write lock shared
// and the events lock; the event run's transactions hold the write lock
// shared, alone or with their object's lock; every other writer holds the
// write lock exclusively.

// holdLock begins a transaction holding what lock takes, until the test
// ends or the returned function commits it.
func holdLock(t *testing.T, s *SQLite, lock func(context.Context, *sql.Tx) error) func() {
	t.Helper()
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	require.NoError(t, lock(ctx, tx))
	return func() { require.NoError(t, tx.Commit()) }
}

// storeLockWaiters counts the sessions waiting for one of this schema's
// two-key store locks (pgWriteLock, pgEventsLock, ...).
func storeLockWaiters(t *testing.T, s *SQLite, lock int) int {
	var n int
	require.NoError(t, s.r.QueryRowContext(context.Background(), pgRaw+`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
		AND objsubid = 2 AND classid = $1::bigint::oid AND objid = (hashtext(current_schema())::bigint & 4294967295)::oid`, lock).Scan(&n))
	return n
}

// keyedLockWaiters counts the sessions waiting for an object's lock (lockKeyed).
func keyedLockWaiters(t *testing.T, s *SQLite, kind string, id int64) int {
	var n int
	require.NoError(t, s.r.QueryRowContext(context.Background(), pgRaw+`SELECT count(*) FROM pg_locks, (SELECT hashtextextended(current_schema() || '/`+kind+`/' || $1::bigint, 0) AS k) key
		WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1 AND classid = ((key.k >> 32) & 4294967295)::oid AND objid = (key.k & 4294967295)::oid`, id).Scan(&n))
	return n
}

// An event run's store writes go on while an applier stores events: with
// the exclusive write lock they queued behind every worker's applier.
func TestRunPathWritesBesideAnApplier(t *testing.T) {
	s := openPostgres(t)
	commit := holdLock(t, s, s.lockEvents) // an applier, mid-transaction
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	run, err := s.BeginRun(ctx, "wf-1", "c", "h", "event")
	require.NoError(t, err)
	cohort, err := s.CreateCohort(ctx, "entry", run.ID, "", 0, time.Time{})
	require.NoError(t, err)
	require.NoError(t, s.WriteEntryChunk(ctx, cohort.ID, EntryChunk{CanvasID: "c", RunID: run.ID, AfterUID: 0, LastUID: 3, FromPage: 0, ToPage: 1,
		Pages: []Page{{No: 0, Members: []int64{1, 2, 3}}}, RecordEntries: true}), "entering users beside an applier")
	sealed, err := s.SealCohort(ctx, cohort.ID, 1)
	require.NoError(t, err, "sealing a cohort beside an applier")
	require.Equal(t, int64(3), sealed.Size)
	next, err := s.CreateCohort(ctx, "push", run.ID, "push", cohort.ID, time.Time{})
	require.NoError(t, err)
	require.NoError(t, s.WritePages(ctx, next.ID, []Page{{No: 0, Members: []int64{1, 2}}}), "writing pages beside an applier")
	key := LedgerKey{RunID: run.ID, StepID: "push"}
	claim, err := s.ClaimDeliveries(ctx, key, "push", "a1", []int64{1, 2}, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, claim.Mine)
	require.NoError(t, s.SettleTouches(ctx, key, map[int64]string{1: "push"}, []int64{2}), "settling touches beside an applier")
	require.NoError(t, s.RecordExits(ctx, run.ID, "push", "done", []int64{3}), "recording exits beside an applier")
	require.NoError(t, s.RecordConversions(ctx, run.ID, []int64{1}, time.Now()), "recording conversions beside an applier")
	require.NoError(t, s.FinishRun(ctx, run.ID, RunCompleted, ""), "finishing a run beside an applier")
	commit()

	got, err := s.GetRun(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, RunCompleted, got.State)
}

// Appliers exclude each other (events' ids commit in id order: the feed,
// TestFeedFollowsEventsStoredByTwoProcesses) and every exclusive writer
// still excludes them, and waits for them.
func TestAppliersExcludeEachOtherAndExclusiveWriters(t *testing.T) {
	s := openPostgres(t)
	ctx := context.Background()
	commit := holdLock(t, s, s.lockEvents)

	applied := make(chan error, 1)
	go func() {
		_, err := s.Ingest(ctx, []Message{{Type: "track", MessageID: "m1", UserID: "u1", Name: "app_open", Properties: []byte(`{}`), Timestamp: time.UnixMilli(1000)}}, IngestOptions{})
		applied <- err
	}()
	require.Eventually(t, func() bool { return storeLockWaiters(t, s, pgEventsLock) == 1 }, 30*time.Second, 20*time.Millisecond,
		"a second applier waits for the events lock")

	wrote := make(chan error, 1)
	go func() { wrote <- s.RecountRun(ctx, 1) }() // one of the exclusive writers
	require.Eventually(t, func() bool { return storeLockWaiters(t, s, pgWriteLock) == 1 }, 30*time.Second, 20*time.Millisecond,
		"an exclusive writer waits for the applier's shared write lock")

	commit()
	require.NoError(t, <-applied)
	require.NoError(t, <-wrote)
	n, err := s.CountEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
}

// Transactions that read, then write, a cohort's pages exclude each other
// per cohort, not per store.
func TestCohortTransactionsExcludeEachOtherPerCohort(t *testing.T) {
	s := openPostgres(t)
	ctx := context.Background()
	run, err := s.BeginRun(ctx, "wf-1", "c", "h", "event")
	require.NoError(t, err)
	held, err := s.CreateCohort(ctx, "a", run.ID, "", 0, time.Time{})
	require.NoError(t, err)
	other, err := s.CreateCohort(ctx, "b", run.ID, "", 0, time.Time{})
	require.NoError(t, err)
	commit := holdLock(t, s, s.lockKeyed("cohort", held.ID))

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, s.WritePages(wctx, other.ID, []Page{{No: 0, Members: []int64{1}}}), "another cohort's pages")

	sealed := make(chan error, 1)
	go func() {
		_, err := s.SealCohort(ctx, held.ID, 1)
		sealed <- err
	}()
	require.Eventually(t, func() bool { return keyedLockWaiters(t, s, "cohort", held.ID) == 1 }, 30*time.Second, 20*time.Millisecond,
		"the held cohort's seal waits for its lock")
	commit()
	require.NoError(t, <-sealed)
}

// A worker watching the store is woken when another worker commits events
// (the router's feed: no poll between another worker's applier and the
// leader), and not by stores in other schemas of the same database.
func TestWatchEventsWakesOnAnotherWorkersCommit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := storetest.PostgresDSN(t)
	leader, err := OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { leader.Close() })
	other, err := OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	elsewhere := openPostgres(t) // another schema

	wakes := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		leader.WatchEvents(ctx, func() { wakes <- struct{}{} })
	}()
	next := func(what string) {
		select {
		case <-wakes:
		case <-time.After(30 * time.Second):
			t.Fatalf("no wake: %s", what)
		}
	}
	next("listening") // it wakes once it listens: events stored before were missed
	ingest := func(s *SQLite, id string) {
		_, err := s.Ingest(ctx, []Message{{Type: "track", MessageID: id, UserID: "u1", Name: "app_open", Properties: []byte(`{}`), Timestamp: time.UnixMilli(1000)}}, IngestOptions{})
		require.NoError(t, err)
	}
	// Notifications arrive in commit order: had the other schema's three
	// commits woken it, two of their wakes would still be queued after
	// the two below.
	for _, id := range []string{"e1", "e2", "e3"} {
		ingest(elsewhere, id)
	}
	ingest(other, "m1")
	next("another worker stored an event")
	ingest(other, "m2")
	next("another worker stored an event again")
	require.Empty(t, wakes, "one wake per commit, none for the other schema's")
	cancel()
	<-done
}
