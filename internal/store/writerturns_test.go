package store

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkWriterTurns: eight goroutines each run short write transactions
// through the writer, one after another, as the applier, the router, runs
// and the ledger do under load; it reports how long a transaction waited
// for its turn (p50, p99, max). The order turns are handed out in sets the
// tail (ADR 050).
func BenchmarkWriterTurns(b *testing.B) {
	const writers = 8
	ctx := context.Background()
	s, err := OpenSQLite(ctx, b.TempDir()+"/huabu.db")
	require.NoError(b, err)
	defer s.Close()
	_, err = s.w.ExecContext(ctx, `CREATE TABLE bench_turns (id INTEGER PRIMARY KEY, v TEXT)`)
	require.NoError(b, err)

	var mu sync.Mutex
	waits := make([]time.Duration, 0, b.N)
	next := make(chan struct{})
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				asked := time.Now()
				err := s.sharedTx(ctx, func(tx *sql.Tx) error {
					mu.Lock()
					waits = append(waits, time.Since(asked))
					mu.Unlock()
					for range 200 { // ~1 ms: a page of the ledger or a group of events
						if _, err := tx.ExecContext(ctx, `INSERT INTO bench_turns (v) VALUES ('x')`); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Error(err)
				}
			}
		}()
	}
	b.ResetTimer()
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	b.StopTimer()
	slices.Sort(waits)
	at := func(q float64) float64 { return float64(waits[int(q*float64(len(waits)-1))]) / 1e6 }
	b.ReportMetric(at(0.5), "p50-wait-ms")
	b.ReportMetric(at(0.99), "p99-wait-ms")
	b.ReportMetric(at(1), "max-wait-ms")
}
