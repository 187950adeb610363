package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store/storetest"
)

// eachStorePair runs test with two stores open on one database — two
// connection pools, as two worker processes would have: SQLite (one file)
// and PostgreSQL (one schema).
func eachStorePair(t *testing.T, test func(t *testing.T, a, b *SQLite)) {
	t.Helper()
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "huabu.db")
		a, err := OpenSQLite(ctx, path)
		require.NoError(t, err)
		t.Cleanup(func() { a.Close() })
		b, err := OpenSQLite(ctx, path)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		test(t, a, b)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.PostgresDSN(t)
		a, err := OpenPostgres(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { a.Close() })
		b, err := OpenPostgres(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		test(t, a, b)
	})
}

// TestTwoProcessesClaimEachDeliveryOnce: two stores on one database claim
// the same ledger rows at once, from goroutines racing in many rounds.
// Every recipient is claimed by exactly one attempt: nobody is sent twice,
// nobody is lost (SQLite's single writer made this hold in one process; on
// PostgreSQL the write lock must make it hold across processes).
func TestTwoProcessesClaimEachDeliveryOnce(t *testing.T) {
	eachStorePair(t, func(t *testing.T, a, b *SQLite) {
		ctx := context.Background()
		uids := make([]int64, 300)
		for i := range uids {
			uids[i] = int64(i + 1)
		}
		for round := range 20 {
			key := LedgerKey{RunID: 1, StepID: fmt.Sprintf("s%d", round)}
			var wg sync.WaitGroup
			claims := make([]Claim, 2)
			errs := make([]error, 2)
			for i, s := range []*SQLite{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					claims[i], errs[i] = s.ClaimDeliveries(ctx, key, "push", fmt.Sprintf("attempt-%d", i), uids, nil)
				}()
			}
			wg.Wait()
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			mine := append(append([]int64{}, claims[0].Mine...), claims[1].Mine...)
			sort.Slice(mine, func(i, j int) bool { return mine[i] < mine[j] })
			require.Equal(t, uids, mine, "round %d: each recipient claimed by exactly one attempt", round)
		}
	})
}

// TestTwoProcessesStoreEachEventOnce: two stores ingest the same messages
// at once; each message is stored once, and the two results together
// count each once as stored and once as a duplicate.
func TestTwoProcessesStoreEachEventOnce(t *testing.T) {
	eachStorePair(t, func(t *testing.T, a, b *SQLite) {
		ctx := context.Background()
		const rounds, size = 10, 200
		for round := range rounds {
			msgs := make([]Message, size)
			for j := range msgs {
				msgs[j] = Message{Type: "track", MessageID: fmt.Sprintf("m%d-%d", round, j), UserID: fmt.Sprintf("u%d", j%37), Name: "app_open", Properties: []byte(`{}`), Timestamp: time.UnixMilli(int64(1000 + j))}
			}
			var wg sync.WaitGroup
			res := make([]IngestResult, 2)
			errs := make([]error, 2)
			for i, s := range []*SQLite{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[i], errs[i] = s.Ingest(ctx, msgs, IngestOptions{Realtime: true, MarkDue: true})
				}()
			}
			wg.Wait()
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			require.Equal(t, size, res[0].Stored+res[1].Stored, "round %d", round)
			require.Equal(t, size, res[0].Duplicates+res[1].Duplicates, "round %d", round)
			ids := map[int64]bool{}
			for _, r := range res {
				for _, e := range r.Events {
					require.False(t, ids[e.ID], "event id %d reported twice", e.ID)
					require.NotZero(t, e.ID)
					ids[e.ID] = true
				}
			}
			require.Len(t, ids, size)
		}
		n, err := a.CountEvents(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(rounds*size), n)
		uids, err := b.UIDs(ctx, []string{"u0", "u36"})
		require.NoError(t, err)
		require.Len(t, uids, 2, "one profile per user, however many processes created it")
		profiles, err := a.CountProfiles(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(37), profiles)
	})
}

// TestFeedFollowsEventsStoredByTwoProcesses: two stores ingest events at
// once while a reader follows them as the router's feed does
// (EventsToRoute after its cursor, in id order). The reader sees every
// stored event exactly once: an id below the reader's cursor never commits
// after the reader passed it (ids are drawn under the write lock, so they
// commit in id order; without it, PostgreSQL's sequence hands out ids
// before commit and a slower transaction's events would be skipped).
func TestFeedFollowsEventsStoredByTwoProcesses(t *testing.T) {
	eachStorePair(t, func(t *testing.T, a, b *SQLite) {
		ctx := context.Background()
		const writers, requests, size = 3, 60, 5 // per store
		var (
			mu     sync.Mutex
			stored = map[int64]bool{}
		)
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers)
		for si, s := range []*SQLite{a, b} {
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range requests {
						msgs := make([]Message, size)
						for j := range msgs {
							msgs[j] = Message{Type: "track", MessageID: fmt.Sprintf("m%d-%d-%d-%d", si, w, r, j), UserID: fmt.Sprintf("u%d", (r*size+j)%50),
								Name: "app_open", Properties: []byte(`{}`), Timestamp: time.UnixMilli(int64(1000 + j))}
						}
						res, err := s.Ingest(ctx, msgs, IngestOptions{Realtime: true})
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						for _, e := range res.Events {
							stored[e.ID] = true
						}
						mu.Unlock()
					}
				}()
			}
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()

		seen := map[int64]int{}
		var cursor int64
		follow := func() {
			for {
				rows, next, err := a.EventsToRoute(ctx, cursor, 100, nil)
				require.NoError(t, err)
				for _, r := range rows {
					seen[r.ID]++
				}
				cursor = next
				if len(rows) < 100 {
					return
				}
			}
		}
		for following := true; following; {
			select {
			case <-done:
				following = false
			default:
			}
			follow() // after done: once more, everything is committed
		}
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, stored, 2*writers*requests*size)
		missed := 0
		for id := range stored {
			if seen[id] == 0 {
				missed++
			}
		}
		require.Zero(t, missed, "events stored but passed over by the feed (of %d)", len(stored))
		for id, n := range seen {
			require.Equal(t, 1, n, "event %d read %d times", id, n)
		}
	})
}

// TestArrivalsRacingTheEndOfAWait: one store records arrivals (the router)
// while another ends the wait and collects it (CollectArrivals on another
// worker): every member is in exactly one child — arrived or timed out —
// whichever commits first. Before, on PostgreSQL, an arrival whose EXISTS
// saw the wait could commit after the final collection read the arrivals,
// and the remainder left out every arrival: that user was in neither.
func TestArrivalsRacingTheEndOfAWait(t *testing.T) {
	eachStorePair(t, func(t *testing.T, router, collector *SQLite) {
		ctx := context.Background()
		const members = 400
		for round := range 15 {
			run, err := collector.BeginRun(ctx, fmt.Sprintf("wf/%d", round), "c", "h", "manual")
			require.NoError(t, err)
			waiting, err := collector.CreateCohort(ctx, fmt.Sprintf("%d/waiting", round), run.ID, "wait", 0, time.Time{})
			require.NoError(t, err)
			uids := make([]int64, members)
			for i := range uids {
				uids[i] = int64(i + 1)
			}
			require.NoError(t, collector.WritePages(ctx, waiting.ID, []Page{{No: 0, Members: uids}}))
			waiting, err = collector.SealCohort(ctx, waiting.ID, 1)
			require.NoError(t, err)
			require.NoError(t, collector.RegisterWait(ctx, Wait{CohortID: waiting.ID, RunID: run.ID, CanvasID: "c", StepID: "wait", Event: "open", Deadline: time.Now()}))

			// The router records arrivals one user at a time, as events come.
			var wg sync.WaitGroup
			var recordErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, u := range uids {
					if _, err := router.RecordArrivals(ctx, waiting.ID, []int64{u}, time.Now()); err != nil {
						recordErr = err
						return
					}
				}
			}()
			// Meanwhile the deadline: end the wait, collect, the rest time out.
			time.Sleep(time.Duration(round) * time.Millisecond)
			require.NoError(t, collector.EndWait(ctx, waiting.ID))
			arrived, err := collector.ChildCohort(ctx, waiting, "arrived1")
			require.NoError(t, err)
			for {
				n, err := collector.CollectArrivalsPage(ctx, waiting.ID, arrived.ID)
				require.NoError(t, err)
				if n < PageSize {
					break
				}
			}
			rest, err := collector.ChildCohort(ctx, waiting, "timeout")
			require.NoError(t, err)
			require.NoError(t, collector.WriteRemainderPages(ctx, waiting.ID, rest.ID, 0, 1))
			wg.Wait()
			require.NoError(t, recordErr)

			in := map[int64]int{}
			for _, child := range []int64{arrived.ID, rest.ID} {
				pages, err := collector.Pages(ctx, child, 0, 1<<20)
				require.NoError(t, err)
				for _, p := range pages {
					for _, m := range p.Members {
						in[m]++
					}
				}
			}
			for _, u := range uids {
				require.Equal(t, 1, in[u], "round %d: user %d is in %d of the wait's children", round, u, in[u])
			}
		}
	})
}

// TestWorkersStartingAtOnceOnAnEmptyDatabase: several workers open a new
// PostgreSQL store at the same moment (a cluster's first start); every one
// opens it, and each migration is applied once.
func TestWorkersStartingAtOnceOnAnEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	for round := range 5 {
		dsn := storetest.PostgresDSN(t)
		const workers = 8
		stores := make([]*SQLite, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stores[i], errs[i] = OpenPostgres(ctx, dsn)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "round %d, worker %d", round, i)
			t.Cleanup(func() { stores[i].Close() })
		}
		var versions, distinct int
		require.NoError(t, stores[0].r.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&versions, &distinct))
		require.Equal(t, distinct, versions)
		require.Positive(t, versions)
	}
}

// TestLedgerPagesOfTwoWorkersAtOnce: the pages of a send are claimed and
// settled by two stores at once (on PostgreSQL ledger transactions share
// the write lock and rely on row locks), every page by two racing attempts,
// as after a lost activity completion. Each recipient is claimed by one
// attempt only, has one ledger row, and the step counters the writes kept
// equal the counts of the rows.
func TestLedgerPagesOfTwoWorkersAtOnce(t *testing.T) {
	eachStorePair(t, func(t *testing.T, a, b *SQLite) {
		ctx := context.Background()
		const pages, size = 8, 150
		key := LedgerKey{RunID: 1, StepID: "push"}
		mine := make([][]int64, 2*pages)
		errs := make([]error, 2*pages)
		var wg sync.WaitGroup
		for p := range pages {
			uids := make([]int64, size)
			for i := range uids {
				uids[i] = int64(p*size + i + 1)
			}
			for w, s := range []*SQLite{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					attempt := fmt.Sprintf("page%d-worker%d", p, w)
					claim, err := s.ClaimDeliveries(ctx, key, "push", attempt, uids, nil)
					if err != nil {
						errs[2*p+w] = err
						return
					}
					mine[2*p+w] = claim.Mine
					var settle []Settlement
					for i, u := range claim.Mine {
						st := Settlement{UID: u, State: DeliverySent, ProviderRef: attempt}
						if i%3 == w {
							st = Settlement{UID: u, State: DeliveryFailed, Reason: "rejected"}
						}
						settle = append(settle, st)
					}
					errs[2*p+w] = s.SettleDeliveries(ctx, key, attempt, settle)
				}()
			}
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		claimed := map[int64]int{}
		for _, m := range mine {
			for _, u := range m {
				claimed[u]++
			}
		}
		require.Len(t, claimed, pages*size, "every recipient claimed")
		for u, n := range claimed {
			require.Equal(t, 1, n, "uid %d claimed by %d attempts", u, n)
		}
		var rows int64
		require.NoError(t, a.r.QueryRowContext(ctx, `SELECT count(*) FROM deliveries`).Scan(&rows))
		require.Equal(t, int64(pages*size), rows)

		counts, _, err := a.Counts(ctx, "", 1)
		require.NoError(t, err)
		require.Zero(t, counts["push"].Pending, "every claimed row settled")
		require.NoError(t, b.RecountRun(ctx, 1))
		recounted, _, err := a.Counts(ctx, "", 1)
		require.NoError(t, err)
		require.Equal(t, recounted, counts, "maintained counters differ from the rows")
	})
}

// TestClaimSendsRowsReleasedWhileItRuns: on PostgreSQL a claim's insert
// skips rows another attempt of the page holds, and reads them in a later
// statement. When that attempt releases them in between (its provider call
// was rate limited: ReleaseDeliveries), the claim must still return every
// recipient, as its to send or as decided — a recipient in neither is never
// sent. A statement trigger holds the claim between its insert and its read
// (review of 7277430).
func TestClaimSendsRowsReleasedWhileItRuns(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	a, err := OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	defer a.Close()
	b, err := OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	defer b.Close()
	key := LedgerKey{RunID: 1, StepID: "push"}
	uids := []int64{1, 2, 3}
	first, err := a.ClaimDeliveries(ctx, key, "push", "attempt-1", uids, nil)
	require.NoError(t, err)
	require.Equal(t, uids, first.Mine)

	const lockID = 4242
	_, err = a.w.ExecContext(ctx, pgRaw+`CREATE FUNCTION hold_claim() RETURNS trigger AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$ LANGUAGE plpgsql`)
	require.NoError(t, err)
	_, err = a.w.ExecContext(ctx, pgRaw+`CREATE TRIGGER hold_claim AFTER INSERT ON deliveries FOR EACH STATEMENT EXECUTE FUNCTION hold_claim()`)
	require.NoError(t, err)
	hold, err := a.w.Conn(ctx)
	require.NoError(t, err)
	defer hold.Close()
	_, err = hold.ExecContext(ctx, pgRaw+`SELECT pg_advisory_lock(4242)`)
	require.NoError(t, err)

	type result struct {
		claim Claim
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, err := b.ClaimDeliveries(ctx, key, "push", "attempt-2", uids, nil)
		done <- result{c, err}
	}()
	// attempt-2's insert has run and waits in the trigger for the lock.
	require.Eventually(t, func() bool {
		var waiting int
		err := hold.QueryRowContext(ctx, pgRaw+`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`, lockID).Scan(&waiting)
		return err == nil && waiting > 0
	}, 30*time.Second, 20*time.Millisecond)
	// attempt-1, still running (the zombie of a timed-out activity), was rate limited.
	require.NoError(t, a.ReleaseDeliveries(ctx, key, "attempt-1", uids))
	_, err = hold.ExecContext(ctx, pgRaw+`SELECT pg_advisory_unlock(4242)`)
	require.NoError(t, err)
	r := <-done
	require.NoError(t, r.err)
	got := append([]int64{}, r.claim.Mine...)
	for u := range r.claim.Done {
		got = append(got, u)
	}
	slices.Sort(got)
	require.Equal(t, uids, got, "every recipient of the page is to send (Mine) or decided (Done)")
	require.Equal(t, uids, r.claim.Mine, "the released rows are attempt-2's to send")
}
