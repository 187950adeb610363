package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/huabu/huabu/internal/outbound"
)

// ForgetResult counts what ForgetUsers removed.
type ForgetResult struct {
	Forgotten int      `json:"forgotten"`         // profiles removed
	Unknown   []string `json:"unknown,omitempty"` // ids with no profile (nothing to do)
	Events    int64    `json:"events"`            // events deleted (theirs and their aliased anonymous ones)
	Messages  int64    `json:"messages"`          // outbox messages deleted
	Kept      int      `json:"suppressions_kept"` // suppressions kept as address hashes
}

// ForgetUsers carries out PIPL deletion requests: each user's profile,
// events (and the anonymous events aliased to them), outbox messages,
// contact and task identifiers, frequency and trait state are deleted. What
// stays is anonymous: counts in reports, ledger rows keyed by a uid nobody
// has any more, and suppressions — a user's own suppression entries become
// entries for the hashes of their addresses, so an opt-out outlives the
// deletion. The profile row stays as a tombstone with no id or data, so
// its uid is never given to anyone else; the same user id coming back is a
// new user. Each user is one transaction.
func (s *SQLite) ForgetUsers(ctx context.Context, ids []string) (ForgetResult, error) {
	var res ForgetResult
	for _, id := range ids {
		err := s.tx(ctx, func(tx *sql.Tx) error { return s.forget(ctx, tx, id, &res) })
		if errors.Is(err, ErrNotFound) {
			res.Unknown = append(res.Unknown, id)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("forget %s: %w", id, err)
		}
		res.Forgotten++
	}
	return res, nil
}

func (s *SQLite) forget(ctx context.Context, tx *sql.Tx, id string, res *ForgetResult) error {
	var uid int64
	var doc string
	err := tx.QueryRowContext(ctx, `SELECT uid, doc FROM profiles WHERE id = ? AND forgotten = 0`, id).Scan(&uid, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	var attrs map[string]any
	_ = json.Unmarshal([]byte(doc), &attrs)
	var addresses []string
	for _, a := range outbound.ReservedAttrs {
		if v, _ := attrs[a].(string); v != "" {
			addresses = append(addresses, v)
		}
	}
	exec := func(q string, args ...any) (int64, error) {
		r, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	}

	// The user's own suppressions become their addresses' (hashes only).
	rows, err := tx.QueryContext(ctx, `SELECT channel, source, reason, at FROM suppressions WHERE subject = ?`, UserSubject(id))
	if err != nil {
		return err
	}
	type entry struct {
		channel, source, reason string
		at                      int64
	}
	var own []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.channel, &e.source, &e.reason, &e.at); err != nil {
			rows.Close()
			return err
		}
		own = append(own, e)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err // a suppression not carried over would let messages through
	}
	rows.Close()
	for _, e := range own {
		for _, a := range addresses {
			n, err := exec(`INSERT OR IGNORE INTO suppressions (subject, channel, source, reason, display, at) VALUES (?, ?, ?, ?, ?, ?)`,
				AddressSubject(a), e.channel, SuppressForget, e.source, MaskAddress(a), e.at)
			if err != nil {
				return err
			}
			res.Kept += int(n)
		}
	}
	if _, err := exec(`DELETE FROM suppressions WHERE subject = ?`, UserSubject(id)); err != nil {
		return err
	}

	// Events: theirs, and the anonymous ones aliased to them.
	n, err := exec(`DELETE FROM events WHERE uid = ? OR user_id = ? OR (uid = 0 AND anonymous_id IN (SELECT anonymous_id FROM aliases WHERE user_id = ?))`, uid, id, id)
	if err != nil {
		return err
	}
	res.Events += n
	if _, err := exec(`DELETE FROM anonymous_traits WHERE anonymous_id IN (SELECT anonymous_id FROM aliases WHERE user_id = ?)`, id); err != nil {
		return err
	}
	if n, err = exec(`DELETE FROM outbox WHERE user_id = ?`, id); err != nil {
		return err
	}
	res.Messages += n
	for _, q := range []string{
		`DELETE FROM aliases WHERE user_id = ?`,
	} {
		if _, err := exec(q, id); err != nil {
			return err
		}
	}
	for _, q := range []string{
		`DELETE FROM trait_dirty WHERE uid = ?`,
		`DELETE FROM trait_due WHERE uid = ?`,
		`DELETE FROM rfm_values WHERE uid = ?`,
		`DELETE FROM touches WHERE uid = ?`,
		`UPDATE staff_task_customers SET external_userid = '' WHERE uid = ?`,
		`UPDATE entry_window_users SET user_id = '' WHERE uid = ?`,
	} {
		if _, err := exec(q, uid); err != nil {
			return err
		}
	}
	if ext, _ := attrs[outbound.AttrWeComExternalUserID].(string); ext != "" {
		if _, err := exec(`DELETE FROM wecom_contacts WHERE external_userid = ?`, ext); err != nil {
			return err
		}
	}
	// The tombstone: no id anyone can send, no data.
	_, err = exec(`UPDATE profiles SET id = ?, doc = '{}', forgotten = 1, updated_at = ? WHERE uid = ?`,
		fmt.Sprintf("\uFFFFforgotten/%d", uid), s.now().UnixMilli(), uid)
	return err
}
