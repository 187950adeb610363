package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/huabu/huabu/internal/outbound"
)

// ReserveSlot books the earliest send slot for key at or after now that
// keeps at most perMinute sends in any minute and perHour in any hour (0:
// no limit), the way channels' in-process pacer does, but in the store, so
// every worker's sends count (ADR 023). Slots are handed out in order per
// key. When the earliest slot is more than horizon away nothing is booked
// and ok is false; at says when one would be free.
func (s *SQLite) ReserveSlot(ctx context.Context, key string, now time.Time, horizon time.Duration, perMinute, perHour int) (at time.Time, ok bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pacing_slots WHERE key = ? AND at <= ?`, key, now.Add(-time.Hour).UnixMilli()); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT at FROM pacing_slots WHERE key = ? ORDER BY at`, key)
		if err != nil {
			return err
		}
		var ts []time.Time
		for rows.Next() {
			var ms int64
			if err := rows.Scan(&ms); err != nil {
				rows.Close()
				return err
			}
			ts = append(ts, time.UnixMilli(ms))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		at = outbound.NextSlot(ts, now, perMinute, perHour)
		if at.Sub(now) > horizon {
			return nil
		}
		ok = true
		_, err = tx.ExecContext(ctx, `INSERT INTO pacing_slots (key, at) VALUES (?, ?)`, key, at.UnixMilli())
		return err
	})
	return at, ok, err
}

// ReleaseSlot gives back one slot booked at at (its send did not happen).
func (s *SQLite) ReleaseSlot(ctx context.Context, key string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM pacing_slots WHERE id = (SELECT id FROM pacing_slots WHERE key = ? AND at = ? LIMIT 1)`, key, at.UnixMilli())
	return err
}
