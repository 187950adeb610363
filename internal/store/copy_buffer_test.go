package store

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCopyBufferIsNotSizedByOneLargeRow: the PostgreSQL applier sizes a
// COPY's buffer from its first rows (copyFrom). One large event (properties
// up to ingest.MaxMessageBytes, 32 KiB) at the head of a group must not
// make it allocate that size for every row — hundreds of MiB for a group of
// 8,000, more than a worker has (review s9 H1).
func TestCopyBufferIsNotSizedByOneLargeRow(t *testing.T) {
	s := openPostgres(t)
	ctx := context.Background()
	now := time.Now()
	group := func(prefix string, firstProps int) []IngestRequest {
		const n = 8000 // applyGroupMessages; 32,000 while behind
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = Message{Type: "track", MessageID: fmt.Sprintf("%s-%d", prefix, i), UserID: fmt.Sprintf("u%d", i), Name: "opened", Timestamp: now,
				Properties: []byte(`{"a":1}`)}
		}
		if firstProps > 0 {
			msgs[0].Properties = []byte(`{"big":"` + strings.Repeat("x", firstProps) + `"}`)
		}
		return []IngestRequest{{Messages: msgs, Options: IngestOptions{Realtime: true}}}
	}
	alloc := func(reqs []IngestRequest) uint64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		_, errs, err := s.IngestAll(ctx, reqs, "test.applied", 1)
		require.NoError(t, err)
		require.NoError(t, errs[0])
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	small := alloc(group("small", 0))
	big := alloc(group("big", 30<<10))
	t.Logf("allocated: small first row %d MiB, 30 KiB first row %d MiB", small>>20, big>>20)
	require.Less(t, big, small+32<<20, "one 30 KiB event should not cost hundreds of MiB")
}
