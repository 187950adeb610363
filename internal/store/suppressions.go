package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"strings"
	"time"
	"unicode"
)

// Suppression is one entry of the suppression list.
type Suppression struct {
	Subject string    `json:"subject"`           // user:ID or addr:SHA256
	Channel string    `json:"channel,omitempty"` // "" = every channel
	Source  string    `json:"source"`
	Reason  string    `json:"reason,omitempty"`
	Display string    `json:"display"` // the user id, or the address masked
	At      time.Time `json:"at"`
}

// Sources of suppressions.
const (
	SuppressAPI             = "api"
	SuppressAliyunReply     = "aliyun_reply"
	SuppressTencentReply    = "tencent_reply"
	SuppressWeComDelFollow  = "wecom_del_follow_user"
	SuppressProviderRefusal = "provider_refusal"
	SuppressForget          = "forget"
)

// UserSubject is the suppression subject of a user id.
func UserSubject(id string) string { return "user:" + id }

// AddressSubject is the suppression subject of an address: a hash of its
// normalized form, so 13800130003, +86 138 0013 0003 and 8613800130003 are
// one subject.
func AddressSubject(address string) string {
	sum := sha256.Sum256([]byte(NormalizeAddress(address)))
	return "addr:" + hex.EncodeToString(sum[:])
}

// NormalizeAddress folds the spellings of one address: phone numbers to
// digits without the +86 / 0086 / 86 prefix of mainland numbers, emails to
// lower case; anything else is kept as is.
func NormalizeAddress(a string) string {
	a = strings.TrimSpace(a)
	if strings.Contains(a, "@") {
		return strings.ToLower(a)
	}
	digits := strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return r
		}
		if r == '+' || r == ' ' || r == '-' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, a)
	if strings.IndexFunc(digits, func(r rune) bool { return !unicode.IsDigit(r) }) >= 0 {
		return a // not a phone number
	}
	for _, p := range []string{"0086", "86"} {
		if rest, ok := strings.CutPrefix(digits, p); ok && len(rest) == 11 && rest[0] == '1' {
			return rest
		}
	}
	return digits
}

// MaskAddress shows enough of an address to recognise it, not to use it.
func MaskAddress(a string) string {
	n := NormalizeAddress(a)
	if at := strings.IndexByte(n, '@'); at > 0 {
		return n[:1] + "***" + n[at:]
	}
	if len(n) == 11 && strings.IndexFunc(n, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		return n[:3] + "****" + n[7:]
	}
	if r := []rune(n); len(r) > 4 {
		return string(r[:4]) + "…"
	}
	return "…"
}

// Suppress adds entries (an existing subject and channel keeps its first
// entry) and returns how many were new.
func (s *SQLite) Suppress(ctx context.Context, entries []Suppression) (int, error) {
	added := 0
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		added = 0
		for _, e := range entries {
			if e.At.IsZero() {
				e.At = now
			}
			res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO suppressions (subject, channel, source, reason, display, at) VALUES (?, ?, ?, ?, ?, ?)`,
				e.Subject, e.Channel, e.Source, e.Reason, e.Display, e.At.UnixMilli())
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			added += int(n)
		}
		return nil
	})
	return added, err
}

// Unsuppress removes the entries of subjects on channel ("" is the
// every-channel entry; AllChannels removes them all) and returns how many.
func (s *SQLite) Unsuppress(ctx context.Context, subjects []string, channel string) (int, error) {
	q := `DELETE FROM suppressions WHERE subject IN (SELECT value FROM json_each(?))`
	args := []any{stringList(subjects)}
	if channel != AllChannels {
		q += ` AND channel = ?`
		args = append(args, channel)
	}
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// AllChannels names every channel's entries in Unsuppress and Suppressions.
const AllChannels = "*"

// LiftSuppression removes the entries a source made for a subject (a
// customer who adds the staff member again on WeCom opts back in).
func (s *SQLite) LiftSuppression(ctx context.Context, subject, source string) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM suppressions WHERE subject = ? AND source = ?`, subject, source)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// SuppressionQuery selects suppression entries, newest first.
type SuppressionQuery struct {
	Subjects []string // any of these; all when empty
	Channel  string   // AllChannels or "" for all ... see Suppressions
	Limit    int      // default 100
}

// Suppressions lists entries: of the given subjects (all when none), on a
// channel (AllChannels or "" for any), newest first.
func (s *SQLite) Suppressions(ctx context.Context, q SuppressionQuery) ([]Suppression, error) {
	var where []string
	var args []any
	if len(q.Subjects) > 0 {
		where, args = append(where, `subject IN (SELECT value FROM json_each(?))`), append(args, stringList(q.Subjects))
	}
	if q.Channel != "" && q.Channel != AllChannels {
		where, args = append(where, `channel = ?`), append(args, q.Channel)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	sqlText := `SELECT subject, channel, source, reason, display, at FROM suppressions`
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.r.QueryContext(ctx, sqlText+` ORDER BY at DESC, subject LIMIT ?`, append(args, q.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Suppression{}
	for rows.Next() {
		var e Suppression
		var at int64
		if err := rows.Scan(&e.Subject, &e.Channel, &e.Source, &e.Reason, &e.Display, &at); err != nil {
			return nil, err
		}
		e.At = time.UnixMilli(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SuppressedAmong returns which of subjects are suppressed on channel
// (by a channel entry or an every-channel one).
func (s *SQLite) SuppressedAmong(ctx context.Context, channel string, subjects []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(subjects) == 0 {
		return out, nil
	}
	// On SQLite each subject is looked up where json_each reads it: "subject
	// IN (SELECT … json_each)" first copies the list into a temporary b-tree,
	// most of the cost of a broadcast page's check (ADR 051).
	q := `SELECT j.value FROM json_each(?) j WHERE EXISTS (SELECT 1 FROM suppressions s WHERE s.subject = j.value AND s.channel IN ('', ?))`
	if s.pg {
		q = `SELECT DISTINCT subject FROM suppressions WHERE subject IN (SELECT value FROM json_each(?)) AND channel IN ('', ?)`
	}
	rows, err := s.r.QueryContext(ctx, q, stringList(subjects), channel)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var sub string
		if err := rows.Scan(&sub); err != nil {
			return nil, err
		}
		out[sub] = true
	}
	return out, rows.Err()
}
