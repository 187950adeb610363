package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// The applier's statements on PostgreSQL (ADR 043). Each table's new rows
// are found first (an index probe per key) and written without a conflict
// clause — since ADR 053 by COPY, their ids drawn from the table's sequence
// in one statement (pgDrawIDs):
// `INSERT … ON CONFLICT DO NOTHING` makes PostgreSQL insert every row
// speculatively (a heap tuple with a token, the unique index entry, then a
// confirmation record), which cost half the time of storing an event and
// of creating a profile, for the rare row that already exists.
//
// Why a plain INSERT or COPY cannot collide: appliers hold the events lock
// (lockEvents) and every other writer of events, profiles and trait_dirty
// holds the write lock exclusively, so between the probe and the insert
// nothing else writes these rows. Should a writer ever do so outside the
// locks (or draw from the sequences between the applier's nextval and
// setval), the COPY fails with a unique violation, the whole group is rolled
// back and IngestAll applies it again (pgUniqueViolation): the probe then
// sees the other row, and nothing is stored twice or lost.

// pgInsertEvents stores the messages whose message id is not stored yet
// (nor earlier in msgs) in message order, and marks which were new, with
// their ids. Most groups hold no message stored before (a client's retry
// is rare), so they are copied in at once, in a savepoint, without the
// index probe per message that finding the stored ones costs; only a COPY
// that meets a stored message id (a unique violation of its index) goes
// back to the savepoint, probes, and copies the rest.
func pgInsertEvents(ctx context.Context, tx *sql.Tx, msgs []Message, uids []int64, userIDs []string, receivedMS, realtime []int64, isNew []bool, ids []int64) error {
	var pick []int // the messages to store: the first occurrence of each id
	seen := make(map[string]bool, len(msgs))
	for i, m := range msgs {
		if !seen[m.MessageID] {
			seen[m.MessageID] = true
			pick = append(pick, i)
		}
	}
	copyPicked := func() error {
		return pgCopyEvents(ctx, tx, msgs, pick, uids, userIDs, receivedMS, realtime, isNew, ids)
	}
	if _, err := tx.ExecContext(ctx, pgRaw+`SAVEPOINT events_copy`); err != nil {
		return err
	}
	err := copyPicked()
	if err == nil {
		_, err = tx.ExecContext(ctx, pgRaw+`RELEASE SAVEPOINT events_copy`)
		return err
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || pe.ConstraintName != "events_message_id_key" {
		return err
	}
	if _, err := tx.ExecContext(ctx, pgRaw+`ROLLBACK TO SAVEPOINT events_copy`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, pgRaw+`RELEASE SAVEPOINT events_copy`); err != nil {
		return err
	}
	all := make([]string, len(pick))
	for j, i := range pick {
		all[j] = msgs[i].MessageID
	}
	stored := make(map[string]bool)
	rows, err := tx.QueryContext(ctx, pgPrepared+`SELECT message_id FROM events WHERE message_id = ANY($1::text[])`, all)
	if err != nil {
		return err
	}
	for rows.Next() {
		var mid string
		if err := rows.Scan(&mid); err != nil {
			rows.Close()
			return err
		}
		stored[mid] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	pick = slices.DeleteFunc(pick, func(i int) bool { return stored[msgs[i].MessageID] })
	return copyPicked()
}

var emptyProperties = []byte("{}")

// pgCopyEvents copies the messages pick (indexes into msgs) in, in that
// order, and marks them new with their ids.
func pgCopyEvents(ctx context.Context, tx *sql.Tx, msgs []Message, pick []int, uids []int64, userIDs []string, receivedMS, realtime []int64, isNew []bool, ids []int64) error {
	k := len(pick)
	if k == 0 {
		return nil
	}
	// The new rows' ids, in message order: a range drawn from the events'
	// sequence (pgDrawIDs).
	first, err := pgDrawIDs(ctx, tx, "events", "id", k)
	if err != nil {
		return err
	}
	// COPY, not INSERT … SELECT FROM unnest(…): the server fills a heap
	// page per WAL record instead of a tuple (heap_multi_insert), with no
	// executor above it, and nothing to return (ADR 053).
	if _, err := tx.ExecContext(ctx, pgCopy+`events id message_id uid user_id anonymous_id type name properties ts received_at realtime`, pgCopyRows{n: k, row: func(j int, w *pgCopyRow) {
		i := pick[j]
		m := msgs[i]
		props := m.Properties
		if len(props) == 0 {
			props = emptyProperties
		}
		w.Int64(first + int64(j))
		w.Text(m.MessageID)
		w.Int64(uids[i])
		w.Text(userIDs[i])
		w.Text(m.AnonymousID)
		w.Text(m.Type)
		w.Text(m.Name)
		w.TextBytes(props)
		w.Int64(m.Timestamp.UnixMilli())
		w.Int64(receivedMS[i])
		w.Int64(realtime[i])
	}}); err != nil {
		return err
	}
	for j, i := range pick {
		isNew[i], ids[i] = true, first+int64(j)
	}
	return nil
}

// pgProfileUIDs adds every user's uid to uidOf, creating the profiles of
// users that have none: the stored ones are read first (most users of a stream
// have a profile), the missing ones copied in with uids drawn for them.
func pgProfileUIDs(ctx context.Context, tx *sql.Tx, users []string, nowMS int64, uidOf map[string]int64) (uidRange, error) {
	scan := func(rows *sql.Rows, err error) error { return readUIDs(rows, err, uidOf) }
	if err := scan(tx.QueryContext(ctx, pgPrepared+`SELECT id, uid FROM profiles WHERE id = ANY($1::text[])`, users)); err != nil {
		return uidRange{}, err
	}
	missing := make([]string, 0, len(users))
	for _, u := range users {
		if _, ok := uidOf[u]; !ok {
			missing = append(missing, u)
		}
	}
	// As for events (pgInsertEvents): a range of uids drawn under the
	// events lock — every other writer of profiles holds the write lock
	// exclusively — and the rows copied.
	if len(missing) == 0 {
		return uidRange{}, nil
	}
	first, err := pgDrawIDs(ctx, tx, "profiles", "uid", len(missing))
	if err != nil {
		return uidRange{}, err
	}
	for j, u := range missing {
		uidOf[u] = first + int64(j)
	}
	var doc []byte // {"id": the user's id}, the document of a new profile
	_, err = tx.ExecContext(ctx, pgCopy+`profiles uid id doc updated_at`, pgCopyRows{n: len(missing), row: func(j int, w *pgCopyRow) {
		q, _ := json.Marshal(missing[j])
		doc = append(append(append(doc[:0], `{"id":`...), q...), '}')
		w.Int64(first + int64(j))
		w.Text(missing[j])
		w.JSONB(doc)
		w.Int64(nowMS)
	}})
	return uidRange{first, first + int64(len(missing))}, err
}

// uidRange is the uids [from, to).
type uidRange struct{ from, to int64 }

func (r uidRange) has(uid int64) bool { return uid >= r.from && uid < r.to }

// pgDrawIDs draws n consecutive values from the sequence of table's
// identity column and returns the first: one statement, whatever n. The
// caller holds the events lock, so no other transaction draws from the
// sequence between the nextval and the setval; should one ever do so,
// the rows' insert fails with a unique violation of the primary key and
// the group is applied again (see the top of this file).
func pgDrawIDs(ctx context.Context, tx *sql.Tx, table, column string, n int) (int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx, pgRaw+`SELECT setval(s, nextval(s) + $1::bigint - 1) FROM CAST(pg_get_serial_sequence('`+table+`', '`+column+`') AS regclass) AS s`, int64(n)).Scan(&last)
	return last - int64(n) + 1, err
}

// pgMarkDirty records that the users' traits must be recomputed: the ones
// not marked yet (an index probe each), copied in. The profiles this
// transaction created (created) cannot be marked yet: they skip the probe.
func pgMarkDirty(ctx context.Context, tx *sql.Tx, uids []int64, created uidRange) error {
	var older []int64
	for _, u := range uids {
		if !created.has(u) {
			older = append(older, u)
		}
	}
	rows, err := tx.QueryContext(ctx, pgPrepared+`SELECT uid FROM trait_dirty WHERE uid = ANY($1::bigint[])`, older)
	if err != nil {
		return fmt.Errorf("trait_dirty: %w", err)
	}
	marked := make(map[int64]bool)
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&uid); err != nil {
			rows.Close()
			return fmt.Errorf("trait_dirty: %w", err)
		}
		marked[uid] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("trait_dirty: %w", err)
	}
	todo := uids
	if len(marked) > 0 {
		todo = make([]int64, 0, len(uids)-len(marked))
		for _, u := range uids {
			if !marked[u] {
				todo = append(todo, u)
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, pgCopy+`trait_dirty uid`, pgCopyRows{n: len(todo), row: func(j int, w *pgCopyRow) { w.Int64(todo[j]) }}); err != nil {
		return fmt.Errorf("trait_dirty: %w", err)
	}
	return nil
}

// pgUniqueViolation reports a unique violation: a row the applier's
// probe did not see was inserted by someone else (see the top of this file).
func pgUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// pgNotTheRequests reports an error that says nothing about the request
// being stored: the connection's prepared statements are gone or stale
// (a pooler, DISCARD, DDL), the transaction lost a conflict, the server is
// going away. The group is applied again rather than the request refused
// (ADR 048).
func pgNotTheRequests(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "26000", "42P05", "0A000", "40001", "40P01", "57P01", "57P02", "57P03":
		return true
	}
	return strings.HasPrefix(pe.Code, "08")
}
