package channels_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels"
)

var update = flag.Bool("update", false, "rewrite docs/channels.md")

func TestReference(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "channels.md")
	got := channels.Reference()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/channels -run TestReference -update")
	require.Equal(t, string(want), got, "docs/channels.md is stale; run go test ./internal/channels -run TestReference -update")
}
