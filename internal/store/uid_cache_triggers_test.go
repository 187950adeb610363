package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProfileIDChangesAreCountedAfterEveryMigration: with every migration
// applied, renaming or deleting a profile row still bumps
// profile_id_changes, the counter the applier's uid cache trusts (ADR 047).
// A later migration that rebuilds profiles (create, copy, drop, rename)
// would drop migration 027's triggers silently (033's on PostgreSQL, ADR
// 053); this fails then.
func TestProfileIDChangesAreCountedAfterEveryMigration(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		_, err := s.UpsertProfiles(ctx, []ProfileUpdate{{ID: "u1", Patch: []byte(`{"name":"王芳"}`)}, {ID: "u2", Patch: []byte(`{"name":"李雷"}`)}})
		require.NoError(t, err)
		changes := func() int {
			var n int
			require.NoError(t, s.r.QueryRowContext(ctx, `SELECT n FROM profile_id_changes`).Scan(&n))
			return n
		}
		before := changes()
		_, err = s.w.ExecContext(ctx, `UPDATE profiles SET id = 'u1-renamed' WHERE id = 'u1'`)
		require.NoError(t, err)
		require.Equal(t, before+1, changes(), "renaming a profile is counted")
		_, err = s.w.ExecContext(ctx, `DELETE FROM profiles WHERE id = 'u2'`)
		require.NoError(t, err)
		require.Equal(t, before+2, changes(), "deleting a profile is counted")
		_, err = s.w.ExecContext(ctx, `UPDATE profiles SET doc = '{"name":"王芳"}' WHERE id = 'u1-renamed'`)
		require.NoError(t, err)
		require.Equal(t, before+2, changes(), "a document rewrite is not an id change")
	})
}
