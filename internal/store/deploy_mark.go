package store

import (
	"context"
	"fmt"
)

// DeployMark changes whenever a canvas is deployed, redeployed or retired,
// by any worker: a router on another worker polls it to see deploys it did
// not make (ADR 022).
func (s *SQLite) DeployMark(ctx context.Context) (string, error) {
	var n, active, latest int64
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(active), 0), COALESCE(MAX(deployed_at), 0) FROM canvases`).Scan(&n, &active, &latest)
	return fmt.Sprintf("%d/%d/%d", n, active, latest), err
}
