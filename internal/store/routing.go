package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// EventsToRoute returns up to limit events the engine routes — live
// (realtime) track, page and screen events of a known profile — with
// id > after, in id order, and next: the id to resume from, which is the
// last returned event's when the page is full, else the newest stored id
// the read saw (so imported and anonymous rows are skipped over). names,
// when not nil, keeps only events of those names: the ones some plan reacts
// to (the router says which), so a flood of events no canvas cares about is
// skipped in the database instead of being read, decoded and routed.
//
// Event ids grow in commit order (one writer at a time, ids never reused:
// events are not deleted), so once an id is visible every smaller one is
// too: a reader that resumes from next misses nothing.
func (s *SQLite) EventsToRoute(ctx context.Context, after int64, limit int, names []string) (rows []EventRow, next int64, err error) {
	// Everything up to the newest visible id is committed, so the second
	// query sees all of it whatever commits in between.
	newest, err := s.LastEventID(ctx)
	if err != nil {
		return nil, after, err
	}
	if newest <= after {
		return nil, after, nil
	}
	filter, args := "", []any{after, newest}
	if names != nil {
		if len(names) == 0 {
			return nil, newest, nil
		}
		filter = ` AND name IN (SELECT value FROM json_each(?))`
		args = append(args, stringList(names))
	}
	q, err := s.r.QueryContext(ctx, `SELECT id, uid, user_id, anonymous_id, type, name, properties, ts, received_at, realtime
		FROM events WHERE id > ? AND id <= ? AND realtime = 1 AND uid != 0 AND type IN ('track', 'page', 'screen')`+filter+`
		ORDER BY id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, after, err
	}
	if rows, err = scanEvents(q); err != nil {
		return nil, after, err
	}
	if len(rows) == limit {
		return rows, rows[len(rows)-1].ID, nil
	}
	return rows, newest, nil
}

// PlanHashes lists every stored plan version.
func (s *SQLite) PlanHashes(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT hash FROM plans ORDER BY hash`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// LastEventID is the newest stored message id (0 when there is none).
func (s *SQLite) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&id)
	return id, err
}

// SetSetting stores a named value (JSON) outside a transaction.
func (s *SQLite) SetSetting(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, string(b)); err != nil {
		return fmt.Errorf("setting %s: %w", key, err)
	}
	return nil
}
