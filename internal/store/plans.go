package store

import (
	"context"
	"database/sql"
	"time"
)

// DeployedCanvas is the current version of a canvas.
type DeployedCanvas struct {
	ID         string
	PlanHash   string
	Source     string
	DeployedAt time.Time
	Active     bool
	Plan       []byte
}

// SavePlan stores a plan version (idempotent: a hash is its content) and
// makes it the canvas's current version. It reports whether the current
// version changed.
func (s *SQLite) SavePlan(ctx context.Context, canvasID, hash string, plan []byte, source string) (changed bool, err error) {
	now := s.now().UnixMilli()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO plans (hash, canvas_id, plan, created_at) VALUES (?, ?, ?, ?)`, hash, canvasID, string(plan), now); err != nil {
			return err
		}
		var current string
		var active int
		err := tx.QueryRowContext(ctx, `SELECT plan_hash, active FROM canvases WHERE id = ?`, canvasID).Scan(&current, &active)
		if err != nil && err != sql.ErrNoRows {
			return err
		}
		if current == hash && active == 1 {
			_, err = tx.ExecContext(ctx, `UPDATE canvases SET source = ? WHERE id = ?`, source, canvasID)
			return err
		}
		changed = true
		_, err = tx.ExecContext(ctx, `INSERT INTO canvases (id, plan_hash, source, deployed_at, active) VALUES (?, ?, ?, ?, 1)
			ON CONFLICT(id) DO UPDATE SET plan_hash = excluded.plan_hash, source = excluded.source, deployed_at = excluded.deployed_at, active = 1`,
			canvasID, hash, source, now)
		return err
	})
	return changed, err
}

// Plan returns a plan version by hash.
func (s *SQLite) Plan(ctx context.Context, hash string) ([]byte, error) {
	var plan string
	err := s.r.QueryRowContext(ctx, `SELECT plan FROM plans WHERE hash = ?`, hash).Scan(&plan)
	if err == sql.ErrNoRows {
		return nil, ErrNotFound
	}
	return []byte(plan), err
}

// Canvas returns the current version of a canvas.
func (s *SQLite) Canvas(ctx context.Context, id string) (DeployedCanvas, error) {
	var c DeployedCanvas
	var at int64
	var active int
	var plan string
	err := s.r.QueryRowContext(ctx, `SELECT c.id, c.plan_hash, c.source, c.deployed_at, c.active, p.plan
		FROM canvases c JOIN plans p ON p.hash = c.plan_hash WHERE c.id = ?`, id).Scan(&c.ID, &c.PlanHash, &c.Source, &at, &active, &plan)
	if err == sql.ErrNoRows {
		return c, ErrNotFound
	}
	c.DeployedAt, c.Active, c.Plan = time.UnixMilli(at), active == 1, []byte(plan)
	return c, err
}

// Canvases lists every deployed canvas, current versions, by id.
func (s *SQLite) Canvases(ctx context.Context) ([]DeployedCanvas, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT c.id, c.plan_hash, c.source, c.deployed_at, c.active, p.plan
		FROM canvases c JOIN plans p ON p.hash = c.plan_hash ORDER BY c.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeployedCanvas
	for rows.Next() {
		var c DeployedCanvas
		var at int64
		var active int
		var plan string
		if err := rows.Scan(&c.ID, &c.PlanHash, &c.Source, &at, &active, &plan); err != nil {
			return nil, err
		}
		c.DeployedAt, c.Active, c.Plan = time.UnixMilli(at), active == 1, []byte(plan)
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeactivateCanvas marks a canvas as no longer deployed (its file was
// removed); its runs and reports stay.
func (s *SQLite) DeactivateCanvas(ctx context.Context, id string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE canvases SET active = 0 WHERE id = ?`, id)
	return err
}
