package store

import "context"

// InUse reports whether the store holds anything an operator made:
// canvases, profiles, runs or events (a store only migrated is not in use).
// Tools that fill a store with synthetic data (huabu bench --postgres)
// refuse one in use.
func (s *SQLite) InUse(ctx context.Context) (bool, error) {
	var used bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM canvases) OR EXISTS (SELECT 1 FROM profiles)
		OR EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM events)`).Scan(&used)
	return used, err
}
