package store

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store/storetest"
)

func ingestOne(t *testing.T, s *SQLite, seq int) (errs []error, err error) {
	t.Helper()
	msgs := []Message{{Type: "track", MessageID: "m" + strconv.Itoa(seq), UserID: "u" + strconv.Itoa(seq), Name: "app_open", Properties: []byte(`{}`), Timestamp: time.Now()}}
	_, errs, err = s.IngestAll(context.Background(), []IngestRequest{{Messages: msgs}}, "test.applied", seq)
	return errs, err
}

// TestAcceptedEventsSurviveAServerReset: a pooler that resets the server
// connection (DISCARD ALL / DEALLOCATE ALL) under a client whose statement
// cache still lists the applier's prepared statements makes the group fail
// as a whole, which the applier applies again — never a request refused for
// good (it would be diverted from the accept log and lost). Review-2215 M2.
func TestAcceptedEventsSurviveAServerReset(t *testing.T) {
	s := openPostgres(t)
	s.w.SetMaxOpenConns(1)
	errs, err := ingestOne(t, s, 1)
	require.NoError(t, err)
	require.NoError(t, errs[0])
	_, err = s.w.ExecContext(context.Background(), pgRaw+`DEALLOCATE ALL`)
	require.NoError(t, err)
	for try := 0; ; try++ {
		errs, err = ingestOne(t, s, 2)
		if err == nil {
			break
		}
		require.Less(t, try, 6, "the group keeps failing: %v", err)
	}
	require.NoError(t, errs[0], "an accepted request refused for the server's state")
}

// TestIngestWithoutAStatementCache: a DSN that turns pgx's statement cache
// off (statement_cache_capacity=0, as for a transaction pooler) still
// stores events: the applier's statements run unprepared.
func TestIngestWithoutAStatementCache(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	s, err := OpenPostgres(context.Background(), dsn+sep+"statement_cache_capacity=0")
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	errs, err := ingestOne(t, s, 1)
	require.NoError(t, err)
	require.NoError(t, errs[0])
}
