package bench

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/store/storetest"
)

// TestBenchRefusesAStoreInUse: --postgres takes an empty database or
// schema (a bench retires every canvas there and seeds synthetic users),
// never one with an operator's profiles.
func TestBenchRefusesAStoreInUse(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	require.NoError(t, refuseStoreInUse(ctx, dsn), "an empty schema is fine")
	st, err := store.OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	defer st.Close()
	_, err = st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u1", Patch: []byte(`{"name":"王芳"}`)}})
	require.NoError(t, err)
	err = refuseStoreInUse(ctx, dsn)
	require.ErrorContains(t, err, "holds canvases, profiles, runs or events")
	require.NoError(t, refuseStoreInUse(ctx, ""), "SQLite: the bench's own temporary store")
}
