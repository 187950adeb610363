package store

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL store is the same store type over database/sql, with
// pgx's stdlib driver underneath (ADR 021). The store's SQL is written for
// SQLite; a thin driver wrapper turns each statement into PostgreSQL once
// (cached): placeholders ?/?N become $N, INSERT OR IGNORE / OR REPLACE
// become ON CONFLICT forms, and the statements that use SQLite's JSON
// functions are replaced by their PostgreSQL twins (postgres_sql.go). A
// statement with a SQLite-only construct and no twin is refused with an
// error naming it, never sent half-translated.

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

// pgWriteLock is the advisory lock every write transaction takes: write
// transactions serialise across all connections and all processes, as
// SQLite's single writer serialises them in one, so a transaction's
// "read, then write what is missing" stays correct with any number of
// workers on one database. Single statements outside a transaction are
// atomic on their own and do not take it.
// The lock is per schema (the key's second half), so stores in different
// schemas of one database do not wait for each other.
const pgWriteLock = 0x48756162 // "Huab"

// pgWindowsLock is the lock of the router's entry-window transactions
// (windowsTx) instead of the write lock: only the router writes windows, so
// they need excluding only each other (a router that lost its lease and
// the next one), not the appliers, runs and sends of every worker, behind
// whose write transactions each window's start used to queue (ADR 028).
const pgWindowsLock = 0x48756163 // "Huac"

// pgEventsLock is the lock of the appliers' transactions (applyGroup),
// taken after the write lock in shared mode (eventsTx): appliers exclude
// each other — events' ids are drawn and committed in id order, which the
// router's feed relies on, and a new user's profile is created once — but
// no longer the run path's and the ledger's transactions, which share the
// write lock too (ADR 039). Every other writer of events, profiles,
// aliases and trait_dirty holds the write lock exclusively, so it excludes
// the appliers as before.
const pgEventsLock = 0x48756164 // "Huad"

// OpenPostgres connects to the PostgreSQL database named by dsn (a
// postgres:// URL or key=value string) and applies pending migrations.
func OpenPostgres(ctx context.Context, dsn string) (*SQLite, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres dsn %s: %w", MaskDSN(dsn), err)
	}
	// Statements are sent unprepared with each parameter cast to the type of
	// its Go value (pgTyped): PostgreSQL would otherwise guess a bare
	// parameter's type from its context (int4 for "? = 0") where SQLite
	// takes the value as it comes.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	prepared := pgx.QueryExecModeCacheStatement
	switch {
	case cfg.StatementCacheCapacity == 0 && cfg.DescriptionCacheCapacity > 0:
		prepared = pgx.QueryExecModeCacheDescribe // binary, unnamed: behind a transaction pooler
	case cfg.StatementCacheCapacity == 0:
		prepared = pgx.QueryExecModeExec
	}
	db := sql.OpenDB(&pgConnector{inner: stdlib.GetConnector(*cfg), prepared: prepared})
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &SQLite{w: db, r: db, pg: true, path: MaskDSN(dsn), now: time.Now, pgConfig: cfg}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", MaskDSN(dsn), err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Open opens the store a configuration names: driver "sqlite" (or "")
// with a file path, or "postgres" with a DSN.
func Open(ctx context.Context, driver, target string) (*SQLite, error) {
	switch driver {
	case "", "sqlite":
		return OpenSQLite(ctx, target)
	case "postgres":
		return OpenPostgres(ctx, target)
	}
	return nil, fmt.Errorf("store: unknown driver %q (sqlite or postgres)", driver)
}

// Postgres reports whether the store is PostgreSQL.
func (s *SQLite) Postgres() bool { return s.pg }

// MaskDSN hides the password of a DSN, for logs and errors: in a URL's
// user info and its password parameter, or a key=value DSN's password.
func MaskDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		// Not a URL, or one whose password url.Parse refuses (a bare %).
		dsn = pgPasswordURL.ReplaceAllString(dsn, "${1}xxxxx@")
		return pgPasswordKV.ReplaceAllString(dsn, "${1}xxxxx")
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// pgPasswordURL finds the password of a URL that does not parse.
var pgPasswordURL = regexp.MustCompile(`^([a-z]+://[^:/@]*:)[^@]*@`)

// pgPasswordKV finds a key=value DSN's password: quoted (with \' and \\
// escapes, as libpq reads it) or up to the next space.
var pgPasswordKV = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// lockWrites takes the write lock inside tx (PostgreSQL only).
func (s *SQLite) lockWrites(ctx context.Context, tx *sql.Tx) error {
	if !s.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, pgRaw+`SELECT pg_advisory_xact_lock(`+strconv.Itoa(pgWriteLock)+`, hashtext(current_schema()))`)
	return err
}

// lockWindows takes the entry-window lock inside tx (PostgreSQL only).
func (s *SQLite) lockWindows(ctx context.Context, tx *sql.Tx) error {
	if !s.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, pgRaw+`SELECT pg_advisory_xact_lock(`+strconv.Itoa(pgWindowsLock)+`, hashtext(current_schema()))`)
	return err
}

// lockLedger takes the write lock in shared mode inside tx (PostgreSQL
// only): ledger transactions (ledger.go) exclude every other write
// transaction, as before, but not each other. Among themselves they are
// safe by row locks — they read the rows they will change FOR UPDATE
// (forUpdate), a recipient's row is created once (the primary key; a claim
// that loses the race reads the winner's row), and they move step counters
// once, last, in key order — so pages of one send no longer wait for each
// other's statements. A queued exclusive request blocks later shared ones:
// other writers are not starved.
func (s *SQLite) lockLedger(ctx context.Context, tx *sql.Tx) error {
	if !s.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, pgRaw+`SELECT pg_advisory_xact_lock_shared(`+strconv.Itoa(pgWriteLock)+`, hashtext(current_schema()))`)
	return err
}

// lockShared takes the write lock in shared mode inside tx (PostgreSQL
// only): transactions whose statements are safe beside each other — they
// write rows keyed by what they decide about, with no read of rows another
// shared transaction writes, or they take a lock of their own after this
// one (lockEvents, lockKeyed) — exclude every exclusive writer but not each
// other. (lockLedger is this lock, for the ledger's row-locked
// transactions.)
func (s *SQLite) lockShared(ctx context.Context, tx *sql.Tx) error {
	return s.lockLedger(ctx, tx)
}

// lockEvents takes the write lock in shared mode and then the appliers'
// events lock (pgEventsLock) exclusively, always in this order: nothing
// holding the events lock waits for an exclusive write lock.
func (s *SQLite) lockEvents(ctx context.Context, tx *sql.Tx) error {
	if !s.pg {
		return nil
	}
	if err := s.lockShared(ctx, tx); err != nil {
		return err
	}
	// The applier's statements are prepared (pgPrepared) and take a whole
	// group's arrays. After five calls on a connection PostgreSQL may switch
	// such a statement to a generic plan, and keep it: one made while events
	// was nearly empty scanned the table for every probe (305 ms a group
	// instead of 12–31). Custom plans, as the unprepared statements always
	// had, follow the table's size (ADR 048).
	_, err := tx.ExecContext(ctx, pgRaw+`SELECT pg_advisory_xact_lock(`+strconv.Itoa(pgEventsLock)+`, hashtext(current_schema())), set_config('plan_cache_mode', 'force_custom_plan', true)`)
	return err
}

// lockKeyed returns a lock function that takes the write lock in shared
// mode and then an exclusive lock of one object (kind "cohort" or "run"
// and its id), so transactions that read an object's rows and then write
// them (a cohort's pages and its seal) exclude each other per object, not
// per store. The object locks are in the one-bigint key space, apart from
// the two-key store locks.
func (s *SQLite) lockKeyed(kind string, id int64) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if !s.pg {
			return nil
		}
		if err := s.lockShared(ctx, tx); err != nil {
			return err
		}
		return s.lockObject(ctx, tx, kind, id)
	}
}

// lockObject takes one object's exclusive lock inside tx (PostgreSQL only),
// for a transaction that holds the write lock shared already and learns the
// object's id on the way (BeginRunEntry's new cohort).
func (s *SQLite) lockObject(ctx context.Context, tx *sql.Tx, kind string, id int64) error {
	if !s.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, pgRaw+`SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/`+kind+`/' || $1::bigint, 0))`, id)
	return err
}

// forUpdate ends a ledger transaction's SELECT of the rows it will change:
// on PostgreSQL it locks them, so a concurrent ledger transaction cannot
// change them between the read and the write.
func (s *SQLite) forUpdate() string {
	if s.pg {
		return " FOR UPDATE"
	}
	return ""
}

// pgRaw marks a statement that is PostgreSQL already (migrations, the
// lock): the driver passes it through untouched.
const pgRaw = "-- huabu:postgres\n"

// pgConnector wraps pgx's connector so every statement is translated.
type pgConnector struct {
	inner driver.Connector
	// prepared is the mode pgPrepared statements run in: named and cached
	// only when the DSN leaves pgx a statement cache (ADR 048).
	prepared pgx.QueryExecMode
}

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{conn.(pgInnerConn), c.prepared}, nil
}

func (c *pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgInnerConn is what pgx's stdlib connection implements.
type pgInnerConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
}

type pgConn struct {
	pgInnerConn
	prepared pgx.QueryExecMode
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	q, err := pgSQL(query)
	if err != nil {
		return nil, err
	}
	if strings.Contains(q, pgListMark) {
		return nil, fmt.Errorf("store: a prepared statement cannot take a JSON list on PostgreSQL: %s", query)
	}
	return c.pgInnerConn.PrepareContext(ctx, q)
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if strings.HasPrefix(query, pgCopy) {
		return c.copyFrom(ctx, query, args)
	}
	q, args, err := pgStatement(query, args)
	if err != nil {
		return nil, err
	}
	return c.pgInnerConn.ExecContext(ctx, q, c.pgExecMode(query, args))
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, args, err := pgStatement(query, args)
	if err != nil {
		return nil, err
	}
	return c.pgInnerConn.QueryContext(ctx, q, c.pgExecMode(query, args))
}

// pgPrepared marks a statement that is PostgreSQL already, like pgRaw, and
// that runs often with large arrays (the applier's): it is prepared once
// per connection and its parameters are sent in binary (pgx's
// QueryExecModeCacheStatement), instead of being parsed and planned again
// on every call, each array parsed from text (ADR 048).
const pgPrepared = pgRaw + "-- prepared\n"

// pgCopy marks a COPY into a table: the statement's text after the mark
// is the table and its columns, separated by spaces, and its one argument
// the rows (pgCopyRows). It runs on the connection's transaction, in
// PostgreSQL's binary COPY format, which pgCopyRows writes itself: pgx's
// CopyFrom looks up an encoder for every value, which cost more of
// Huabu's CPU than the COPY saved the server (ADR 053).
const pgCopy = pgRaw + "-- copy\n"

// pgCopyRows are the rows of a pgCopy statement: n of them, row(i, w)
// writing row i's values, one call of w's methods per column in the
// statement's order.
type pgCopyRows struct {
	n   int
	row func(i int, w *pgCopyRow)
}

// pgCopyRow writes one row's fields in the binary COPY format: each
// field its length (int32, big-endian) and its binary value.
type pgCopyRow struct{ b []byte }

// Int64 writes a bigint.
func (w *pgCopyRow) Int64(v int64) {
	w.b = binary.BigEndian.AppendUint32(w.b, 8)
	w.b = binary.BigEndian.AppendUint64(w.b, uint64(v))
}

// Text writes a text value (the server checks its encoding, as for any text).
func (w *pgCopyRow) Text(v string) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(v)))
	w.b = append(w.b, v...)
}

// TextBytes writes a text value held in bytes.
func (w *pgCopyRow) TextBytes(v []byte) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(v)))
	w.b = append(w.b, v...)
}

// JSONB writes a jsonb value from its JSON text (version 1 of jsonb's
// binary input: a version byte, then the text).
func (w *pgCopyRow) JSONB(v []byte) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(v)+1))
	w.b = append(w.b, 1)
	w.b = append(w.b, v...)
}

// pgCopyHeader starts binary COPY data: the signature, no flags, no
// header extension.
const pgCopyHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

// pgCopySample rows size a COPY's buffer for the rest, up to pgCopyPreGrow
// bytes more; past that it grows as append grows it.
const pgCopySample, pgCopyPreGrow = 64, 8 << 20

// copyFrom runs a pgCopy statement.
func (c *pgConn) copyFrom(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	f := strings.Fields(strings.TrimPrefix(query, pgCopy))
	rows, ok := pgCopyRows{}, false
	if len(args) == 1 {
		rows, ok = args[0].Value.(pgCopyRows)
	}
	inner, isPgx := c.pgInnerConn.(interface{ Conn() *pgx.Conn })
	if len(f) < 2 || !ok || !isPgx {
		return nil, fmt.Errorf("store: a COPY takes a table, its columns and one pgCopyRows: %s", query)
	}
	w := &pgCopyRow{b: make([]byte, 0, 64*1024)}
	w.b = append(w.b, pgCopyHeader...)
	for i := 0; i < rows.n; i++ {
		w.b = binary.BigEndian.AppendUint16(w.b, uint16(len(f)-1))
		rows.row(i, w)
		if done := i + 1; done == min(pgCopySample, rows.n) && done < rows.n {
			// Room for the rest at the sampled rows' mean size and a
			// quarter, at most pgCopyPreGrow: growing a group's few
			// megabytes by doubling copied them about twice over, while
			// one large row (an event of 32 KiB) must not size the others.
			rest := (len(w.b) - len(pgCopyHeader)) / done * (rows.n - done) * 5 / 4
			w.b = slices.Grow(w.b, min(rest, pgCopyPreGrow))
		}
	}
	w.b = binary.BigEndian.AppendUint16(w.b, 0xffff) // the trailer: -1 fields
	cols := make([]string, len(f)-1)
	for i, col := range f[1:] {
		cols[i] = pgx.Identifier{col}.Sanitize()
	}
	tag, err := inner.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(w.b), "COPY "+pgx.Identifier{f[0]}.Sanitize()+" ("+strings.Join(cols, ", ")+") FROM STDIN BINARY")
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() != int64(rows.n) {
		return nil, fmt.Errorf("store: COPY %s stored %d rows of %d", f[0], tag.RowsAffected(), rows.n)
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

// pgExecMode puts pgx's statement cache in front of a pgPrepared
// statement's arguments: pgx reads a leading QueryExecMode as an option,
// not a parameter.
func (c *pgConn) pgExecMode(query string, args []driver.NamedValue) []driver.NamedValue {
	if !strings.HasPrefix(query, pgPrepared) {
		return args
	}
	return append([]driver.NamedValue{{Value: c.prepared}}, args...)
}

// pgStatement translates query and turns the JSON lists it takes (see
// pgLists) into arrays: []int64 for numbers, []string for strings.
func pgStatement(query string, args []driver.NamedValue) (string, []driver.NamedValue, error) {
	q, err := pgSQL(query)
	if err != nil {
		return q, args, err
	}
	if strings.Contains(q, pgListMark) {
		if q, err = pgListArgs(query, q, args); err != nil {
			return "", nil, err
		}
	}
	return pgTyped(q, args), args, nil
}

// pgTyped casts each parameter to the type of its value: $N::bigint for
// an int64, ::float8, ::bytea; strings stay untyped, so PostgreSQL reads
// them as whatever their place needs (a number, a document).
func pgTyped(q string, args []driver.NamedValue) string {
	if len(args) == 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8*len(args))
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '\'' {
			j := strings.IndexByte(q[i+1:], '\'')
			if j < 0 {
				b.WriteString(q[i:])
				break
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
			continue
		}
		b.WriteByte(c)
		if c != '$' {
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		if j == i+1 {
			continue
		}
		b.WriteString(q[i+1 : j])
		n, _ := strconv.Atoi(q[i+1 : j])
		i = j - 1
		if strings.HasPrefix(q[j:], "::") || n < 1 || n > len(args) {
			continue
		}
		switch args[n-1].Value.(type) {
		case int64:
			b.WriteString("::bigint")
		case float64:
			b.WriteString("::float8")
		case []byte:
			b.WriteString("::bytea")
		}
	}
	return b.String()
}

// pgListArgs replaces the list marks of q (see pgLists) by typed array
// parameters and decodes their JSON arguments into arrays.
func pgListArgs(query, q string, args []driver.NamedValue) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(q, pgListMark)
		if i < 0 {
			b.WriteString(q)
			break
		}
		j := i + len(pgListMark)
		k := j
		for k < len(q) && q[k] >= '0' && q[k] <= '9' {
			k++
		}
		n, _ := strconv.Atoi(q[j:k])
		if n < 1 || n > len(args) {
			return "", fmt.Errorf("store: list parameter $%d of %d: %s", n, len(args), query)
		}
		list, elem, err := pgList(args[n-1].Value)
		if err != nil {
			return "", fmt.Errorf("store: list parameter $%d: %w", n, err)
		}
		b.WriteString(q[:i])
		q = q[k:]
		if elem == "" && strings.HasSuffix(strings.TrimRight(b.String(), " "), "= ANY (") {
			// An empty list has no element to type it by: an untyped
			// '{}' takes the compared column's array type.
			args[n-1].Value = "{}"
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		if elem == "" {
			elem = "bigint"
		}
		args[n-1].Value = list
		b.WriteString("$" + strconv.Itoa(n) + "::" + elem + "[]")
	}
	return b.String(), nil
}

// pgList decodes a JSON array of numbers or of strings; the element type
// is "" for an empty array.
func pgList(v any) (any, string, error) {
	var raw []byte
	switch v := v.(type) {
	case string:
		raw = []byte(v)
	case []byte:
		raw = v
	default:
		return nil, "", fmt.Errorf("a JSON array expected, got %T", v)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, "", err
	}
	if len(items) == 0 {
		return []int64{}, "", nil // no element to tell the type by
	}
	if items[0][0] == '"' {
		out := make([]string, len(items))
		for i, it := range items {
			if err := json.Unmarshal(it, &out[i]); err != nil {
				return nil, "", err
			}
		}
		return out, "text", nil
	}
	out := make([]int64, len(items))
	for i, it := range items {
		n, err := strconv.ParseInt(string(it), 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("list item %s: %w", it, err)
		}
		out[i] = n
	}
	return out, "bigint", nil
}

// pgListMark stands for a list parameter whose element type is known only
// from its value: "\x00list:N" becomes "$N::bigint[]" or "$N::text[]".
const pgListMark = "\x00list:"

var (
	pgInList   = regexp.MustCompile(`(?i)\s+IN\s*\(\s*SELECT\s+value\s+FROM\s+json_each\(\$(\d+)\)\s*\)`)
	pgEachList = regexp.MustCompile(`(?i)\bFROM\s+json_each\(\$(\d+)\)`)
)

// pgLists rewrites the two uses of a JSON list of scalars: "x IN (SELECT
// value FROM json_each(?))" becomes "x = ANY($N::T[])", and "SELECT ...,
// value FROM json_each(?)" becomes "... FROM unnest($N::T[]) AS value".
// Statements that read objects out of the list (value->>'k') have twins.
func pgLists(q string) string {
	if strings.Contains(q, "->") {
		return q
	}
	q = pgInList.ReplaceAllString(q, " = ANY ("+pgListMark+"${1})")
	return pgEachList.ReplaceAllString(q, "FROM unnest("+pgListMark+"${1}) AS value")
}

// CheckNamedValue converts arguments as SQLite's driver would: the schema
// keeps flags in integer columns, so a bool is 1 or 0.
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if b, ok := nv.Value.(bool); ok {
		nv.Value = int64(0)
		if b {
			nv.Value = int64(1)
		}
		return nil
	}
	if c, ok := c.pgInnerConn.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

var pgCache sync.Map // SQLite statement → PostgreSQL statement

// pgSQL translates one statement (see the top of this file).
func pgSQL(query string) (string, error) {
	if strings.HasPrefix(query, pgRaw) {
		return query, nil
	}
	if q, ok := pgCache.Load(query); ok {
		return q.(string), nil
	}
	q, err := translatePG(query)
	if err != nil {
		return "", err
	}
	pgCache.Store(query, q)
	return q, nil
}

var (
	pgInsertOrIgnore  = regexp.MustCompile(`(?is)^(\s*)INSERT\s+OR\s+IGNORE\s+INTO\b`)
	pgInsertOrReplace = regexp.MustCompile(`(?is)^(\s*)INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*\(([^)]*)\)`)
	pgReturning       = regexp.MustCompile(`(?is)\sRETURNING\s`)
	// SQLite-only constructs that need a twin.
	pgSQLiteOnly = regexp.MustCompile(`(?i)\b(json_each|json_extract|json_object|json_type|json_remove|json|iif|strftime|pragma|glob)\s*\(|->>|\bUPDATE\s+OR\b|\bPRAGMA\b|\bLastInsertId\b`)
)

// pgKeys are the primary keys INSERT OR REPLACE conflicts on.
var pgKeys = map[string]string{
	"cohort_pages": "cohort_id, page",
	"step_entries": "run_id, step_id, visit, cohort_id",
	"cohort_exits": "run_id, step_id, cohort_id",
	"deliveries":   "run_id, step_id, visit, uid",
	"waits":        "cohort_id",
	"trait_due":    "uid",
	"rfm_values":   "uid",
	"settings":     "key",
}

func translatePG(query string) (string, error) {
	if twin, ok := pgTwins[normalizeSQL(query)]; ok {
		return twin, nil
	}
	q := pgScalarMinMax(pgLists(pgPlaceholders(query)))
	if pgSQLiteOnly.MatchString(q) {
		return "", fmt.Errorf("store: no PostgreSQL form of this statement (add its twin to internal/store/postgres_sql.go): %s", query)
	}
	suffix := ""
	switch {
	case pgInsertOrIgnore.MatchString(q):
		q = pgInsertOrIgnore.ReplaceAllString(q, "${1}INSERT INTO")
		suffix = " ON CONFLICT DO NOTHING"
	case pgInsertOrReplace.MatchString(q):
		m := pgInsertOrReplace.FindStringSubmatch(q)
		key, ok := pgKeys[m[2]]
		if !ok {
			return "", fmt.Errorf("store: INSERT OR REPLACE INTO %s: no PostgreSQL key known (internal/store/postgres.go pgKeys)", m[2])
		}
		var sets []string
		inKey := map[string]bool{}
		for _, k := range strings.Split(key, ",") {
			inKey[strings.TrimSpace(k)] = true
		}
		for _, c := range strings.Split(m[3], ",") {
			if c = strings.TrimSpace(c); !inKey[c] {
				sets = append(sets, c+" = excluded."+c)
			}
		}
		q = m[1] + "INSERT INTO " + m[2] + " (" + m[3] + ")" + q[len(m[0]):]
		suffix = " ON CONFLICT (" + key + ") DO NOTHING"
		if len(sets) > 0 {
			suffix = " ON CONFLICT (" + key + ") DO UPDATE SET " + strings.Join(sets, ", ")
		}
	}
	if suffix != "" {
		if loc := pgReturning.FindStringIndex(q); loc != nil {
			q = q[:loc[0]] + suffix + q[loc[0]:]
		} else {
			q = strings.TrimRight(q, " \t\n;") + suffix
		}
	}
	return q, nil
}

// normalizeSQL collapses whitespace, so a twin's key does not depend on
// the indentation of the statement it replaces.
func normalizeSQL(q string) string { return strings.Join(strings.Fields(q), " ") }

// placeholders turns ? and ?N into $N, outside quotes.
func pgPlaceholders(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	next := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch c {
		case '\'', '"':
			j := i + 1
			for j < len(q) && q[j] != c {
				j++
			}
			b.WriteString(q[i:min(j+1, len(q))])
			i = j
		case '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := next + 1
			if j > i+1 {
				n, _ = strconv.Atoi(q[i+1 : j])
			}
			next = max(next, n)
			b.WriteString("$" + strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

var pgMinMax = regexp.MustCompile(`(?i)\b(min|max)\s*\(`)

// pgScalarMinMax turns SQLite's scalar min(a, b) and max(a, b) into
// LEAST and GREATEST; the one-argument aggregates stay.
func pgScalarMinMax(q string) string {
	locs := pgMinMax.FindAllStringSubmatchIndex(q, -1)
	if locs == nil {
		return q
	}
	b := []byte(q)
	for i := len(locs) - 1; i >= 0; i-- {
		l := locs[i]
		depth, comma := 0, false
	scan:
		for j := l[1]; j < len(b); j++ {
			switch b[j] {
			case '(':
				depth++
			case ')':
				if depth == 0 {
					break scan
				}
				depth--
			case ',':
				if depth == 0 {
					comma = true
				}
			case '\'':
				for j++; j < len(b) && b[j] != '\''; j++ {
				}
			}
		}
		if comma {
			name := "GREATEST"
			if strings.EqualFold(q[l[2]:l[3]], "min") {
				name = "LEAST"
			}
			b = append(b[:l[2]], append([]byte(name), b[l[3]:]...)...)
		}
	}
	return string(b)
}

// pgEventsChannel is the channel appliers notify when they commit events
// (the payload is the store's schema); WatchEvents listens on it.
const pgEventsChannel = "huabu_events"

// notifyEvents tells listeners (WatchEvents: the router's leader, on any
// worker) that tx stores events; PostgreSQL delivers it at commit, once per
// transaction however many times it is called.
func (s *SQLite) notifyEvents(ctx context.Context, tx *sql.Tx) error {
	if !s.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, pgRaw+`SELECT pg_notify('`+pgEventsChannel+`', current_schema())`)
	return err
}

// WatchEvents calls wake whenever a process commits events to this store,
// until ctx ends: on PostgreSQL by LISTEN on its own connection (so events
// that other workers store reach the router's feed at once, not at its
// next poll), reconnecting after a failure; on SQLite, one process's
// store, it returns at once (the API pokes the feed itself).
func (s *SQLite) WatchEvents(ctx context.Context, wake func()) {
	if !s.pg {
		return
	}
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 10*time.Second) {
		if err := s.listenEvents(ctx, wake); err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

func (s *SQLite) listenEvents(ctx context.Context, wake func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pgConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgEventsChannel); err != nil {
		return err
	}
	wake() // events stored while no one listened
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == schema {
			wake()
		}
	}
}
