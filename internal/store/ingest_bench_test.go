package store

import (
	"context"
	"fmt"
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
