package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// AuditEntry is one line of the audit log: who did what, to which canvas
// version, when and from where.
type AuditEntry struct {
	ID       int64           `json:"id"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Role     string          `json:"role,omitempty"`
	Remote   string          `json:"remote,omitempty"`
	Action   string          `json:"action"`
	CanvasID string          `json:"canvas,omitempty"`
	PlanHash string          `json:"plan,omitempty"`
	Detail   json.RawMessage `json:"detail,omitempty"`
}

// AuditQuery selects audit entries, newest first.
type AuditQuery struct {
	CanvasID string
	Action   string
	Since    time.Time
	Limit    int // default 100
}

// AppendAudit adds an entry (At defaults to now) and returns its id.
func (s *SQLite) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	detail := string(e.Detail)
	if detail == "" {
		detail = "{}"
	}
	var id int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO audit (at, actor, role, remote, action, canvas_id, plan_hash, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.At.UnixMilli(), e.Actor, e.Role, e.Remote, e.Action, e.CanvasID, e.PlanHash, detail).Scan(&id)
	return id, err
}

// Audit lists entries matching q, newest first.
func (s *SQLite) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	var where []string
	var args []any
	if q.CanvasID != "" {
		where, args = append(where, "canvas_id = ?"), append(args, q.CanvasID)
	}
	if q.Action != "" {
		where, args = append(where, "action = ?"), append(args, q.Action)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, q.Since.UnixMilli())
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	sqlText := `SELECT id, at, actor, role, remote, action, canvas_id, plan_hash, detail FROM audit`
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	sqlText += " ORDER BY id DESC LIMIT ?"
	rows, err := s.r.QueryContext(ctx, sqlText, append(args, q.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at int64
		var detail string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Role, &e.Remote, &e.Action, &e.CanvasID, &e.PlanHash, &detail); err != nil {
			return nil, err
		}
		e.At, e.Detail = time.UnixMilli(at), json.RawMessage(detail)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Approval is who approved a plan version, when.
type Approval struct {
	CanvasID   string    `json:"canvas"`
	PlanHash   string    `json:"plan"`
	Approver   string    `json:"approver"`
	ApprovedAt time.Time `json:"approved_at"`
}

// ErrSelfApproval refuses an approval by the version's author.
var ErrSelfApproval = errors.New("the author of a version may not approve it")

// RecordAuthor remembers who first deployed a plan version.
func (s *SQLite) RecordAuthor(ctx context.Context, canvasID, hash, author string) error {
	_, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO plan_authors (hash, canvas_id, author, created_at) VALUES (?, ?, ?, ?)`,
		hash, canvasID, author, s.now().UnixMilli())
	return err
}

// PlanAuthor is who first deployed a plan version ("" when unknown: it was
// deployed before authors were recorded).
func (s *SQLite) PlanAuthor(ctx context.Context, hash string) (string, error) {
	var author string
	err := s.r.QueryRowContext(ctx, `SELECT author FROM plan_authors WHERE hash = ?`, hash).Scan(&author)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return author, err
}

// Approve records approver's approval of a canvas's plan version, refusing
// the version's author. Approving again keeps the first approval.
func (s *SQLite) Approve(ctx context.Context, canvasID, hash, approver string) (Approval, error) {
	var out Approval
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var author string
		err := tx.QueryRowContext(ctx, `SELECT author FROM plan_authors WHERE hash = ?`, hash).Scan(&author)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if author == approver {
			return ErrSelfApproval
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO approvals (canvas_id, plan_hash, approver, approved_at) VALUES (?, ?, ?, ?)`,
			canvasID, hash, approver, s.now().UnixMilli()); err != nil {
			return err
		}
		var at int64
		out = Approval{CanvasID: canvasID, PlanHash: hash}
		if err := tx.QueryRowContext(ctx, `SELECT approver, approved_at FROM approvals WHERE canvas_id = ? AND plan_hash = ?`, canvasID, hash).Scan(&out.Approver, &at); err != nil {
			return err
		}
		out.ApprovedAt = time.UnixMilli(at)
		return nil
	})
	return out, err
}

// ApprovalOf returns the approval of a plan version, or ErrNotFound.
func (s *SQLite) ApprovalOf(ctx context.Context, canvasID, hash string) (Approval, error) {
	out := Approval{CanvasID: canvasID, PlanHash: hash}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT approver, approved_at FROM approvals WHERE canvas_id = ? AND plan_hash = ?`, canvasID, hash).Scan(&out.Approver, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return out, ErrNotFound
	}
	out.ApprovedAt = time.UnixMilli(at)
	return out, err
}

// PlanHashOf finds a version of a canvas by its hash or a prefix of it.
func (s *SQLite) PlanHashOf(ctx context.Context, canvasID, prefix string) (string, error) {
	if prefix == "" {
		return "", ErrNotFound
	}
	rows, err := s.r.QueryContext(ctx, `SELECT hash FROM plans WHERE canvas_id = ? AND substr(hash, 1, ?) = ? LIMIT 2`, canvasID, len(prefix), prefix)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return "", err
		}
		found = append(found, h)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if len(found) != 1 {
		return "", ErrNotFound // none, or the prefix is ambiguous
	}
	return found[0], nil
}
