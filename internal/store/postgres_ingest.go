package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
	mids, anons, types, names, props := make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
	us, uus := make([]int64, k), make([]string, k)
	ts, recv, rt := make([]int64, k), make([]int64, k), make([]int64, k)
	for j, i := range pick {
		m := msgs[i]
		mids[j], anons[j], types[j], names[j], ts[j] = m.MessageID, m.AnonymousID, m.Type, m.Name, m.Timestamp.UnixMilli()
		us[j], uus[j], recv[j], rt[j] = uids[i], userIDs[i], receivedMS[i], realtime[i]
		props[j] = "{}"
		if len(m.Properties) > 0 {
			props[j] = string(m.Properties)
		}
	}
	rows, err = tx.QueryContext(ctx, pgPrepared+`INSERT INTO events (message_id, uid, user_id, anonymous_id, type, name, properties, ts, received_at, realtime)
		SELECT m, u, uu, a, t, nm, p, ts, ra, rt FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[]) WITH ORDINALITY AS x(m, u, uu, a, t, nm, p, ts, ra, rt, n)
		ORDER BY n
		RETURNING id`, mids, us, uus, anons, types, names, props, ts, recv, rt)
	if err != nil {
		return err
	}
	got := make([]int64, 0, k)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		got = append(got, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The rows took their ids from the sequence in insertion order (ORDER
	// BY n), and one session's ids only grow: sorted, they are the
	// messages' ids in order, whatever order RETURNING gave them in.
	slices.Sort(got)
	if len(got) != k {
		return errors.New("events: the insert returned fewer ids than rows")
	}
	for j, i := range pick {
		isNew[i], ids[i] = true, got[j]
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
