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

	c := sqlitewal.Start(db, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		r := c.Last()
		return r.LogFrames > 0 && r.Checkpointed == r.LogFrames
	}, 10*time.Second, 10*time.Millisecond, "the WAL was not copied into the file")
	c.Stop()
	c.Stop() // twice is fine

}
