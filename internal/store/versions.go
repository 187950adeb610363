package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// CanvasVersion is one deployment of a canvas version: the YAML it was
// compiled from, who deployed it and when.
type CanvasVersion struct {
	ID         int64 // numbers deployments, increasing
	CanvasID   string
	PlanHash   string
	Path       string
	Source     string
	Author     string
	DeployedAt time.Time
}

// RecordCanvasVersion records a deployment of a canvas version with its
// source. It adds a row when the canvas's current version changed (changed,
// as SavePlan reported it), or when this version has no row yet (a canvas
// deployed before versions were recorded); deploying the same version
// again (every restart) adds nothing.
func (s *SQLite) RecordCanvasVersion(ctx context.Context, v CanvasVersion, changed bool) error {
	now := s.now().UnixMilli()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if !changed {
			var known bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM canvas_versions WHERE canvas_id = ? AND plan_hash = ?)`, v.CanvasID, v.PlanHash).Scan(&known); err != nil || known {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO canvas_versions (canvas_id, plan_hash, path, source, author, deployed_at) VALUES (?, ?, ?, ?, ?, ?)`,
			v.CanvasID, v.PlanHash, v.Path, v.Source, v.Author, now)
		return err
	})
}

// CanvasVersions lists a canvas's deployments, newest first, at most limit,
// without their sources.
func (s *SQLite) CanvasVersions(ctx context.Context, canvasID string, limit int) ([]CanvasVersion, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, canvas_id, plan_hash, path, author, deployed_at FROM canvas_versions WHERE canvas_id = ? ORDER BY id DESC LIMIT ?`, canvasID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []CanvasVersion
	for rows.Next() {
		var v CanvasVersion
		var at int64
		if err := rows.Scan(&v.ID, &v.CanvasID, &v.PlanHash, &v.Path, &v.Author, &at); err != nil {
			return nil, err
		}
		v.DeployedAt = time.UnixMilli(at)
		out = append(out, v)
	}
	return out, rows.Err()
}

// CanvasVersion is one deployment of a canvas, with its source.
func (s *SQLite) CanvasVersion(ctx context.Context, canvasID string, id int64) (CanvasVersion, error) {
	v := CanvasVersion{ID: id, CanvasID: canvasID}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT plan_hash, path, source, author, deployed_at FROM canvas_versions WHERE canvas_id = ? AND id = ?`, canvasID, id).
		Scan(&v.PlanHash, &v.Path, &v.Source, &v.Author, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	v.DeployedAt = time.UnixMilli(at)
	return v, err
}
