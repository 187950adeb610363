package sqlitewal_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/huabu/huabu/internal/sqlitewal"
)

// TestCheckpointerCopiesTheWAL: with SQLite's own checkpoints pushed out of
// reach, the rows a writer commits reach the database file through the
// checkpointer alone.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	path := t.TempDir() + "/wal.db"
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(1000000)")
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`CREATE TABLE t (v TEXT)`)
	require.NoError(t, err)
	for range 100 {
		_, err = db.Exec(`INSERT INTO t VALUES (hex(randomblob(512)))`)
		require.NoError(t, err)
	}

	c := sqlitewal.Start(db, 10*time.Millisecond, nil)
	require.Eventually(t, func() bool {
		r := c.Last()
		return r.Err == nil && r.LogFrames > 0 && r.Checkpointed == r.LogFrames
	}, 10*time.Second, 10*time.Millisecond, "the WAL was not copied into the file")
	c.Stop()
	c.Stop() // twice is fine

}

// TestCheckpointerReportsFailures: a checkpoint that cannot run (the
// database closed under it) is reported and counted, not dropped.
func TestCheckpointerReportsFailures(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/wal.db?_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	c := sqlitewal.Start(db, 10*time.Millisecond, nil)
	defer c.Stop()
	require.Eventually(t, func() bool { return c.Last().Failures >= 2 }, 10*time.Second, 10*time.Millisecond)
	require.Error(t, c.Last().Err)
}
