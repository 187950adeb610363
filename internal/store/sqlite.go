package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver Temporal's own dev server uses

	// SQLite's allocator keeps the blocks it frees (docs/performance.md):
	// imported here so it is installed before any database is opened.
	_ "github.com/huabu/huabu/internal/sqliteheap"
	"github.com/huabu/huabu/internal/sqlitewal"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// SQLite is the default store: one file, WAL, a single writer connection
// (SQLite serialises writers anyway; one connection avoids busy retries)
// and a small pool of readers.
type SQLite struct {
	w *sql.DB // writes, one connection (PostgreSQL: the one pool)
	r *sql.DB // reads, a pool (PostgreSQL: the one pool)
	// pg: the database is PostgreSQL (OpenPostgres, ADR 021).
	pg bool
	// pgConfig: PostgreSQL's connection settings, for WatchEvents' own connection.
	pgConfig *pgx.ConnConfig
	// ingests are ingestion requests waiting for the writer; see Ingest.
	ingests ingestQueue
	// uids are profiles' uids the applier read or created (SQLite; uid_cache.go).
	uids uidCache

	checkpoints *sqlitewal.Checkpointer // nil until open succeeds; nil on PostgreSQL
	closeOnce   sync.Once
	path        string
	now         func() time.Time

	readDSN string
	// scans are whole-table reads (the audience estimate): a pool of its
	// own, opened on first use, that maps the file into memory.
	scansOnce sync.Once
	scans     *sql.DB
	scansErr  error

	// listed are the ledger's writes prepared for uid lists (SQLite;
	// ledger_lists.go).
	listed map[listedKey]*sql.Stmt
}

// OpenSQLite opens (creating if needed) the database file at path and
// applies pending migrations.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(15000)", "synchronous(NORMAL)", "wal_autocheckpoint(20000)", "foreign_keys(OFF)", "cache_size(-65536)", "temp_store(MEMORY)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s := &SQLite{w: w, r: r, path: path, now: time.Now, readDSN: dsn("deferred")}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepareListed(ctx); err != nil {
		s.Close()
		return nil, err
	}
	// The WAL is copied into the file every second from a reader
	// connection, not inside whichever commit crosses wal_autocheckpoint
	// pages (ingestion measured 19k events/s that way, 30k without).
	s.checkpoints = sqlitewal.Start(s.r, time.Second, slog.Default().With("db", path))
	return s, nil
}

// Close stops the checkpointer and closes both connection pools.
func (s *SQLite) Close() error {
	if s.pg {
		return s.w.Close()
	}
	s.closeOnce.Do(func() {
		if s.checkpoints != nil {
			s.checkpoints.Stop()
		}
	})
	err := errors.Join(s.closeListed(), s.w.Close(), s.r.Close())
	if s.scans != nil {
		err = errors.Join(err, s.scans.Close())
	}
	return err
}

// Path is the database file (PostgreSQL: the DSN, password masked).
func (s *SQLite) Path() string { return s.path }

// Ping checks the database answers.
func (s *SQLite) Ping(ctx context.Context) error { return s.r.PingContext(ctx) }

// SetClock replaces the clock (tests).
func (s *SQLite) SetClock(now func() time.Time) { s.now = now }

func (s *SQLite) migrate(ctx context.Context) error {
	migrations, dir, raw := fs.FS(sqliteMigrations), "sqlite", ""
	if s.pg {
		migrations, dir, raw = postgresMigrations, "postgres", pgRaw
	}
	// Under the write lock: workers starting at once on a new PostgreSQL
	// database would otherwise race to create it (and one fail on
	// pg_type's unique index: IF NOT EXISTS is not atomic there).
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
		return err
	}); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/"+dir+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(filepath.Base(name), ".sql")
		var n int
		if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if s.pg {
				// Another process may have applied it while we waited for the lock.
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil || n > 0 {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, raw+string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", version, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, s.now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}

// tx runs fn in a write transaction, committing when it returns nil. On
// PostgreSQL it first takes the write lock (see pgWriteLock).
func (s *SQLite) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.lockedTx(ctx, s.lockWrites, fn)
}

// windowsTx runs fn as an entry-window write transaction (windows.go): on
// PostgreSQL under the windows lock (pgWindowsLock) instead of the write
// lock; on SQLite as tx. Its statements touch only entry_windows and
// entry_window_users, whose rows nothing but the router writes (forget's
// scrub of a user id is one row-locked UPDATE).
func (s *SQLite) windowsTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.lockedTx(ctx, s.lockWindows, fn)
}

// ledgerTx runs fn as a ledger write transaction (ledger.go): on
// PostgreSQL under the write lock in shared mode (lockLedger), so the pages
// of a send, on any number of workers, write the ledger at once; on SQLite
// as tx.
func (s *SQLite) ledgerTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.lockedTx(ctx, s.lockLedger, fn)
}

// sharedTx runs fn as a write transaction that shares the write lock with
// the other shared ones (lockShared; on SQLite as tx): for statements safe
// beside the ledger's, the appliers' and each other's (ADR 039).
func (s *SQLite) sharedTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.lockedTx(ctx, s.lockShared, fn)
}

// keyedTx runs fn as a shared write transaction that also holds the lock of
// one object (lockKeyed: kind "cohort" or "run" and its id): a "read, then
// write" of that object's rows, safe beside other objects' (ADR 039).
func (s *SQLite) keyedTx(ctx context.Context, kind string, id int64, fn func(*sql.Tx) error) error {
	return s.lockedTx(ctx, s.lockKeyed(kind, id), fn)
}

func (s *SQLite) lockedTx(ctx context.Context, lock func(context.Context, *sql.Tx) error, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := lock(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	// A panic (or a test's FailNow) in fn must not leave the transaction,
	// and on PostgreSQL the write lock, held.
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	err = fn(tx)
	done = true
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// idList encodes ids as a JSON array for `IN (SELECT value FROM
// json_each(?))`. One parameter instead of one per id matters: the driver
// binds parameters in time quadratic in their number.
func idList(ids []int64) string {
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// stringList encodes strings as a JSON array, for json_each.
func stringList(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}

// inIDs is the SQL for "column is one of the ids in the JSON parameter".
const inIDs = ` IN (SELECT value FROM json_each(?))`

// uidIn is "uid is one of these ids" for tables keyed by (…, uid) whose rows
// arrive by the thousand during a send (deliveries, exits): the ids' range
// comes first, as three parameters (uidArgs). PostgreSQL plans with the
// table's last statistics, and a table that grew from empty since then
// looks tiny: it scans every row of the step and filters each by the list —
// a page's statement then costs the step's size, a broadcast its square.
// The range is always an index condition, so a page reads its own slice.
const uidIn = `uid BETWEEN ? AND ? AND uid` + inIDs

// uidArgs are uidIn's parameters: the least and greatest id, the list.
func uidArgs(uids []int64) []any {
	var lo, hi int64
	for i, u := range uids {
		if i == 0 || u < lo {
			lo = u
		}
		if i == 0 || u > hi {
			hi = u
		}
	}
	return []any{lo, hi, idList(uids)}
}

// ErrNotFound is returned when a named row does not exist.
var ErrNotFound = errors.New("not found")
