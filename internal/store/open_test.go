package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOpenSQLiteFailsOnAFileThatIsNotADatabase: a failed open returns its
// error (it used to hang in Close, waiting for a checkpointer that had not
// been started).
func TestOpenSQLiteFailsOnAFileThatIsNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huabu.db")
	require.NoError(t, os.WriteFile(path, []byte("this is not a SQLite database, just some text long enough to hold a header"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		s, err := OpenSQLite(ctx, path)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
	case <-ctx.Done():
		t.Fatal("OpenSQLite did not return")
	}
}
