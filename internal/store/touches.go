package store

import (
	"context"
	"time"
)

// RecordTouches records messages sent, for frequency caps.
func (s *SQLite) RecordTouches(ctx context.Context, runID int64, channel string, uids []int64, at time.Time) error {
	if len(uids) == 0 {
		return nil
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO touches (uid, at, channel, run_id) SELECT value, ?, ?, ? FROM json_each(?)`, at.UnixMilli(), channel, runID, idList(uids))
	return err
}

// Touches counts, per user and channel, the messages sent since a time.
func (s *SQLite) Touches(ctx context.Context, uids []int64, since time.Time) (map[int64]map[string]int, error) {
	out := map[int64]map[string]int{}
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT uid, channel, count(*) FROM touches WHERE uid`+inIDs+` AND at >= ? GROUP BY uid, channel`, idList(uids), since.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var uid int64
		var ch string
		var n int
		if err := rows.Scan(&uid, &ch, &n); err != nil {
			return nil, err
		}
		if out[uid] == nil {
			out[uid] = map[string]int{}
		}
		out[uid][ch] = n
	}
	return out, rows.Err()
}

// PruneTouches deletes touches older than any cap's window.
func (s *SQLite) PruneTouches(ctx context.Context, before time.Time) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM touches WHERE at < ?`, before.UnixMilli())
	return err
}
