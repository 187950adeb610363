package sqliteheap

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// TestSQLiteRunsOnThePool: the allocator is installed at import, SQLite
// works on it (b-tree splits, large rows, a rollback, growing statements),
// and the blocks SQLite frees are kept for reuse.
func TestSQLiteRunsOnThePool(t *testing.T) {
	require.True(t, Installed, "SQLITE_CONFIG_MALLOC was refused: SQLite was in use before this package's init")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "t.db")+"?_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)`)
	require.NoError(t, err)
	big := strings.Repeat("x", 300_000) // overflow pages, a block above the pooled sizes
	for round := range 3 {
		tx, err := db.Begin()
		require.NoError(t, err)
		for i := range 2000 {
			_, err := tx.Exec(`INSERT INTO t (k, v) VALUES (?, ?)`, strings.Repeat("k", i%50)+string(rune('a'+round))+strings.Repeat("z", i), big[:size(i)])
			require.NoError(t, err)
		}
		if round == 1 {
			require.NoError(t, tx.Rollback())
			continue
		}
		require.NoError(t, tx.Commit())
	}
	var n, total int64
	require.NoError(t, db.QueryRow(`SELECT count(*), sum(length(v)) FROM t`).Scan(&n, &total))
	require.Equal(t, int64(4000), n)
	var want int64
	for i := range 2000 {
		want += int64(size(i))
	}
	require.Equal(t, 2*want, total)
	require.Positive(t, Cached(), "freed blocks are pooled")
	require.LessOrEqual(t, Cached(), MaxCached)
}

// size is row i's value size: mostly small, now and then above the pooled sizes.
func size(i int) int {
	if i%200 == 0 {
		return 300_000
	}
	return i * 7 % 3000
}

func TestClassAndRoundup(t *testing.T) {
	for _, c := range []struct{ n, roundup int32 }{
		{1, 8}, {1000, 1000}, {1017, 2048 - header}, {1016, 1016}, {4096, 8192 - header},
		{8184, 8192 - header}, {8185, 16384 - header}, {1 << 20, 1 << 20}, {1<<20 - header, 1<<20 - header},
	} {
		require.Equal(t, c.roundup, xRoundup(nil, c.n), "roundup(%d)", c.n)
		require.GreaterOrEqual(t, c.roundup, c.n)
	}
}
