package embedded

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCheckpointerCopiesTheWAL: with a data dir, temporal.db's WAL is copied
// into the file by the server's own checkpointer, and Temporal's connection
// is opened with the high wal_autocheckpoint that keeps its commits from
// checkpointing (ADR 049).
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	t.Parallel()
	require.Equal(t, "20000", fileConnectAttributes()["wal_autocheckpoint"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Stop()) }()
	require.NotNil(t, srv.checkpoints)
	// The server writes as it starts (shard ownership, task queues): some of
	// those frames reach the file without any commit of Temporal's doing it.
	require.Eventually(t, func() bool { return srv.checkpoints.Last().Checkpointed > 0 },
		20*time.Second, 50*time.Millisecond, "no WAL frame was checkpointed")
}

func TestInMemoryServerHasNoCheckpointer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Stop()) }()
	require.Nil(t, srv.checkpoints)
}
