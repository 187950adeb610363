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
	s := open(t)
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
}
