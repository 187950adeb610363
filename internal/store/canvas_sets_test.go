package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCanvasSetsAreOrderedByFirstDeploy(t *testing.T) {
	ctx := context.Background()
	eachClockedPair(t, func(t *testing.T, a, b *SQLite, now *time.Time) {
		set, newest, created, err := a.ClaimCanvasSet(ctx, "old", 2)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, "old", newest.Digest)
		require.Equal(t, int64(1), set.Seq)

		*now = now.Add(time.Hour)
		set, newest, created, err = b.ClaimCanvasSet(ctx, "new", 3)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, CanvasSet{Digest: "new", Canvases: 3, FirstAt: *now, Seq: 2}, set)
		require.Equal(t, set, newest)

		*now = now.Add(time.Hour)
		set, newest, created, err = a.ClaimCanvasSet(ctx, "old", 2)
		require.NoError(t, err)
		require.False(t, created, "a worker with the old directory starts again")
		require.Equal(t, int64(1), set.Seq)
		require.Equal(t, "new", newest.Digest)
	})
}
