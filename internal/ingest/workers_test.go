package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/acceptlog"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/store/storetest"
)

// TestWorkersWithTheirOwnAcceptLogsShareAStore: two workers on one store
// (two store handles, as two processes), each with its own accept log and
// applied-position key. A worker that dies with accepted records not yet
// stored stores them all at its restart, though the other worker applied
// further in its own log meanwhile. With one key for both logs (before:
// `acceptlog.applied`), the restarted worker resumed from the other's
// position and skipped records it had answered 200 for: the cluster test's
// lost events on PostgreSQL.
func TestWorkersWithTheirOwnAcceptLogsShareAStore(t *testing.T) {
	ctx := context.Background()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var open func() *store.SQLite
			switch backend {
			case "sqlite":
				path := filepath.Join(t.TempDir(), "huabu.db")
				open = func() *store.SQLite {
					s, err := store.OpenSQLite(ctx, path)
					require.NoError(t, err)
					return s
				}
			case "postgres":
				dsn := storetest.PostgresDSN(t)
				open = func() *store.SQLite {
					s, err := store.OpenPostgres(ctx, dsn)
					require.NoError(t, err)
					return s
				}
			}
			type worker struct {
				key, dir string
				st       *store.SQLite
				log      *acceptlog.Log
				applier  *ingest.Applier
			}
			start := func(w *worker) {
				var err error
				w.st = open()
				w.log, err = acceptlog.Open(w.dir, acceptlog.Options{})
				require.NoError(t, err)
				w.applier, err = ingest.NewApplier(ctx, ingest.ApplierOptions{Log: w.log, Store: w.st, Key: w.key,
					FailedDir: filepath.Join(w.dir, "failed"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				require.NoError(t, err)
			}
			stop := func(w *worker) {
				require.NoError(t, w.log.Close())
				require.NoError(t, w.st.Close())
			}
			accept := func(w *worker, name string, from, to int) {
				for i := from; i <= to; i++ {
					// Records of one size in both logs, so one log's
					// position lands inside the other's records.
					_, err := (&ingest.Accepter{Log: w.log}).Ingest(ctx, []store.Message{{Type: "track", MessageID: fmt.Sprintf("%s-%03d", name, i),
						UserID: fmt.Sprintf("%s%03d", name, i), Name: "app_open", Properties: []byte(`{}`), Timestamp: time.UnixMilli(1_800_000_000_000)}},
						store.IngestOptions{Realtime: true})
					require.NoError(t, err)
				}
			}
			apply := func(w *worker) {
				_, err := w.applier.ApplyAvailable(ctx)
				require.NoError(t, err)
			}
			a := &worker{key: ingest.AppliedKeyOf("host/a"), dir: filepath.Join(t.TempDir(), "a")}
			b := &worker{key: ingest.AppliedKeyOf("host/b"), dir: filepath.Join(t.TempDir(), "b")}
			start(a)
			start(b)
			accept(a, "a", 1, 3)
			apply(a)
			accept(b, "b", 1, 5)
			apply(b)
			accept(a, "a", 4, 6) // answered 200, then a dies before storing them
			stop(a)
			start(a)
			apply(a)
			n, err := b.st.CountEvents(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(11), n, "every accepted event stored: a's 6 and b's 5")
			stop(a)
			stop(b)
		})
	}
}
