package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store/storetest"
)

// eachStore runs test against every backend: SQLite always, PostgreSQL
// when a test server is configured (storetest: skipped without one,
// failed without one under CI). The store's tests are one conformance
// suite for both.
func eachStore(t *testing.T, test func(t *testing.T, s *SQLite)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { test(t, open(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, openPostgres(t)) })
}

// openPostgres opens a store in a fresh schema of the test server.
func openPostgres(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenPostgres(context.Background(), storetest.PostgresDSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// docOf decodes a profile document (PostgreSQL stores documents as JSONB,
// which does not keep SQLite's spacing or key order: compare values).
func docOf(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(doc, &m))
	return m
}

// TestEmptyListsOnBothStores: a list parameter that is empty matches
// nothing on either store, whatever the column's type (on PostgreSQL an
// empty list has no element to tell text from bigint).
func TestEmptyListsOnBothStores(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		uids, err := s.UIDs(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, uids)
		n, err := s.Unsuppress(ctx, []string{}, AllChannels)
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = s.Unsuppress(ctx, nil, "sms")
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// TestInUse: a migrated store is not in use; one with a profile is.
func TestInUse(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		used, err := s.InUse(ctx)
		require.NoError(t, err)
		require.False(t, used)
		_, err = s.UpsertProfiles(ctx, []ProfileUpdate{{ID: "u1", Patch: []byte(`{"name":"a"}`)}})
		require.NoError(t, err)
		used, err = s.InUse(ctx)
		require.NoError(t, err)
		require.True(t, used)
	})
}
