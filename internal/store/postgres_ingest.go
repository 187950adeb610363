package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// The applier's statements on PostgreSQL (ADR 043). Each table's new rows
// are found first (an index probe per key) and inserted by a plain INSERT:
// `INSERT … ON CONFLICT DO NOTHING` makes PostgreSQL insert every row
// speculatively (a heap tuple with a token, the unique index entry, then a
// confirmation record), which cost half the time of storing an event and
// of creating a profile, for the rare row that already exists.
//
// Why a plain INSERT cannot collide: appliers hold the events lock
// (lockEvents) and every other writer of events, profiles and trait_dirty
// holds the write lock exclusively, so between the probe and the insert
// nothing else writes these rows. Should a writer ever do so outside the
// locks, the INSERT fails with a unique violation, the whole group is rolled
// back and IngestAll applies it again (pgUniqueViolation): the probe then
// sees the other row, and nothing is stored twice or lost.

// pgInsertEvents stores the messages whose message id is not stored yet
// (nor earlier in msgs) in message order, in one statement, and marks
// which were new, with their ids: PostgreSQL has no LastInsertId.
func pgInsertEvents(ctx context.Context, tx *sql.Tx, msgs []Message, uids []int64, userIDs []string, receivedMS, realtime []int64, isNew []bool, ids []int64) error {
	n := len(msgs)
	all := make([]string, n)
	for i, m := range msgs {
		all[i] = m.MessageID
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
	var pick []int // the new messages, first occurrence of each id
	seen := make(map[string]bool, n)
	for i, mid := range all {
		if !stored[mid] && !seen[mid] {
			seen[mid] = true
			pick = append(pick, i)
		}
	}
	if len(pick) == 0 {
		return nil
	}
	k := len(pick)
	// The new rows' ids: a range drawn from the events' sequence in one
	// statement, in message order. Every writer of events holds the events
	// lock (see the top of this file), so no other transaction draws from
	// the sequence between the nextval and the setval; should one ever do
	// so, the COPY fails with a unique violation of events_pkey and the
	// group is applied again, as for a message id.
	var last int64
	if err := tx.QueryRowContext(ctx, pgRaw+`SELECT setval(s, nextval(s) + $1::bigint - 1) FROM CAST(pg_get_serial_sequence('events', 'id') AS regclass) AS s`, int64(k)).Scan(&last); err != nil {
		return err
	}
	first := last - int64(k) + 1
	// COPY, not INSERT … SELECT FROM unnest(…): the server fills a heap
	// page per WAL record instead of a tuple (heap_multi_insert), with no
	// executor above it, and nothing to return (ADR 053).
	if _, err := tx.ExecContext(ctx, pgCopy+`events id message_id uid user_id anonymous_id type name properties ts received_at realtime`, pgCopyRows{n: k, row: func(j int, row []any) {
		i := pick[j]
		m := msgs[i]
		props := "{}"
		if len(m.Properties) > 0 {
			props = string(m.Properties)
		}
		row[0], row[1], row[2], row[3], row[4], row[5], row[6] = first+int64(j), m.MessageID, uids[i], userIDs[i], m.AnonymousID, m.Type, m.Name
		row[7], row[8], row[9], row[10] = props, m.Timestamp.UnixMilli(), receivedMS[i], realtime[i]
	}}); err != nil {
		return err
	}
	for j, i := range pick {
		isNew[i], ids[i] = true, first+int64(j)
	}
	return nil
}

// pgProfileUIDs returns every user's uid, creating the profiles of users
// that have none: the stored ones are read first (most users of a stream
// have a profile), the missing ones inserted with their uids returned.
func pgProfileUIDs(ctx context.Context, tx *sql.Tx, users []string, nowMS int64) (map[string]int64, error) {
	uidOf := make(map[string]int64, len(users))
	scan := func(rows *sql.Rows, err error) error { return readUIDs(rows, err, uidOf) }
	if err := scan(tx.QueryContext(ctx, pgPrepared+`SELECT id, uid FROM profiles WHERE id = ANY($1::text[])`, users)); err != nil {
		return nil, err
	}
	if len(uidOf) == len(users) {
		return uidOf, nil
	}
	missing := make([]string, 0, len(users)-len(uidOf))
	for _, u := range users {
		if _, ok := uidOf[u]; !ok {
			missing = append(missing, u)
		}
	}
	err := scan(tx.QueryContext(ctx, pgPrepared+`INSERT INTO profiles (id, doc, updated_at)
		SELECT u, jsonb_build_object('id', u), $2::bigint FROM unnest($1::text[]) AS u
		RETURNING id, uid`, missing, nowMS))
	return uidOf, err
}

// pgMarkDirty records that the users' traits must be recomputed: the ones
// not marked yet, without a speculative insert per row. (The marked ones
// are found by an index probe each: NOT EXISTS was planned as a scan of
// trait_dirty per user, from statistics of an empty table.)
func pgMarkDirty(ctx context.Context, tx *sql.Tx, uids []int64) error {
	_, err := tx.ExecContext(ctx, pgPrepared+`INSERT INTO trait_dirty (uid)
		SELECT u FROM unnest($1::bigint[]) AS u EXCEPT SELECT uid FROM trait_dirty WHERE uid = ANY($1::bigint[])`, uids)
	if err != nil {
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
