package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/loadgen"
)

// BenchmarkBatchIngest posts /v1/batch requests of 500 events from 8
// concurrent HTTP clients to the API writing straight to a real SQLite
// store (no accept log: this is the store path the applier drives), with
// the trait engine recomputing traits, RFM and tags in the background, and
// reports events stored (committed) per second. `huabu bench ingest`
// measures the engine's path, through the accept log.
func BenchmarkBatchIngest(b *testing.B) {
	for _, size := range []int{100, 500} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := newStack(b, testConfig)
			const clients = 8
			requests := max(b.N, clients)
			bodies := loadgen.BatchBodies(requests, size, 100000, uint64(size))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= requests {
							return
						}
						req, _ := http.NewRequest("POST", s.srv.URL+"/v1/batch", bytes.NewReader(bodies[i]))
						req.SetBasicAuth("secret-key", "")
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(requests*size)/elapsed.Seconds(), "events/s")
			n, err := s.st.CountEvents(context.Background())
			require.NoError(b, err)
			require.Equal(b, int64(requests*size), n)
			// How far behind the traits are when the load stops, and how long
			// the engine takes to catch up.
			catchUp := time.Now()
			require.NoError(b, s.eng.WaitCurrent(context.Background()))
			b.ReportMetric(time.Since(catchUp).Seconds(), "trait-catch-up-s")
		})
	}
}
