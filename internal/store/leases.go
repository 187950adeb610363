package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Lease is a named role held by one process at a time (ADR 022). Term counts
// the holdings: it grows each time the lease changes hands (or is taken
// again after it expired), so a holder can tell its holding from a later one.
type Lease struct {
	Name       string
	Holder     string
	Term       int64
	ExpiresAt  time.Time
	AcquiredAt time.Time
}

// AcquireLease takes the lease name for holder until now+ttl when nobody
// holds it, its holding expired, or holder holds it already (then it is
// renewed and keeps its term). It reports whether holder has it, and the
// lease as it stands. One statement decides, so of two processes taking an
// expired lease at once exactly one gets it. The time is the store's clock
// (this process's): holders' clocks must agree to well within ttl.
func (s *SQLite) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, bool, error) {
	var l Lease
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, term, expires_at, acquired_at) VALUES (?, ?, 1, ?, ?)
			ON CONFLICT (name) DO UPDATE SET
				term = CASE WHEN leases.holder = excluded.holder AND leases.expires_at >= excluded.acquired_at THEN leases.term ELSE leases.term + 1 END,
				acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at >= excluded.acquired_at THEN leases.acquired_at ELSE excluded.acquired_at END,
				holder = excluded.holder,
				expires_at = excluded.expires_at
			WHERE leases.expires_at < excluded.acquired_at OR leases.holder = excluded.holder`,
			name, holder, now.Add(ttl).UnixMilli(), now.UnixMilli())
		if err != nil {
			return err
		}
		l, err = leaseOf(ctx, tx, name)
		return err
	})
	if err != nil {
		return Lease{}, false, err
	}
	return l, l.Holder == holder && l.ExpiresAt.After(now), nil
}

// RenewLease extends holder's holding of the given term until now+ttl. It
// reports false when that holding is over (expired and taken, or released):
// the holder must stop acting on it.
func (s *SQLite) RenewLease(ctx context.Context, name, holder string, term int64, ttl time.Duration) (bool, error) {
	now := s.now()
	res, err := s.w.ExecContext(ctx, `UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND term = ? AND expires_at >= ?`,
		now.Add(ttl).UnixMilli(), name, holder, term, now.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseLease ends holder's holding of the given term at once, so another
// process may take the lease without waiting for it to expire.
func (s *SQLite) ReleaseLease(ctx context.Context, name, holder string, term int64) error {
	_, err := s.w.ExecContext(ctx, `UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ? AND term = ?`, name, holder, term)
	return err
}

// LeaseOf reads a lease; false when it was never taken.
func (s *SQLite) LeaseOf(ctx context.Context, name string) (Lease, bool, error) {
	l, err := leaseOf(ctx, s.r, name)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, false, nil
	}
	return l, err == nil, err
}

func leaseOf(ctx context.Context, q queryer, name string) (Lease, error) {
	var l Lease
	var expires, acquired int64
	err := q.QueryRowContext(ctx, `SELECT name, holder, term, expires_at, acquired_at FROM leases WHERE name = ?`, name).
		Scan(&l.Name, &l.Holder, &l.Term, &expires, &acquired)
	l.ExpiresAt, l.AcquiredAt = time.UnixMilli(expires), time.UnixMilli(acquired)
	return l, err
}
