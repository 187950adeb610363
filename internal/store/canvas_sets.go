package store

import (
	"context"
	"database/sql"
	"time"
)

// CanvasSet is a canvases directory as deployed by a worker at start (ADR
// 022): its digest, when it was first deployed and in what order.
type CanvasSet struct {
	Digest   string
	Canvases int
	FirstAt  time.Time
	Seq      int64
}

// ClaimCanvasSet records that a worker deploys the set digest at start. It
// returns the set (new: first deployed just now) and the newest set of the
// store (the set itself when it is new or already the newest). One
// transaction decides, so of workers starting with different new sets at
// once each gets its own place in the order.
func (s *SQLite) ClaimCanvasSet(ctx context.Context, digest string, canvases int) (set, newest CanvasSet, created bool, err error) {
	now := s.now().UnixMilli()
	// The casts type the parameters for PostgreSQL, which cannot infer them
	// in a SELECT list.
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO canvas_sets (digest, canvases, first_at, seq)
			SELECT ?, CAST(? AS INTEGER), CAST(? AS BIGINT), COALESCE(MAX(seq), 0) + 1 FROM canvas_sets WHERE true
			ON CONFLICT (digest) DO NOTHING`, digest, canvases, now)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		created = n == 1
		if set, err = canvasSetWhere(ctx, tx, `digest = ?`, digest); err != nil {
			return err
		}
		newest, err = canvasSetWhere(ctx, tx, `true ORDER BY seq DESC, first_at DESC, digest LIMIT 1`)
		return err
	})
	return set, newest, created, err
}

func canvasSetWhere(ctx context.Context, q queryer, where string, args ...any) (CanvasSet, error) {
	var c CanvasSet
	var at int64
	err := q.QueryRowContext(ctx, `SELECT digest, canvases, first_at, seq FROM canvas_sets WHERE `+where, args...).Scan(&c.Digest, &c.Canvases, &at, &c.Seq)
	c.FirstAt = time.UnixMilli(at)
	return c, err
}
