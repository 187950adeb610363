package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkIngestAll stores groups of accept-log requests the way the
// applier does (IngestAll: one transaction per group, the applied position
// in it): many one-event requests (`huabu bench events`: one /v1/track
// call each) and a few 500-event ones (`huabu bench ingest`: /v1/batch).
func BenchmarkIngestAll(b *testing.B) {
	for _, shape := range []struct{ requests, size int }{{500, 1}, {8, 500}} {
		b.Run(fmt.Sprintf("requests=%d,events=%d", shape.requests, shape.size), func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "huabu.db"))
			require.NoError(b, err)
			defer s.Close()
			now := time.Now()
			seq := 0
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				reqs := make([]IngestRequest, shape.requests)
				for r := range reqs {
					msgs := make([]Message, shape.size)
					for m := range msgs {
						seq++
						msgs[m] = Message{Type: "track", MessageID: fmt.Sprint("m", seq), UserID: fmt.Sprint("u", seq%100000),
							Name: "app_open", Properties: []byte(`{"screen":"home"}`), Timestamp: now}
					}
					reqs[r] = IngestRequest{Messages: msgs, Options: IngestOptions{Realtime: true, MarkDue: true, ReceivedAt: now}}
				}
				_, errs, err := s.IngestAll(ctx, reqs, "bench.applied", i)
				require.NoError(b, err)
				for _, e := range errs {
					require.NoError(b, e)
				}
			}
			events := float64(b.N * shape.requests * shape.size)
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			// CPU per event: what a shared, loaded machine distorts least.
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/events, "cpu-µs/event")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestLikeBenchIngest stores what `huabu bench ingest --events
// 200000` sends (internal/loadgen: 100,000 users, a quarter purchases with
// an amount, the rest app opens, timestamps over 90 days) the way the
// applier does (groups of 500-event requests, traits marked due), into a
// new database each iteration: the applier's store path alone, at the
// bench's table sizes. group=8000 is the applier's group when it keeps up,
// the larger ones its groups while it is behind (ingest.behindGroupMessages).
func BenchmarkIngestLikeBenchIngest(b *testing.B) {
	const events, users, batch = 200000, 100000, 500
	ctx := context.Background()
	reqs := likeBenchIngest("7", events, users, batch, 1)
	apply := func(s *SQLite, reqs []IngestRequest, requests int) {
		for g := 0; g < len(reqs); g += requests {
			_, errs, err := s.IngestAll(ctx, reqs[g:min(g+requests, len(reqs))], "bench.applied", g)
			require.NoError(b, err)
			for _, e := range errs {
				require.NoError(b, e)
			}
		}
	}
	// known-users: a second 200,000 events of the same users into the
	// store the first filled — a sustained stream, where nearly every
	// user has a profile already.
	// onFreshStores opens a fresh store for each iteration, runs prepare
	// on it untimed, then times measured and reports events/s and CPU per
	// event.
	onFreshStores := func(b *testing.B, prepare, measured func(s *SQLite)) {
		var cpu time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), fmt.Sprint("huabu", i, ".db")))
			require.NoError(b, err)
			if prepare != nil {
				prepare(s)
			}
			b.StartTimer()
			start := cpuTime()
			measured(s)
			cpu += cpuTime() - start
			b.StopTimer()
			require.NoError(b, s.Close())
			b.StartTimer()
		}
		b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*events), "cpu-µs/event")
	}
	b.Run("group=8000/known-users", func(b *testing.B) {
		again := likeBenchIngest("8", events, users, batch, 3)
		onFreshStores(b, func(s *SQLite) { apply(s, reqs, 8000/batch) }, func(s *SQLite) { apply(s, again, 8000/batch) })
	})
	for _, group := range []int{8000, 16000, 32000} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			onFreshStores(b, nil, func(s *SQLite) { apply(s, reqs, group/batch) })
		})
	}
}

// likeBenchIngest is `huabu bench ingest`'s load as accept-log requests:
// batch-event requests of users u0…u(users-1), one purchase in four,
// message ids prefixed with prefix.
func likeBenchIngest(prefix string, events, users, batch int, seed uint64) []IngestRequest {
	now := time.Now()
	r := rand.New(rand.NewPCG(seed, 2))
	var reqs []IngestRequest
	for i := 0; i < events/batch; i++ {
		msgs := make([]Message, batch)
		for j := range msgs {
			u := fmt.Sprint("u", r.IntN(users))
			ts := now.Add(-time.Duration(r.IntN(90*24)) * time.Hour)
			if j%4 == 0 {
				msgs[j] = Message{Type: "track", MessageID: fmt.Sprintf("%s-%d-%d", prefix, i, j), UserID: u, Name: "purchase",
					Properties: fmt.Appendf(nil, `{"amount":%d,"order_id":"o%d-%d"}`, 10+r.IntN(480), i, j), Timestamp: ts}
			} else {
				msgs[j] = Message{Type: "track", MessageID: fmt.Sprintf("%s-%d-%d", prefix, i, j), UserID: u, Name: "app_open",
					Properties: []byte(`{"screen":"home","version":"3.2.1"}`), Timestamp: ts}
			}
		}
		reqs = append(reqs, IngestRequest{Messages: msgs, Options: IngestOptions{Realtime: true, MarkDue: true, ReceivedAt: now}})
	}
	return reqs
}
