package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProfileLookupsUseTheirPartialIndexes: profiles' phone and WeCom
// indexes hold only profiles that have the value (migration 030), and the
// lookups by value still search them rather than scan every profile.
func TestProfileLookupsUseTheirPartialIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	defer s.Close()
	for query, index := range map[string]string{
		`SELECT uid, id, doc FROM profiles WHERE json_extract(doc, '$.wecom_external_userid') = ? ORDER BY uid LIMIT 1`: "profiles_wecom_external",
		`SELECT id FROM profiles WHERE json_extract(doc, '$.wecom_external_userid') = ? ORDER BY uid LIMIT 1`:           "profiles_wecom_external",
		`SELECT uid, id, doc FROM profiles WHERE json_extract(doc, '$.phone') = ? ORDER BY uid LIMIT 1`:                 "profiles_phone",
	} {
		rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, "x")
		require.NoError(t, err)
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
			plan = append(plan, detail)
		}
		require.NoError(t, rows.Err())
		rows.Close()
		require.Equal(t, []string{"SEARCH profiles USING INDEX " + index + " (<expr>=?)"}, plan, query)
	}

	// Only profiles with the value are in the indexes; the lookup finds them.
	for _, index := range []string{"profiles_phone", "profiles_wecom_external"} {
		var def string
		require.NoError(t, s.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = ?`, index).Scan(&def))
		require.Contains(t, def, "IS NOT NULL", index)
	}
	_, err = s.UpsertProfiles(ctx, []ProfileUpdate{{ID: "u1", Patch: []byte(`{"phone":"+8613800000001"}`)}, {ID: "u2", Patch: []byte(`{"name":"Li"}`)}})
	require.NoError(t, err)
	p, err := s.ProfileByPhone(ctx, "+8613800000001")
	require.NoError(t, err)
	require.Equal(t, "u1", p.ID)
}
