package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// eventRows is how many events one SQLite INSERT carries. A statement per
// event paid the driver's and database/sql's per-call work (arguments
// converted and bound one call at a time, a goroutine watching the
// context, result objects) 8,000 times per applier transaction — about a
// third of storing an event. 100 rows × 10 columns stays far below
// SQLite's 32,766 parameters.
const eventRows = 16

// sqliteInsertEvents stores msgs in order with multi-row INSERT OR IGNORE
// statements and sets isNew and ids for the ones that were not stored yet
// (a message id already stored, or repeated in msgs, is skipped).
//
// Ids: the caller holds the only writer and events' id is SQLite's rowid,
// which takes the table's largest id plus one, so the rows inserted are the
// ones with an id above the largest before, in input order. When every
// message was new and the ids are exactly the next ones, they are known
// without reading them back; otherwise the new rows are read back and
// matched to the messages in order.
func sqliteInsertEvents(ctx context.Context, tx *sql.Tx, msgs []Message, uids []int64, userIDs []string, receivedMS, realtime []int64, isNew []bool, ids []int64) error {
	var before int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&before); err != nil {
		return err
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	inserted := 0
	args := make([]any, 0, eventRows*10)
	for start := 0; start < len(msgs); start += eventRows {
		end := min(start+eventRows, len(msgs))
		args = args[:0]
		for i := start; i < end; i++ {
			m := msgs[i]
			props := m.Properties
			if len(props) == 0 {
				props = []byte("{}")
			}
			args = append(args, m.MessageID, uids[i], userIDs[i], m.AnonymousID, m.Type, m.Name, string(props), m.Timestamp.UnixMilli(), receivedMS[i], realtime[i])
		}
		var r sql.Result
		var err error
		if end-start == eventRows {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insertEventsSQL(eventRows)); err != nil {
					return err
				}
			}
			r, err = full.ExecContext(ctx, args...)
		} else {
			r, err = tx.ExecContext(ctx, insertEventsSQL(end-start), args...)
		}
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		inserted += int(n)
	}
	if inserted == len(msgs) {
		var after int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&after); err != nil {
			return err
		}
		if after == before+int64(inserted) {
			for i := range msgs {
				isNew[i], ids[i] = true, before+1+int64(i)
			}
			return nil
		}
	}
	if inserted == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, message_id FROM events WHERE id > ? ORDER BY id`, before)
	if err != nil {
		return err
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var id int64
		var mid string
		if err := rows.Scan(&id, &mid); err != nil {
			return err
		}
		// The rows are a subsequence of msgs: skip the duplicates before it.
		for i < len(msgs) && msgs[i].MessageID != mid {
			i++
		}
		if i == len(msgs) {
			return fmt.Errorf("event %d (message id %q) is not one of the messages stored", id, mid)
		}
		isNew[i], ids[i] = true, id
		i++
	}
	return rows.Err()
}

// insertEventsSQL is the INSERT of n events. OR IGNORE skips rows whose
// message_id is stored (every column is set, so no other constraint can
// fire) without a statement journal.
func insertEventsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR IGNORE INTO events (message_id, uid, user_id, anonymous_id, type, name, properties, ts, received_at, realtime) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// profileUIDs creates the profiles of users that have none and returns
// every user's uid. On SQLite the stored ones are read first and only the
// missing ones inserted: in a stream of events most users have a profile
// already, and each of them then costs one index probe instead of an
// insert attempt and a read. With cached (the applier's, ADR 047; on
// PostgreSQL too since ADR 053), the users it knows cost no statement at
// all, and the others are remembered once the transaction commits.
//
// created is the range of uids the call gave new profiles on PostgreSQL
// (drawn in one piece: pgDrawIDs); empty on SQLite.
func profileUIDs(ctx context.Context, tx *sql.Tx, users []string, nowMS int64, pg bool, cached *uidLookup) (uidOf map[string]int64, created uidRange, err error) {
	uidOf = make(map[string]int64, len(users))
	if len(users) == 0 {
		return uidOf, created, nil
	}
	read := func(q string, users []string) error {
		rows, err := tx.QueryContext(ctx, q, stringList(users))
		return readUIDs(rows, err, uidOf)
	}
	// OR IGNORE rather than ON CONFLICT DO NOTHING: the same effect here,
	// and SQLite then needs no statement journal for the multi-row insert.
	create := func(users []string) error {
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO profiles (id, doc, updated_at)
			SELECT value, json_object('id', value), ? FROM json_each(?)`, nowMS, stringList(users))
		return err
	}
	if cached != nil {
		if users = cached.known(users, uidOf); len(users) == 0 {
			return uidOf, created, nil
		}
	}
	if pg {
		if created, err = pgProfileUIDs(ctx, tx, users, nowMS, uidOf); err != nil {
			return nil, created, err
		}
		if cached != nil {
			cached.add(users, uidOf)
		}
		return uidOf, created, nil
	}
	const stored = `SELECT j.value, p.uid FROM json_each(?) j JOIN profiles p ON p.id = j.value`
	if err := read(stored, users); err != nil {
		return nil, created, err
	}
	var missing []string
	for _, u := range users {
		if _, ok := uidOf[u]; !ok {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		if err := create(missing); err != nil {
			return nil, created, err
		}
		if err := read(stored, missing); err != nil {
			return nil, created, err
		}
	}
	if cached != nil {
		cached.add(users, uidOf)
	}
	return uidOf, created, nil
}

// readUIDs adds the (id, uid) rows of a profiles query to uidOf and closes
// them; err is the query's.
func readUIDs(rows *sql.Rows, err error, uidOf map[string]int64) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var uid int64
		if err := rows.Scan(&id, &uid); err != nil {
			return err
		}
		uidOf[id] = uid
	}
	return rows.Err()
}
