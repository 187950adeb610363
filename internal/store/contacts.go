package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/huabu/huabu/internal/outbound"
)

// WeCom contact states.
const (
	ContactActive            = "active"
	ContactRemovedByStaff    = "removed_by_staff"    // del_external_contact: the staff member deleted the customer
	ContactRemovedByCustomer = "removed_by_customer" // del_follow_user: the customer deleted the staff member
)

// ContactAdded records an add_external_contact callback: the pair is a
// contact (again), with the welcome code WeCom sent, usable until expires.
func (s *SQLite) ContactAdded(ctx context.Context, staff, external, addState, welcomeCode string, expires time.Time) error {
	var exp int64
	if welcomeCode != "" {
		exp = expires.UnixMilli()
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO wecom_contacts (staff, external_userid, state, add_state, welcome_code, welcome_expires, welcome_used, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?)
		ON CONFLICT(staff, external_userid) DO UPDATE SET state = excluded.state, add_state = excluded.add_state,
			welcome_code = excluded.welcome_code, welcome_expires = excluded.welcome_expires, welcome_used = 0, updated_at = excluded.updated_at`,
		staff, external, ContactActive, addState, welcomeCode, exp, s.now().UnixMilli())
	return err
}

// ContactRemoved records that the pair is no longer a contact: the send path
// and staff tasks stop addressing the customer through that staff member.
func (s *SQLite) ContactRemoved(ctx context.Context, staff, external, state string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO wecom_contacts (staff, external_userid, state, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(staff, external_userid) DO UPDATE SET state = excluded.state, welcome_code = '', updated_at = excluded.updated_at`,
		staff, external, state, s.now().UnixMilli())
	return err
}

// ContactsActive records pairs the directory sync found on WeCom: they are
// contacts now, whatever an older callback said.
func (s *SQLite) ContactsActive(ctx context.Context, pairs []outbound.ContactPair) error {
	if len(pairs) == 0 {
		return nil
	}
	b, err := json.Marshal(pairs)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO wecom_contacts (staff, external_userid, state, updated_at)
		SELECT value->>'staff', value->>'external_userid', ?, ? FROM json_each(?) WHERE true
		ON CONFLICT(staff, external_userid) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		ContactActive, s.now().UnixMilli(), string(b))
	return err
}

// Contact is one stored pair, for tests and the CLI.
type Contact struct {
	Staff, ExternalUserID, State, AddState, WelcomeCode string
	WelcomeExpires                                      time.Time
	WelcomeUsed                                         bool
}

// GetContact returns one pair.
func (s *SQLite) GetContact(ctx context.Context, staff, external string) (Contact, error) {
	c := Contact{Staff: staff, ExternalUserID: external}
	var exp int64
	var used int
	err := s.r.QueryRowContext(ctx, `SELECT state, add_state, welcome_code, welcome_expires, welcome_used FROM wecom_contacts WHERE staff = ? AND external_userid = ?`, staff, external).
		Scan(&c.State, &c.AddState, &c.WelcomeCode, &exp, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if exp > 0 {
		c.WelcomeExpires = time.UnixMilli(exp)
	}
	c.WelcomeUsed = used == 1
	return c, err
}

// ScreenContacts implements channels.ContactBook: the pairs known to be no
// longer contacts, and the unused welcome codes still inside their window.
func (s *SQLite) ScreenContacts(ctx context.Context, pairs []outbound.ContactPair, now time.Time) (outbound.ContactScreen, error) {
	out := outbound.ContactScreen{}
	if len(pairs) == 0 {
		return out, nil
	}
	b, err := json.Marshal(pairs)
	if err != nil {
		return out, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT c.staff, c.external_userid, c.state, c.welcome_code, c.welcome_expires, c.welcome_used
		FROM json_each(?) p JOIN wecom_contacts c ON c.staff = p.value->>'staff' AND c.external_userid = p.value->>'external_userid'
		WHERE c.state != ? OR (c.welcome_code != '' AND c.welcome_used = 0 AND c.welcome_expires > ?)`,
		string(b), ContactActive, now.UnixMilli())
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var p outbound.ContactPair
		var state, code string
		var exp int64
		var used int
		if err := rows.Scan(&p.Staff, &p.ExternalUserID, &state, &code, &exp, &used); err != nil {
			return out, err
		}
		if state != ContactActive {
			if out.Unreachable == nil {
				out.Unreachable = map[outbound.ContactPair]bool{}
			}
			out.Unreachable[p] = true
			continue
		}
		if out.Welcome == nil {
			out.Welcome = map[outbound.ContactPair]string{}
		}
		out.Welcome[p] = code
	}
	return out, rows.Err()
}

// ClaimWelcomeCode marks a welcome code used, if it still is unused and
// inside its window. Only the caller that gets true may send with it: WeCom
// accepts each code once, and a second sender would fail or duplicate.
func (s *SQLite) ClaimWelcomeCode(ctx context.Context, pair outbound.ContactPair, code string, now time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE wecom_contacts SET welcome_used = 1, updated_at = ?
		WHERE staff = ? AND external_userid = ? AND welcome_code = ? AND welcome_used = 0 AND welcome_expires > ? AND state = ?`,
		s.now().UnixMilli(), pair.Staff, pair.ExternalUserID, code, now.UnixMilli(), ContactActive)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CustomerLink ties a WeCom customer to a profile and its owner.
type CustomerLink struct {
	Staff          string // the staff member who has the customer as a contact
	ExternalUserID string
	State          string // the contact way's state: often the app's user id
	Name           string // the customer's WeCom name, for new profiles
}

// LinkCustomer finds the profile of a WeCom customer — by its
// wecom_external_userid, else the profile named by the contact way's state —
// and sets owner and wecom_external_userid where they are unknown. A customer
// Huabu has never seen gets a profile whose id is the external userid, so
// canvases triggered by the contact can address them at once. It returns the
// profile's user id.
func (s *SQLite) LinkCustomer(ctx context.Context, l CustomerLink) (string, bool, error) {
	var userID string
	var created bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		userID, created, err = linkCustomer(ctx, tx, l, s.now().UnixMilli())
		return err
	})
	return userID, created, err
}

// LinkCustomers links many customers in one transaction (directory sync).
func (s *SQLite) LinkCustomers(ctx context.Context, links []CustomerLink) (created int, err error) {
	now := s.now().UnixMilli()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for _, l := range links {
			_, c, err := linkCustomer(ctx, tx, l, now)
			if err != nil {
				return err
			}
			if c {
				created++
			}
		}
		return nil
	})
	return created, err
}

func linkCustomer(ctx context.Context, tx *sql.Tx, l CustomerLink, now int64) (string, bool, error) {
	if l.ExternalUserID == "" {
		return "", false, fmt.Errorf("link customer: no external userid")
	}
	var uid int64
	var id, doc string
	err := tx.QueryRowContext(ctx, `SELECT uid, id, doc FROM profiles WHERE json_extract(doc, '$.wecom_external_userid') = ? ORDER BY uid LIMIT 1`, l.ExternalUserID).Scan(&uid, &id, &doc)
	if errors.Is(err, sql.ErrNoRows) && l.State != "" {
		err = tx.QueryRowContext(ctx, `SELECT uid, id, doc FROM profiles WHERE id = ?`, l.State).Scan(&uid, &id, &doc)
	}
	if errors.Is(err, sql.ErrNoRows) {
		patch := map[string]any{"wecom_external_userid": l.ExternalUserID, "owner": l.Staff}
		if l.Name != "" {
			patch["name"] = l.Name
		}
		b, _ := json.Marshal(patch)
		_, err := tx.ExecContext(ctx, `INSERT INTO profiles (id, doc, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING`, l.ExternalUserID, string(b), now)
		return l.ExternalUserID, true, err
	}
	if err != nil {
		return "", false, err
	}
	var cur struct {
		Owner    string `json:"owner"`
		External string `json:"wecom_external_userid"`
	}
	_ = json.Unmarshal([]byte(doc), &cur)
	patch := map[string]any{}
	if cur.Owner == "" && l.Staff != "" {
		patch["owner"] = l.Staff
	}
	if cur.External == "" {
		patch["wecom_external_userid"] = l.ExternalUserID
	}
	if len(patch) == 0 {
		return id, false, nil
	}
	b, _ := json.Marshal(patch)
	_, err = tx.ExecContext(ctx, `UPDATE profiles SET doc = json_patch(doc, ?), updated_at = ? WHERE uid = ?`, string(b), now, uid)
	return id, false, err
}

// RememberNonce records a callback nonce; false means it was seen before
// (a replay). Nonces older than forgetBefore are dropped on the way, so the
// table holds one replay window's worth.
func (s *SQLite) RememberNonce(ctx context.Context, nonce string, at, forgetBefore time.Time) (bool, error) {
	var fresh bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM wecom_callback_nonces WHERE at < ?`, forgetBefore.UnixMilli()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO wecom_callback_nonces (nonce, at) VALUES (?, ?)`, nonce, at.UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	return fresh, err
}

// ForgetNonce drops a nonce whose callback could not be processed, so
// WeCom's retry of it is accepted.
func (s *SQLite) ForgetNonce(ctx context.Context, nonce string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM wecom_callback_nonces WHERE nonce = ?`, nonce)
	return err
}

// CustomerByExternal returns the user id of the profile with this WeCom
// external userid.
func (s *SQLite) CustomerByExternal(ctx context.Context, external string) (string, error) {
	var id string
	err := s.r.QueryRowContext(ctx, `SELECT id FROM profiles WHERE json_extract(doc, '$.wecom_external_userid') = ? ORDER BY uid LIMIT 1`, external).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return id, err
}
