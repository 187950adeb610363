package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
)

// TestRecordRoundTrip: a request survives the accept log's encoding as the
// store needs it (milliseconds are the store's precision).
func TestRecordRoundTrip(t *testing.T) {
	ts := time.UnixMilli(1795440000123)
	msgs := []store.Message{
		{Type: "track", MessageID: "m1", UserID: "u1", Name: "purchase", Properties: []byte(`{"amount":3}`), Timestamp: ts},
		{Type: "identify", MessageID: "m2", AnonymousID: "a1", Properties: []byte(`{"name":"小王"}`), Timestamp: ts},
		{Type: "alias", MessageID: "m3", UserID: "u1", PreviousID: "a1", Timestamp: ts},
	}
	opts := store.IngestOptions{Realtime: true, MarkDue: true, ReceivedAt: ts.Add(time.Second)}
	got, err := decodeRecord(encodeRecord(msgs, opts))
	require.NoError(t, err)
	require.Equal(t, opts.Realtime, got.Options.Realtime)
	require.Equal(t, opts.MarkDue, got.Options.MarkDue)
	require.True(t, opts.ReceivedAt.Equal(got.Options.ReceivedAt))
	require.Len(t, got.Messages, 3)
	for i := range msgs {
		require.True(t, msgs[i].Timestamp.Equal(got.Messages[i].Timestamp))
		got.Messages[i].Timestamp = msgs[i].Timestamp
	}
	require.Equal(t, msgs, got.Messages)

	// Damaged or foreign records are refused, never half read.
	rec := encodeRecord(msgs, opts)
	for _, bad := range [][]byte{nil, {9, 0}, rec[:len(rec)-3], append(rec[:len(rec):len(rec)], 1)} {
		_, err := decodeRecord(bad)
		require.ErrorIs(t, err, errBadRecord)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord([]store.Message{{Type: "track", MessageID: "m", UserID: "u", Name: "e", Properties: []byte(`{}`)}}, store.IngestOptions{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeRecord(b) // must not panic
	})
}
